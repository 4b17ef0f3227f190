"""What Code42 says about a tip's subject now: cleared by triage, taught by Instructor, or its
actor under investigation (on a watchlist a campaign names).

Read from the warehouse as this run's load left it (``code42_session.state``,
``code42_alert.state``, ``code42_session_alert.lesson_id``), when a tip is planned and again just
before it is sent. Watchlist membership is read from Code42 once per delivery run (``WatchlistGate``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from securitycoach.coaching.campaigns import Campaign, Triage
from securitycoach.warehouse import schema as t

WITHDRAWN = "withdrawn"
COVERED_BY_INSTRUCTOR = "covered_by_instructor"
ON_WATCHLIST = "on_watchlist"
_CHUNK = 500


@dataclass(frozen=True)
class SubjectState:
    cleared: str | None = None  # why Code42 triage cleared the subject (ids and states only)
    lesson_id: str | None = None  # an Instructor lessonId on one of its triggered alerts


@dataclass
class WatchlistGate:
    """A campaign's ``suppress_watchlists`` resolved for this run: the actors on them, or why the
    check could not be made (then the campaign sends nothing: fail safe)."""

    actor_ids: dict[str, str] = field(default_factory=dict)  # actor id -> watchlist label
    error: str | None = None


def subject_states(conn, tenant_id: str, triage: Triage,
                   subjects: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SubjectState]:
    """``(subject_type, subject_id)`` -> its ``SubjectState`` (absent facts: nothing to say)."""
    subjects = list(dict.fromkeys(subjects))
    out: dict[tuple[str, str], SubjectState] = {}
    for k in range(0, len(subjects), _CHUNK):
        out.update(_chunk(conn, tenant_id, triage, subjects[k:k + _CHUNK]))
    return out


def _chunk(conn, tenant_id, triage: Triage, subjects):
    s, sa_, a = t.code42_session.c, t.code42_session_alert.c, t.code42_alert.c
    session_ids = {i for kind, i in subjects if kind == "session"}
    alert_ids = {i for kind, i in subjects if kind == "alert"}
    links = conn.execute(sa.select(sa_.session_id, sa_.alert_id, sa_.lesson_id).where(
        sa_.tenant_id == tenant_id,
        sa.or_(sa_.session_id.in_(session_ids or {""}), sa_.alert_id.in_(alert_ids or {""})))).all()
    all_sessions = session_ids | {r.session_id for r in links}
    all_alerts = alert_ids | {r.alert_id for r in links}
    session_state = dict(conn.execute(sa.select(s.session_id, s.state).where(
        s.tenant_id == tenant_id, s.session_id.in_(all_sessions or {""}))).all())
    alert_state = dict(conn.execute(sa.select(a.alert_id, a.state).where(
        a.tenant_id == tenant_id, a.alert_id.in_(all_alerts or {""}))).all())
    cleared_sessions, cleared_alerts = set(triage.cleared_session_states), set(triage.cleared_alert_states)

    def session_reason(sid: str) -> str | None:
        state = session_state.get(sid)
        return f"Code42 triage cleared session {sid} ({state})" if state in cleared_sessions else None

    def alert_reason(aid: str) -> str | None:
        state = alert_state.get(aid)
        return f"Code42 triage cleared alert {aid} ({state})" if state in cleared_alerts else None

    out = {}
    for kind, sid in subjects:
        if kind == "session":
            mine = [r for r in links if r.session_id == sid]
            reasons = [session_reason(sid), *(alert_reason(r.alert_id) for r in mine)]
        else:
            mine = [r for r in links if r.alert_id == sid]
            reasons = [alert_reason(sid), *(session_reason(r.session_id) for r in mine)]
        lesson = next((r.lesson_id for r in sorted(mine, key=lambda r: r.alert_id) if r.lesson_id), None)
        out[(kind, sid)] = SubjectState(next((r for r in reasons if r), None), lesson)
    return out


def hold(campaign: Campaign, state: SubjectState | None, actor_id: str | None,
         gate: WatchlistGate | None) -> tuple[str, str] | None:
    """(final status, reason) when this tip must not go, by Code42's word; else None."""
    state = state or SubjectState()
    if state.cleared:
        return WITHDRAWN, f"{state.cleared}: withdrawn, not sent"
    if gate is not None and actor_id in gate.actor_ids:
        return ON_WATCHLIST, (f"actor is on Code42 watchlist {gate.actor_ids[actor_id]!r} (under investigation; "
                              f"campaign suppress_watchlists): not coached")
    if campaign.skip_instructor_covered and state.lesson_id:
        return COVERED_BY_INSTRUCTOR, (f"Code42 Instructor lesson {state.lesson_id} already sent for this "
                                       f"activity (campaign skip_instructor_covered): not sent")
    return None


def resolve_watchlists(code42, campaigns: Iterable[Campaign], conn_id: str) -> dict[str, WatchlistGate]:
    """Each enabled campaign with ``suppress_watchlists``: the actors on those watchlists now, read
    from Code42 (``code42``: a Code42Hook), or the reason they could not be read. Fail safe: any
    refusal or error (403 without Read on Watchlists, a watchlist not found) becomes ``error``."""
    from code42_hook.errors import Code42ApiError, Code42Error

    asking = [c for c in campaigns if c.enabled and c.suppress_watchlists]
    if not asking:
        return {}
    try:
        lists = list(code42.iter_watchlists())
    except Code42ApiError as exc:
        if exc.status == 403:
            why = (f"connection {conn_id!r}: Code42 refused GET /v2/watchlists (HTTP 403): the API client lacks "
                   f"Read on Watchlists, so people under investigation cannot be left out")
        else:
            why = f"connection {conn_id!r}: Code42 watchlists could not be read ({exc})"
        return {c.name: WatchlistGate(error=f"{why}; campaign {c.name!r} sends nothing this run (fail safe)")
                for c in asking}
    except Code42Error as exc:
        return {c.name: WatchlistGate(error=f"connection {conn_id!r}: Code42 watchlists could not be read ({exc}); "
                                            f"campaign {c.name!r} sends nothing this run (fail safe)")
                for c in asking}
    members: dict[str, dict[str, str]] = {}  # watchlist id -> {actor id: label}, read once per run
    return {campaign.name: _gate(code42, campaign, lists, members) for campaign in asking}


def _gate(code42, campaign: Campaign, lists: list, members: dict[str, dict[str, str]]) -> WatchlistGate:
    """The actors on ``campaign``'s watchlists, or the first reason they cannot be known."""
    from code42_hook.errors import Code42Error

    gate = WatchlistGate()
    for wanted in campaign.suppress_watchlists:
        found = [w for w in lists if wanted.lower() in
                 {w.watchlist_id.lower(), (w.title or "").lower(), (w.list_type or "").lower()}]
        if not found:
            known = sorted({w.label for w in lists})
            return WatchlistGate(error=f"campaign {campaign.name!r}: suppress_watchlists: {wanted!r} is no Code42 "
                                       f"watchlist of this tenant (known: {known}); it sends nothing this run "
                                       f"(fail safe)")
        for w in found:
            if w.watchlist_id not in members:
                try:
                    members[w.watchlist_id] = {m.actor_id: w.label
                                               for m in code42.iter_watchlist_members(w.watchlist_id)}
                except Code42Error as exc:
                    return WatchlistGate(error=f"campaign {campaign.name!r}: members of Code42 watchlist "
                                               f"{w.label!r} could not be read ({exc}); it sends nothing this "
                                               f"run (fail safe)")
            for actor, label in members[w.watchlist_id].items():
                gate.actor_ids.setdefault(actor, label)
    return gate


def record_blocks(conn, tenant_id: str, gates: dict[str, WatchlistGate], now) -> None:
    """Keep ``coaching_block`` equal to this run's held campaigns (the report's health panel)."""
    b = t.coaching_block.c
    stored = dict(conn.execute(sa.select(b.campaign, b.since).where(b.tenant_id == tenant_id)).all())
    conn.execute(t.coaching_block.delete().where(b.tenant_id == tenant_id))
    rows = [{"tenant_id": tenant_id, "campaign": name, "reason": gate.error, "since": stored.get(name, now),
             "checked_at": now} for name, gate in gates.items() if gate.error]
    if rows:
        conn.execute(t.coaching_block.insert(), rows)

"""Code42 detections on the KSAT user's Events Timeline (KnowBe4 User Event API), exactly once,
within the key's daily quota.

``plan_events`` adds a ``ksat_event`` row for each detection of a mapped, active KSAT user that the
``ksat_events.push`` setting selects (``coached``: a campaign sent a SecurityTip for it; ``all``: every
detection), with its stable ``external_id``, ``risk_level`` (the severity mapping) and description
(rule and behaviour; Code42's summary, which names files, only with ``include_summary``). A detection
older than ``freshness_hours`` when first seen is ``stale`` (not pushed) unless ``backfill``; one that
Code42 triage already cleared is ``withdrawn``.

``push_events`` then, each call counted by ``Quota`` first (10 per seat per UTC day, per key, in the
warehouse so every task and tenant on the key shares it):
1. makes sure the integration's event type exists (``ksat_event_type``: looked up or created once);
2. resolves rows left in doubt (the POST's answer was lost, or a worker stopped between claim and
   record) by ``GET /events?external_id=``: found -> ``pushed``; not found -> ``pending`` again;
3. deletes the events of pushed detections that triage has cleared since (``DELETE /events/{id}``);
4. claims (``pending`` -> ``sending``, committed), POSTs and records (``pushed``) each pending row.
When the quota is used up (client-side count, or KnowBe4's 429 with a long Retry-After) it stops:
what is left stays ``pending`` for the next run (``deferred``). Nothing is ever POSTed twice: a row is
sent only from ``sending``, and a row found in ``sending`` or ``in_doubt`` is looked up before it may
be sent again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.coaching.campaigns import CampaignFile
from securitycoach.coaching.triage import subject_states
from securitycoach.detection.catalog import SEVERITIES
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert

log = logging.getLogger(__name__)

CALLS_PER_SEAT_PER_DAY = 10  # KnowBe4: "ten (10) calls per seat per day"
LEASE = timedelta(minutes=10)
PLAN_BATCH = 1000
IN_DOUBT = ("sending", "in_doubt")


class QuotaExhausted(Exception):
    """Today's calls of this key are used up (counted here, or KnowBe4 said 429 for longer than we wait)."""


def external_id(tenant_id: str, rule_key: str, subject_type: str, subject_id: str) -> str:
    """The detection's stable key on KnowBe4's side (no ids or names of people in it)."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{rule_key}\x1f{subject_type}\x1f{subject_id}".encode()).hexdigest()
    return f"code42-{digest[:40]}"


class Quota:
    """The key's calls of the current UTC day, counted in ``ksat_event_quota`` before each call."""

    def __init__(self, engine: Engine, key_id: str, daily_quota: int, clock: Callable[[], datetime]) -> None:
        self.engine, self.key_id, self.daily_quota, self.clock = engine, key_id, daily_quota, clock
        self.calls = 0  # made by this object

    def _day(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%d")

    def take(self, what: str = "call") -> None:
        q = t.ksat_event_quota.c
        day, now = self._day(), self.clock()
        with self.engine.begin() as conn:
            upsert(conn, t.ksat_event_quota, [{"key_id": self.key_id, "day": day, "calls": 0,
                                               "quota": self.daily_quota, "n_429": 0, "updated_at": now}],
                   do_nothing=True)
            taken = conn.execute(t.ksat_event_quota.update()
                                 .where(q.key_id == self.key_id, q.day == day, q.calls < self.daily_quota)
                                 .values(calls=q.calls + 1, quota=self.daily_quota, updated_at=now)).rowcount
        if not taken:
            raise QuotaExhausted(f"User Event API quota of {self.daily_quota} calls for {day} (UTC) used up "
                                 f"before {what}")
        self.calls += 1

    def note_429(self) -> None:
        q = t.ksat_event_quota.c
        with self.engine.begin() as conn:
            conn.execute(t.ksat_event_quota.update().where(q.key_id == self.key_id, q.day == self._day())
                         .values(n_429=q.n_429 + 1))

    def used(self) -> tuple[int, int]:
        """(calls used today, quota)."""
        q = t.ksat_event_quota.c
        with self.engine.connect() as conn:
            calls = conn.execute(sa.select(q.calls).where(q.key_id == self.key_id, q.day == self._day())).scalar()
        return calls or 0, self.daily_quota


@dataclass
class EventsResult:
    planned: dict[str, int] = field(default_factory=dict)  # status -> rows planned this run
    outcomes: dict[str, int] = field(default_factory=dict)  # pushed, deleted, failed, in_doubt, resolved_*...
    deferred: int = 0  # pending rows left for a later run (quota)
    stopped: str | None = None  # why pushing stopped early (quota, 429, refused key)
    refused: str | None = None  # the key or permission was refused: the task fails after recording
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    quota_used: int = 0
    quota: int = 0

    def add(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "outcomes": self.outcomes, "deferred": self.deferred,
                "stopped": self.stopped, "calls": self.calls, "quota_used": self.quota_used, "quota": self.quota,
                "quota_left": max(0, self.quota - self.quota_used)}


# --- planning ------------------------------------------------------------------------------------
def _candidates(tenant_id: str, push: str):
    d, m, u, r, k, dl = (t.detection.c, t.user_mapping.c, t.ksat_user.c, t.detection_rule.c, t.ksat_event.c,
                         t.delivery.c)
    known = sa.select(1).where(k.tenant_id == d.tenant_id, k.rule_key == d.rule_key,
                               k.subject_type == d.subject_type, k.subject_id == d.subject_id)
    query = (
        sa.select(d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.severity, d.occurred_at, d.first_seen_at,
                  d.summary, m.ksat_user_id, u.email, r.name.label("rule_name"))
        .select_from(
            t.detection
            .join(t.user_mapping, sa.and_(m.tenant_id == d.tenant_id, m.actor_id == d.actor_id))
            .join(t.ksat_user, sa.and_(u.tenant_id == d.tenant_id, u.ksat_user_id == m.ksat_user_id))
            .join(t.detection_rule, sa.and_(r.tenant_id == d.tenant_id, r.rule_key == d.rule_key)))
        .where(d.tenant_id == tenant_id, u.status == "active", ~known.exists())
    )
    if push == "coached":
        sent = sa.select(1).where(dl.tenant_id == d.tenant_id, dl.rule_key == d.rule_key,
                                  dl.subject_type == d.subject_type, dl.subject_id == d.subject_id,
                                  dl.status == "sent")
        query = query.where(sent.exists())
    return query.order_by(d.occurred_at, d.rule_key, d.subject_type, d.subject_id).limit(PLAN_BATCH)


def describe(rule_name: str, severity: int, subject_type: str, summary: str | None, include_summary: bool) -> str:
    """Rule and behaviour; Code42's summary (it names files) only when asked for."""
    text = f"{rule_name}: {SEVERITIES[max(0, min(4, severity))].replace('_', ' ').lower()} risk Code42 {subject_type}"
    if include_summary and summary:
        text += f" ({summary})"
    return text[:1000]


def plan_events(engine: Engine, tenant_id: str, campaigns: CampaignFile, *, now: datetime | None = None) -> dict:
    """Add ``ksat_event`` rows for the detections the setting selects; returns rows per status."""
    settings, now = campaigns.ksat_events, now or datetime.now(UTC)
    freshness = timedelta(hours=campaigns.freshness_hours)
    planned: dict[str, int] = {}
    if settings.backfill:  # asked for: stale rows go out after all
        with engine.begin() as conn:
            n = conn.execute(t.ksat_event.update().where(t.ksat_event.c.tenant_id == tenant_id,
                                                         t.ksat_event.c.status == "stale")
                             .values(status="pending", reason=None)).rowcount
        if n:
            planned["pending"] = n
    while True:
        with engine.begin() as conn:
            rows = conn.execute(_candidates(tenant_id, settings.push)).all()
            if not rows:
                break
            states = subject_states(conn, tenant_id, campaigns.triage, [(r.subject_type, r.subject_id) for r in rows])
            out = []
            for row in rows:
                occurred, seen = as_utc(row.occurred_at), as_utc(row.first_seen_at)
                cleared = states.get((row.subject_type, row.subject_id))
                status, reason = "pending", None
                if cleared is not None and cleared.cleared:
                    status, reason = "withdrawn", f"{cleared.cleared}: not pushed"
                elif seen - occurred > freshness and not settings.backfill:
                    status, reason = "stale", (f"first seen {(seen - occurred).total_seconds() / 3600:.0f} h after it "
                                               f"happened (freshness window {campaigns.freshness_hours:g} h): not "
                                               "pushed (ksat_events.backfill pushes it)")
                out.append({
                    "tenant_id": tenant_id, "rule_key": row.rule_key, "subject_type": row.subject_type,
                    "subject_id": row.subject_id,
                    "external_id": external_id(tenant_id, row.rule_key, row.subject_type, row.subject_id),
                    "actor_id": row.actor_id, "ksat_user_id": row.ksat_user_id, "target_user": row.email,
                    "event_type": settings.event_type, "severity": row.severity,
                    "risk_level": settings.risk_levels.of(row.severity),
                    "description": describe(row.rule_name, row.severity, row.subject_type, row.summary,
                                            settings.include_summary),
                    "occurred_at": occurred, "status": status, "reason": reason, "attempts": 0,
                    "created_at": now})
                planned[status] = planned.get(status, 0) + 1
            upsert(conn, t.ksat_event, out, do_nothing=True)
    return planned


# --- pushing -------------------------------------------------------------------------------------
def _key(row) -> sa.ColumnElement[bool]:
    k = t.ksat_event.c
    return sa.and_(k.tenant_id == row.tenant_id, k.rule_key == row.rule_key, k.subject_type == row.subject_type,
                   k.subject_id == row.subject_id)


def _set(engine: Engine, row, only_from: tuple[str, ...], **values) -> int:
    with engine.begin() as conn:
        return conn.execute(t.ksat_event.update().where(_key(row), t.ksat_event.c.status.in_(only_from))
                            .values(**values)).rowcount


def ensure_event_type(engine: Engine, hook, name: str, description: str, now: datetime) -> str:
    """The event type's id: from ``ksat_event_type``, else looked up, else created (once per key)."""
    et = t.ksat_event_type.c
    with engine.connect() as conn:
        known = conn.execute(sa.select(et.type_id).where(et.key_id == hook.key_id, et.name == name)).first()
    if known is not None:
        return known.type_id
    found = [x for x in hook.event_types(name) if x.get("name") == name]
    created = found[0] if found else hook.create_event_type(name, description)
    with engine.begin() as conn:
        upsert(conn, t.ksat_event_type, [{"key_id": hook.key_id, "name": name, "type_id": str(created.get("id")),
                                          "created_at": now}], do_nothing=True)
    log.info("KnowBe4 event type %r %s (id %s)", name, "found" if found else "created", created.get("id"))
    return str(created.get("id"))


def _body(row, campaigns: CampaignFile) -> dict:
    s = campaigns.ksat_events
    occurred = as_utc(row.occurred_at)
    body = {"target_user": row.target_user, "event_type": row.event_type, "external_id": row.external_id,
            "source": s.source, "description": row.description,
            "occurred_date": occurred.strftime("%Y-%m-%dT%H:%M:%S.") + f"{occurred.microsecond // 1000:03d}Z",
            "risk_level": row.risk_level}
    if s.risk_decay_mode is not None:
        body["risk_decay_mode"] = s.risk_decay_mode
    if s.risk_expire_days is not None:
        body["risk_expire_date"] = (occurred + timedelta(days=s.risk_expire_days)).strftime("%Y-%m-%d")
    return body


def push_events(engine: Engine, tenant_id: str, campaigns: CampaignFile, hook, *, daily_quota: int,
                clock: Callable[[], datetime] = lambda: datetime.now(UTC), lease: timedelta = LEASE,
                after_post: Callable[[Any], None] | None = None, now: datetime | None = None) -> EventsResult:
    """Plan, then push, resolve and delete as the module says. ``hook``: a ``KnowBe4EventsHook`` (its
    ``gate`` is set here to the quota). ``after_post`` runs between a POST and its record (tests crash
    the worker there)."""
    from knowbe4_hook.errors import EventsRateLimited, KnowBe4ApiError, KnowBe4Error

    result = EventsResult(quota=daily_quota)
    settings = campaigns.ksat_events
    if not settings.enabled:
        result.stopped = "ksat_events.enabled is false"
        return result

    result.planned = plan_events(engine, tenant_id, campaigns, now=now or clock())
    quota = Quota(engine, hook.key_id, daily_quota, clock)
    hook.gate = quota.take

    def stop(why: str) -> None:
        result.stopped = why
        log.warning("KSAT events of tenant %s: %s; the rest waits for a later run", tenant_id, why)

    try:
        ensure_event_type(engine, hook, settings.event_type, settings.event_type_description, clock())
        # 2. rows in doubt: find them by external_id before anything may be sent again
        for row in _rows(engine, tenant_id, *IN_DOUBT, older_than=clock() - lease):
            result.add(_resolve(engine, row, hook, clock))
        # 3. pushed, then cleared by triage: delete the event (a pending one is withdrawn, no call)
        _withdraw_cleared(engine, tenant_id, campaigns, hook, clock, result)
        # 4. push
        for row in _rows(engine, tenant_id, "pending"):
            outcome = _push(engine, row, hook, campaigns, clock, after_post)
            if outcome == "failed":
                result.failures.append(f"{row.external_id}: {_last_reason(engine, row)}")
            if outcome is not None:
                result.add(outcome)
    except QuotaExhausted as exc:
        stop(str(exc))
    except EventsRateLimited as exc:
        quota.note_429()
        stop(str(exc))
    except KnowBe4ApiError as exc:
        if exc.status not in (401, 403):
            raise
        result.refused = (f"connection {getattr(hook, 'knowbe4_events_conn_id', '?')!r}: the KnowBe4 User Event "
                          f"API refused the API key ({exc})")
        stop(result.refused)
    except KnowBe4Error as exc:
        stop(f"KnowBe4 User Event API: {exc}")
        result.refused = result.stopped
    result.deferred = len(_rows(engine, tenant_id, "pending"))
    result.calls = quota.calls
    result.quota_used, result.quota = quota.used()
    log.info("KSAT events of tenant %s: planned %s, %s, %d deferred, quota %d/%d used today", tenant_id,
             result.planned, result.outcomes, result.deferred, result.quota_used, result.quota)
    return result


def _rows(engine: Engine, tenant_id: str, *statuses: str, older_than: datetime | None = None) -> list:
    """The tenant's events in ``statuses`` (a ``sending`` one only if claimed before ``older_than``)."""
    k = t.ksat_event.c
    with engine.connect() as conn:
        query = sa.select(t.ksat_event).where(k.tenant_id == tenant_id, k.status.in_(statuses))
        if older_than is not None:
            query = query.where(sa.or_(k.status != "sending", k.claimed_at < older_than))
        return conn.execute(query.order_by(k.occurred_at, k.external_id)).all()


def _withdraw_cleared(engine: Engine, tenant_id: str, campaigns: CampaignFile, hook,
                      clock: Callable[[], datetime], result: EventsResult) -> None:
    """Every event (pending or pushed) whose subject Code42 triage has cleared since."""
    candidates = _rows(engine, tenant_id, "pending", "pushed", "deleting")
    with engine.connect() as conn:
        states = subject_states(conn, tenant_id, campaigns.triage, [(r.subject_type, r.subject_id) for r in candidates])
    for row in candidates:
        state = states.get((row.subject_type, row.subject_id))
        if state is not None and state.cleared:
            result.add(_withdraw(engine, row, state.cleared, hook, clock))


def _resolve(engine: Engine, row, hook, clock: Callable[[], datetime]) -> str:
    """A row in doubt: pushed if KnowBe4 has its external_id, else pending again."""
    found = hook.find_events(row.external_id)
    if found:
        _set(engine, row, IN_DOUBT, status="pushed", event_id=str(found[0]["id"]), pushed_at=clock(),
             reason="found by external_id after an unrecorded POST")
        return "resolved_pushed"
    _set(engine, row, IN_DOUBT, status="pending", reason="not found by external_id: to be sent")
    return "resolved_pending"


def _withdraw(engine: Engine, row, cleared: str, hook, clock: Callable[[], datetime]) -> str:
    """A detection triage cleared: never pushed if pending, else its event deleted at KnowBe4."""
    if row.status == "pending":
        _set(engine, row, ("pending",), status="withdrawn", reason=f"{cleared}: not pushed")
        return "withdrawn"
    _set(engine, row, ("pushed", "deleting"), status="deleting", claimed_at=clock())
    event_id = row.event_id
    if not event_id:
        found = hook.find_events(row.external_id)
        event_id = str(found[0]["id"]) if found else None
    gone = hook.delete_event(event_id) if event_id else False
    _set(engine, row, ("deleting",), status="deleted", deleted_at=clock(), event_id=event_id,
         reason=f"{cleared}: event deleted" + ("" if gone else " (KnowBe4 had no such event)"))
    return "deleted"


def _push(engine: Engine, row, hook, campaigns: CampaignFile, clock: Callable[[], datetime],
          after_post: Callable[[Any], None] | None) -> str | None:
    """Claim, POST and record one pending event: its outcome, or None when another worker has it.
    The quota, a long 429 and a refused key are raised (the row is as it was): nothing more goes."""
    from knowbe4_hook.errors import EventsRateLimited, KnowBe4ApiError, OutcomeUnknown

    if not _set(engine, row, ("pending",), status="sending", claimed_at=clock(), attempts=row.attempts + 1,
                key_id=hook.key_id):
        return None
    try:
        request_id = hook.create_event(_body(row, campaigns))
    except OutcomeUnknown as exc:
        _set(engine, row, ("sending",), status="in_doubt", reason=str(exc)[:1000])
        return "in_doubt"
    except (QuotaExhausted, EventsRateLimited):
        _set(engine, row, ("sending",), status="pending", attempts=row.attempts, claimed_at=row.claimed_at)
        raise
    except KnowBe4ApiError as exc:
        if exc.status in (401, 403):
            _set(engine, row, ("sending",), status="pending", attempts=row.attempts, claimed_at=row.claimed_at)
            raise
        _set(engine, row, ("sending",), status="failed", reason=str(exc)[:1000])
        return "failed"
    if after_post is not None:
        after_post(row)
    _set(engine, row, ("sending",), status="pushed", request_id=request_id, pushed_at=clock(), reason=None)
    return "pushed"


def _last_reason(engine: Engine, row) -> str:
    k = t.ksat_event.c
    with engine.connect() as conn:
        return conn.execute(sa.select(k.reason).where(k.external_id == row.external_id)).scalar_one() or ""

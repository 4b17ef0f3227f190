"""Optional write-back to Code42 (``code42_notes.enabled`` in campaigns.yaml, off by default): one
note per sent SecurityTip on its session, "SecurityTip sent by campaign X at T (delivery key K)".

Exactly once per delivery, like the outbox: the delivery row is claimed (``note_status`` NULL ->
``sending``, committed), the note is POSTed once (never retried), then recorded (``noted``). A note
whose answer was lost (``in_doubt``), or a claim older than the lease (the worker stopped), is
resolved by reading the session's notes for the delivery key before the note may be written again.
An alert's tip is noted on the alert's session (``code42_session_alert``); none known: ``no_session``.
Needs the API client's "Alerts and Sessions" update permission: a 403 stops the write-back and is
reported (the tips are recorded either way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=10)


def note_text(campaign: str, sent_at: datetime, key: str) -> str:
    return f"SecurityTip sent by campaign {campaign} at {as_utc(sent_at):%Y-%m-%dT%H:%M:%SZ} (delivery key {key})"


@dataclass
class NotesResult:
    outcomes: dict[str, int] = field(default_factory=dict)
    refused: str | None = None

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _session_of(conn, row) -> str | None:
    if row.subject_type == "session":
        return row.subject_id
    sa_ = t.code42_session_alert.c
    return conn.execute(sa.select(sa_.session_id).where(sa_.tenant_id == row.tenant_id, sa_.alert_id == row.subject_id)
                        .order_by(sa_.session_id).limit(1)).scalar()


def write_notes(engine: Engine, tenant_id: str, code42, *, conn_id: str = "code42_default",
                clock: Callable[[], datetime] = lambda: datetime.now(UTC), lease: timedelta = LEASE,
                after_post: Callable[[Any], None] | None = None) -> NotesResult:
    """Note every sent, not yet noted delivery of the tenant on its Code42 session, once."""
    from code42_hook.errors import Code42ApiError, Code42Error

    dl, result = t.delivery.c, NotesResult()
    now = clock()
    with engine.connect() as conn:
        todo = conn.execute(sa.select(t.delivery).where(
            dl.tenant_id == tenant_id, dl.status == "sent",
            sa.or_(dl.note_status.is_(None), dl.note_status == "in_doubt",
                   sa.and_(dl.note_status == "sending", dl.note_at < now - lease)))
            .order_by(dl.sent_at, dl.idempotency_key)).all()
        sessions = {r.idempotency_key: _session_of(conn, r) for r in todo}
    try:
        for row in todo:
            outcome = _note_one(engine, row, sessions[row.idempotency_key], code42, clock, after_post)
            if outcome is not None:
                result.add(outcome)
    except Code42ApiError as exc:
        result.refused = (f"connection {conn_id!r}: Code42 refused the session note ({exc}); the write-back "
                          "needs the API client's \"Alerts and Sessions\" update permission (code42_notes)")
        log.error("%s", result.refused)
    except Code42Error as exc:
        result.refused = f"connection {conn_id!r}: Code42 session notes could not be written ({exc})"
        log.error("%s", result.refused)
    log.info("Code42 notes of tenant %s: %s", tenant_id, result.outcomes)
    return result


def _set_note(engine: Engine, row, only_from: tuple, **values) -> int:
    """Move ``row``'s note state to ``values`` if it is still one of ``only_from`` (None: no note yet)."""
    dl = t.delivery.c
    key = sa.and_(dl.tenant_id == row.tenant_id, dl.campaign == row.campaign, dl.rule_key == row.rule_key,
                  dl.subject_type == row.subject_type, dl.subject_id == row.subject_id)
    where = sa.or_(dl.note_status.is_(None), dl.note_status.in_([s for s in only_from if s])) \
        if None in only_from else dl.note_status.in_(only_from)
    with engine.begin() as conn:
        return conn.execute(t.delivery.update().where(key, where).values(**values)).rowcount


def _note_one(engine: Engine, row, session_id: str | None, code42, clock: Callable[[], datetime],
              after_post: Callable[[Any], None] | None) -> str | None:
    """Write one delivery's note (claim, look first if in doubt, post, record): its outcome, or None
    when another worker holds it. A refusal (401/403) is raised: no other note would pass either."""
    from code42_hook.errors import Code42ApiError, OutcomeUnknown

    if session_id is None:
        _set_note(engine, row, (None,), note_status="no_session", note_at=clock())
        return "no_session"
    if row.note_status in ("sending", "in_doubt"):  # did the note arrive? look before writing again
        notes = code42.get_session(session_id).notes or []
        if any(row.idempotency_key in str(n.get("content", "")) for n in notes):
            _set_note(engine, row, ("sending", "in_doubt"), note_status="noted", note_at=clock())
            return "resolved_noted"
    if not _set_note(engine, row, (None, "sending", "in_doubt"), note_status="sending", note_at=clock()):
        return None
    try:
        code42.add_session_note(session_id, note_text(row.campaign, row.sent_at, row.idempotency_key))
    except OutcomeUnknown:
        _set_note(engine, row, ("sending",), note_status="in_doubt")
        return "in_doubt"
    except Code42ApiError as exc:
        _set_note(engine, row, ("sending",), note_status=row.note_status, note_at=row.note_at)
        if exc.status in (401, 403):
            raise
        return "retry_later"
    if after_post is not None:
        after_post(row)
    _set_note(engine, row, ("sending",), note_status="noted", note_at=clock())
    return "noted"

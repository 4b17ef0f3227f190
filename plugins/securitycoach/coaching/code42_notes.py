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
    from code42_hook.errors import Code42ApiError, Code42Error, OutcomeUnknown

    dl, result = t.delivery.c, NotesResult()

    def key(row):
        return sa.and_(dl.tenant_id == row.tenant_id, dl.campaign == row.campaign, dl.rule_key == row.rule_key,
                       dl.subject_type == row.subject_type, dl.subject_id == row.subject_id)

    def set_(row, only_from, **values) -> int:
        where = sa.or_(dl.note_status.is_(None), dl.note_status.in_([s for s in only_from if s])) \
            if None in only_from else dl.note_status.in_(only_from)
        with engine.begin() as conn:
            return conn.execute(t.delivery.update().where(key(row), where).values(**values)).rowcount

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
            session_id = sessions[row.idempotency_key]
            if session_id is None:
                set_(row, (None,), note_status="no_session", note_at=clock())
                result.add("no_session")
                continue
            text = note_text(row.campaign, row.sent_at, row.idempotency_key)
            if row.note_status in ("sending", "in_doubt"):  # did the note arrive? look before writing again
                notes = code42.get_session(session_id).notes or []
                if any(row.idempotency_key in str(n.get("content", "")) for n in notes):
                    set_(row, ("sending", "in_doubt"), note_status="noted", note_at=clock())
                    result.add("resolved_noted")
                    continue
            if not set_(row, (None, "sending", "in_doubt"), note_status="sending", note_at=clock()):
                continue
            try:
                code42.add_session_note(session_id, text)
            except OutcomeUnknown:
                set_(row, ("sending",), note_status="in_doubt")
                result.add("in_doubt")
                continue
            except Code42ApiError as exc:
                set_(row, ("sending",), note_status=row.note_status, note_at=row.note_at)
                if exc.status in (401, 403):
                    raise
                result.add("retry_later")
                continue
            if after_post is not None:
                after_post(row)
            set_(row, ("sending",), note_status="noted", note_at=clock())
            result.add("noted")
    except Code42ApiError as exc:
        result.refused = (f"connection {conn_id!r}: Code42 refused the session note ({exc}); the write-back "
                          "needs the API client's \"Alerts and Sessions\" update permission (code42_notes)")
        log.error("%s", result.refused)
    except Code42Error as exc:
        result.refused = f"connection {conn_id!r}: Code42 session notes could not be written ({exc})"
        log.error("%s", result.refused)
    log.info("Code42 notes of tenant %s: %s", tenant_id, result.outcomes)
    return result

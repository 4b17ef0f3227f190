"""The Code42 streams the sync moves, each declared with its key, cursor and loader.

A stream says how to fetch its items for an interval from the Code42 client (the hook), how to
name an item (its Code42 id), which field is its replication cursor, and how a batch of staged
items becomes warehouse rows. The extract and load steps in ``sync`` are generic over streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from securitycoach import transform
from securitycoach.timeutil import as_utc, from_epoch_ms, from_iso
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert


@dataclass(frozen=True)
class Stream:
    name: str
    fetch: Callable[[Any, datetime, datetime], Iterable[dict]]
    record_id: Callable[[dict], str]
    cursor: Callable[[dict], datetime | None]
    load_batch: Callable[[Connection, str, list[dict]], int]
    # The same load done inside PostgreSQL, straight from staging: include/sql/load/<name>.sql
    # (statements over a record_id range; its SELECT counts the rows new or changed). It must do
    # what load_batch does, detection queue included: the tests compare SQLite and PostgreSQL.
    load_sql_postgresql: str | None = None
    # The tables the load writes (their planner statistics are refreshed after a bulk load).
    tables: tuple[str, ...] = ()


def _raw(records: Iterable[Any]) -> Iterator[dict]:
    for record in records:
        yield record.raw


def load_sessions(conn: Connection, tenant_id: str, items: list[dict]) -> int:
    """Upsert sessions whose ``lastUpdated`` is newer than the warehouse's; replace their children.

    Returns how many sessions were new or changed. Equal or older ``lastUpdated`` leaves a
    session (and its indicators and triggered alerts) exactly as it was.
    """
    parsed = [transform.session_rows(tenant_id, item) for item in items]
    ids = [p[0]["session_id"] for p in parsed]
    stored = dict(
        conn.execute(
            sa.select(t.code42_session.c.session_id, t.code42_session.c.last_updated).where(
                t.code42_session.c.tenant_id == tenant_id, t.code42_session.c.session_id.in_(ids)
            )
        ).all()
    )
    changed = [
        p for p in parsed
        if p[0]["session_id"] not in stored or as_utc(stored[p[0]["session_id"]]) < p[0]["last_updated"]
    ]
    if not changed:
        return 0
    changed_ids = [p[0]["session_id"] for p in changed]
    for child in (t.code42_session_risk_indicator, t.code42_session_alert):
        conn.execute(
            child.delete().where(child.c.tenant_id == tenant_id, child.c.session_id.in_(changed_ids))
        )
    upsert(conn, t.code42_session_risk_indicator, [r for p in changed for r in p[1]])
    upsert(conn, t.code42_session_alert, [r for p in changed for r in p[2]])
    upsert(conn, t.code42_session, [p[0] for p in changed], only_if_newer="last_updated")
    queue_for_detection(conn, tenant_id, "session", changed_ids)
    return len(changed)


def load_alerts(conn: Connection, tenant_id: str, items: list[dict]) -> int:
    """Upsert alerts that are new or whose state changed; returns how many that was."""
    rows = [transform.alert_row(tenant_id, item) for item in items]
    a = t.code42_alert.c
    stored = {
        r.alert_id: (r.state, as_utc(r.state_last_modified_at))
        for r in conn.execute(
            sa.select(a.alert_id, a.state, a.state_last_modified_at).where(
                a.tenant_id == tenant_id, a.alert_id.in_([r["alert_id"] for r in rows])
            )
        )
    }
    changed = [r for r in rows if stored.get(r["alert_id"]) != (r["state"], r["state_last_modified_at"])]
    upsert(conn, t.code42_alert, changed)
    queue_for_detection(conn, tenant_id, "alert", [r["alert_id"] for r in changed])
    return len(changed)


def queue_for_detection(conn: Connection, tenant_id: str, subject_type: str, ids: list[str]) -> None:
    """Hand new or changed subjects to the detection task (same transaction as the facts)."""
    upsert(conn, t.detection_queue, [{"tenant_id": tenant_id, "subject_type": subject_type, "subject_id": i}
                                     for i in ids], do_nothing=True)


SESSIONS = Stream(
    name="sessions",
    # Every session in the window: both of the API's listings (has_alerts true and false), since
    # alerts arrive late and risk-based detection rules look at sessions without one.
    fetch=lambda client, start, end: _raw(client.iter_sessions(start, end)),
    record_id=lambda item: str(item["sessionId"]),
    cursor=lambda item: from_epoch_ms(item.get("lastUpdated")),
    load_batch=load_sessions,
    load_sql_postgresql="postgresql_sessions",
    tables=(t.code42_session.name, t.code42_session_risk_indicator.name, t.code42_session_alert.name,
            t.detection_queue.name),
)

ALERTS = Stream(
    name="alerts",
    fetch=lambda client, start, end: _raw(client.iter_alerts(start, end)),
    record_id=lambda item: str(item["id"]),
    cursor=lambda item: from_iso(item.get("createdAt")),
    load_batch=load_alerts,
    load_sql_postgresql="postgresql_alerts",
    tables=(t.code42_alert.name, t.detection_queue.name),
)

STREAMS = {s.name: s for s in (SESSIONS, ALERTS)}

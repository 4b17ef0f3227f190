"""The Code42 streams the sync moves, each declared with its key, cursor and loader.

A stream says how to fetch its items for an interval from the Code42 client (the hook), how to
name an item (its Code42 id), which field is its replication cursor, and how a batch of staged
items becomes warehouse rows. The extract and load steps in ``sync`` are generic over streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

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
    # The same load done inside PostgreSQL, straight from staging, over one record_id range
    # (after < record_id <= upto) of one run: (conn, tenant_id, run_key, after, upto) -> rows new or
    # changed. Built from the same field maps as load_batch, detection queue included.
    load_postgresql: Callable[[Connection, str, str, str, str], int] | None = None
    # The tables the load writes (their planner statistics are refreshed after a bulk load).
    tables: tuple[str, ...] = ()
    # The fact column the stream's window is on (begin time, created time): a window's rows are
    # the tenant's rows with start <= column < end (what ``sync.count_window`` counts).
    window_column: sa.Column | None = None
    # What the API said the window of the client's latest fetch holds (its totalCount), or None.
    api_total: Callable[[Any], int | None] = lambda client: None
    # How many items the API says [start, end) holds: (client, start, end) -> int (a count request).
    count: Callable[[Any, datetime, datetime], int] | None = None


def _raw(records: Iterable[Any]) -> Iterator[dict]:
    for record in records:
        yield record.raw


def session_rows(tenant_id: str, item: dict) -> tuple[dict, list[dict], list[dict]]:
    """One session -> (session row, risk-indicator rows, triggered-alert rows), by the field maps."""
    session = t.SESSION_FIELDS.row(item, tenant_id=tenant_id)
    parent = {"tenant_id": tenant_id, "session_id": session["session_id"]}
    return (session, t.SESSION_RISK_INDICATOR_FIELDS.rows(item, **parent),
            t.SESSION_ALERT_FIELDS.rows(item, **parent))


def load_sessions(conn: Connection, tenant_id: str, items: list[dict]) -> int:
    """Upsert sessions whose ``lastUpdated`` is newer than the warehouse's; replace their children.

    Returns how many sessions were new or changed. Equal or older ``lastUpdated`` leaves a
    session (and its indicators and triggered alerts) exactly as it was.
    """
    parsed = [session_rows(tenant_id, item) for item in items]
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
    rows = [t.ALERT_FIELDS.row(item, tenant_id=tenant_id) for item in items]
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


# --- the same loads inside PostgreSQL (SQLAlchemy Core over the staged JSONB payloads) ------------
_TENANT = sa.bindparam("tenant_id", type_=sa.String)


def _staged_range(stream: str) -> sa.ColumnElement[bool]:
    s = t.staging_record.c
    return sa.and_(s.tenant_id == _TENANT, s.run_key == sa.bindparam("run_key", type_=sa.String),
                   s.stream == stream, s.record_id > sa.bindparam("after", type_=sa.String),
                   s.record_id <= sa.bindparam("upto", type_=sa.String))


def _work_table(name: str, *columns: sa.Column) -> sa.Table:
    """A temporary table of the batch's new or changed items (dropped at commit at the latest)."""
    return sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _upsert_from(table: sa.Table, names: list[str], query: sa.Select, where=None):
    insert = postgresql.insert(table).from_select(names, query)
    keys = [c.name for c in table.primary_key.columns]
    return insert.on_conflict_do_update(
        index_elements=keys, set_={n: insert.excluded[n] for n in names if n not in keys}, where=where)


def _queue_from(subject_type: str, ids: sa.ColumnElement) -> sa.Insert:
    return postgresql.insert(t.detection_queue).from_select(
        ["tenant_id", "subject_type", "subject_id"], sa.select(_TENANT, sa.literal(subject_type), ids)
    ).on_conflict_do_nothing()


def _run(conn: Connection, work: sa.Table, statements: list[sa.Executable], params: dict) -> int:
    # ISO times without an offset are UTC (the Python path's from_iso), whatever the server's zone.
    conn.execute(sa.select(sa.func.set_config("TimeZone", "UTC", True)))
    work.create(conn)  # in the batch's transaction: a failure rolls its creation back with the rest
    for number, statement in enumerate(statements):
        conn.execute(statement, params)
        if number == 0:  # planner statistics of the work table, before the statements that join it
            conn.exec_driver_sql(f'ANALYZE "{work.name}"')
    count = conn.execute(sa.select(sa.func.count()).select_from(work)).scalar_one()
    work.drop(conn)
    return count


@cache
def _session_statements() -> tuple[sa.Table, list[sa.Executable]]:
    s, c = t.staging_record.c, t.code42_session.c
    work = _work_table("_changed_session", sa.Column("session_id", sa.Text), sa.Column("p", JSONB),
                       sa.Column("last_updated", t.Ts), sa.Column("existed", sa.Boolean))
    w = work.c
    last_updated = t.SESSION_FIELDS.value("last_updated", s.payload)
    changed = work.insert().from_select(
        ["session_id", "p", "last_updated", "existed"],
        sa.select(s.record_id, s.payload, last_updated, c.session_id.is_not(None))
        .select_from(t.staging_record.outerjoin(
            t.code42_session, sa.and_(c.tenant_id == s.tenant_id, c.session_id == s.record_id)))
        .where(_staged_range("sessions"), sa.or_(c.session_id.is_(None), c.last_updated < last_updated)))
    statements: list[sa.Executable] = [changed]
    # Only sessions already stored have children to replace (index lookups, not a scan per batch).
    existed = sa.select(w.session_id).where(w.existed)
    children = ((t.code42_session_risk_indicator, t.SESSION_RISK_INDICATOR_FIELDS),
                (t.code42_session_alert, t.SESSION_ALERT_FIELDS))
    for child, _ in children:
        statements.append(child.delete().where(child.c.tenant_id == _TENANT, child.c.session_id.in_(existed)))
    parent = {"tenant_id": _TENANT, "session_id": w.session_id}
    for child, fields in children:
        statements.append(child.insert().from_select(
            fields.names(**parent), fields.select_each(work, w.p, [w.session_id], **parent)))
    given = {**parent, "last_updated": w.last_updated}
    statements.append(_upsert_from(t.code42_session, t.SESSION_FIELDS.names(**given),
                                   t.SESSION_FIELDS.select(work, w.p, **given),
                                   where=c.last_updated < postgresql.insert(t.code42_session).excluded.last_updated))
    statements.append(_queue_from("session", w.session_id))
    return work, statements


@cache
def _alert_statements() -> tuple[sa.Table, list[sa.Executable]]:
    s, c = t.staging_record.c, t.code42_alert.c
    work = _work_table("_changed_alert", sa.Column("alert_id", sa.Text), sa.Column("p", JSONB),
                       sa.Column("state", sa.Text), sa.Column("state_last_modified_at", t.Ts))
    w = work.c
    fields = t.ALERT_FIELDS
    staged = sa.select(fields.value("alert_id", s.payload).label("alert_id"), s.payload.label("p"),
                       fields.value("state", s.payload).label("state"),
                       fields.value("state_last_modified_at", s.payload).label("state_last_modified_at")
                       ).where(_staged_range("alerts")).subquery("n")
    n = staged.c
    changed = work.insert().from_select(
        ["alert_id", "p", "state", "state_last_modified_at"],
        sa.select(n.alert_id, n.p, n.state, n.state_last_modified_at)
        .select_from(staged.outerjoin(t.code42_alert, sa.and_(c.tenant_id == _TENANT, c.alert_id == n.alert_id)))
        .where(sa.or_(c.alert_id.is_(None), c.state.is_distinct_from(n.state),
                      c.state_last_modified_at.is_distinct_from(n.state_last_modified_at))))
    given = {"tenant_id": _TENANT, "alert_id": w.alert_id, "state": w.state,
             "state_last_modified_at": w.state_last_modified_at}
    return work, [changed, _upsert_from(t.code42_alert, fields.names(**given), fields.select(work, w.p, **given)),
                  _queue_from("alert", w.alert_id)]


def load_sessions_in_postgresql(conn: Connection, tenant_id: str, run_key: str, after: str, upto: str) -> int:
    """``load_sessions`` of the staged range, inside PostgreSQL; returns sessions new or changed."""
    work, statements = _session_statements()
    return _run(conn, work, statements, {"tenant_id": tenant_id, "run_key": run_key, "after": after, "upto": upto})


def load_alerts_in_postgresql(conn: Connection, tenant_id: str, run_key: str, after: str, upto: str) -> int:
    """``load_alerts`` of the staged range, inside PostgreSQL; returns alerts new or changed."""
    work, statements = _alert_statements()
    return _run(conn, work, statements, {"tenant_id": tenant_id, "run_key": run_key, "after": after, "upto": upto})


SESSIONS = Stream(
    name="sessions",
    # Every session in the window: both of the API's listings (has_alerts true and false), since
    # alerts arrive late and risk-based detection rules look at sessions without one.
    fetch=lambda client, start, end: _raw(client.iter_sessions(start, end)),
    record_id=lambda item: str(item["sessionId"]),
    cursor=lambda item: from_epoch_ms(item.get("lastUpdated")),
    load_batch=load_sessions,
    load_postgresql=load_sessions_in_postgresql,
    tables=(t.code42_session.name, t.code42_session_risk_indicator.name, t.code42_session_alert.name,
            t.detection_queue.name),
    window_column=t.code42_session.c.begin_time,
    api_total=lambda client: client.totals.get("sessions"),
    count=lambda client, start, end: client.count_sessions(start, end),
)

ALERTS = Stream(
    name="alerts",
    fetch=lambda client, start, end: _raw(client.iter_alerts(start, end)),
    record_id=lambda item: str(item["id"]),
    cursor=lambda item: from_iso(item.get("createdAt")),
    load_batch=load_alerts,
    load_postgresql=load_alerts_in_postgresql,
    tables=(t.code42_alert.name, t.detection_queue.name),
    window_column=t.code42_alert.c.created_at,
    api_total=lambda client: client.totals.get("alerts"),
    count=lambda client, start, end: client.count_alerts(start, end),
)

STREAMS = {s.name: s for s in (SESSIONS, ALERTS)}

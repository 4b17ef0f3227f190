"""Idempotent batched writes: ``INSERT ... ON CONFLICT`` in the engine's own dialect.

Every value is stored as given, with one exception: U+0000 (NUL), which PostgreSQL text and JSON
cannot hold, becomes U+FFFD in strings (JSON documents included), on every backend alike, so a
hostile API string neither fails the load forever nor makes SQLite and PostgreSQL differ.

On PostgreSQL a large batch goes through ``COPY`` into a temporary table and one
``INSERT ... SELECT ... ON CONFLICT``: one round trip for the rows instead of one statement per
page of parameters, and no per-row parameter binding in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
NUL, REPLACEMENT = "\x00", "\ufffd"
COPY_MIN_ROWS = 50  # smaller batches: a plain executemany is as quick


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    only_if_newer: str | None = None,
    only_if_changed: Sequence[str] = (),
    keep: Sequence[str] = (),
    returning: Sequence[str] = (),
    do_nothing: bool = False,
) -> list[sa.Row]:
    """Insert ``rows`` into ``table``; on a primary-key conflict update the non-key columns.

    ``only_if_newer`` names a column: the update happens only when the incoming value is greater
    than the stored one (e.g. a session's ``last_updated``). ``only_if_changed`` names columns: the
    update happens only when one of them differs from the stored value (so a rerun writes nothing).
    ``keep`` names columns an update leaves as stored (e.g. a first-seen time). ``returning`` names
    columns to return for every row inserted or updated (rows left alone are not returned); else
    nothing is returned. One statement per call. Rows that repeat a key within the batch (a page
    shift can return an item twice) collapse to one: the newest by ``only_if_newer``, else the last.
    """
    if not rows:
        return []
    insert = _INSERTS[conn.dialect.name](table)
    keys = [c.name for c in table.primary_key.columns]
    rows = _last_per_key([_without_nul(table, keys, row) for row in rows], keys, only_if_newer)
    copy = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= COPY_MIN_ROWS
    if copy:
        source = _copy_to_temp(conn, table, rows)
        insert = insert.from_select([c.name for c in table.columns], sa.select(*source.columns))
    if do_nothing:
        stmt = insert.on_conflict_do_nothing(index_elements=keys)
    else:
        updates = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys and c.name not in keep}
        conditions = [table.c[c].is_distinct_from(insert.excluded[c]) for c in only_if_changed]
        where = sa.or_(*conditions) if conditions else None
        if only_if_newer:
            newer = table.c[only_if_newer] < insert.excluded[only_if_newer]
            where = newer if where is None else sa.and_(newer, where)
        stmt = insert.on_conflict_do_update(index_elements=keys, set_=updates, where=where)
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    result = conn.execute(stmt) if copy else conn.execute(stmt, list(rows))
    written = result.all() if returning else []
    if copy:
        conn.exec_driver_sql(f'DROP TABLE "{source.name}"')
    return written


def _copy_to_temp(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> sa.Table:
    """``rows`` into a new temporary table shaped like ``table`` (dropped at commit), by psycopg 3's
    COPY (``Cursor.copy``, which encodes each value for COPY itself)."""
    name = f"_copy_{table.name}"
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{name}" (LIKE "{table.name}") ON COMMIT DROP')
    columns = [c.name for c in table.columns]
    # JSON columns: a document, and None is JSON null (as SQLAlchemy's JSON type stores it), not NULL.
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    column_list = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.dbapi_connection.cursor() as cursor, \
            cursor.copy(f'COPY "{name}" ({column_list}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Jsonb(row.get(c)) if c in json_columns else row.get(c) for c in columns])
    return sa.table(name, *(sa.column(c) for c in columns))


def _last_per_key(rows: Sequence[dict[str, Any]], keys: list[str], newest_by: str | None) -> list[dict]:
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        held = chosen.get(key)
        if held is None or newest_by is None or held[newest_by] <= row[newest_by]:
            chosen[key] = row
    return list(chosen.values())


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict | list | tuple) and "\\x00" not in repr(value):
        return False  # fast path: repr (C speed) shows every NUL in a nested string as \x00
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {_replace_nul(k): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_nul(v) for v in value]
    return value


def _without_nul(table: sa.Table, keys: list[str], row: dict[str, Any]) -> dict[str, Any]:
    if "\\x00" not in repr(tuple(row.values())):
        return row  # fast path, as in _has_nul: the row's repr (C speed) shows every NUL as \x00
    columns = [name for name, value in row.items() if _has_nul(value)]
    if not columns:
        return row
    log.warning("%s %s: U+0000 in %s stored as U+FFFD (PostgreSQL cannot store NUL)", table.name,
                "/".join(str(row.get(k)).replace(NUL, REPLACEMENT) for k in keys), ", ".join(columns))
    return {name: _replace_nul(value) if name in columns else value for name, value in row.items()}


def upsert_changed(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], stored: dict[tuple, Any]) -> int:
    """Upsert only the rows that differ from ``stored`` (primary key tuple -> stored row) in a
    column that is not a wall-clock column (``info={"wall_clock": True}``), so timestamps such as
    ``updated_at`` move only when the row really changed. Returns how many rows were written."""
    keys = [c.name for c in table.primary_key.columns]
    compared = [c.name for c in table.columns if not c.info.get("wall_clock") and c.name not in keys]
    changed = []
    for row in rows:
        held = stored.get(tuple(row[k] for k in keys))
        if held is None or any(row[c] != held._mapping[c] for c in compared if c in row):
            changed.append(row)
    upsert(conn, table, changed)
    return len(changed)

"""Idempotent batched writes: ``INSERT ... ON CONFLICT`` in the engine's own dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    only_if_newer: str | None = None,
    do_nothing: bool = False,
) -> None:
    """Insert ``rows`` into ``table``; on a primary-key conflict update the non-key columns.

    ``only_if_newer`` names a column: the update happens only when the incoming value is greater
    than the stored one (e.g. a session's ``last_updated``). One executemany per call. Rows that
    repeat a key within the batch (a page shift can return an item twice) collapse to one: the
    newest by ``only_if_newer``, else the last.
    """
    if not rows:
        return
    insert = _INSERTS[conn.dialect.name](table)
    keys = [c.name for c in table.primary_key.columns]
    rows = _last_per_key(rows, keys, only_if_newer)
    if do_nothing:
        stmt = insert.on_conflict_do_nothing(index_elements=keys)
    else:
        updates = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
        where = None
        if only_if_newer:
            where = table.c[only_if_newer] < insert.excluded[only_if_newer]
        stmt = insert.on_conflict_do_update(index_elements=keys, set_=updates, where=where)
    conn.execute(stmt, list(rows))


def _last_per_key(rows: Sequence[dict[str, Any]], keys: list[str], newest_by: str | None) -> list[dict]:
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        held = chosen.get(key)
        if held is None or newest_by is None or held[newest_by] <= row[newest_by]:
            chosen[key] = row
    return list(chosen.values())

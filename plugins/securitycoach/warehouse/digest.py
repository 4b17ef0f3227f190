"""Digest of warehouse tables: compare two warehouses (or one before/after) row for row.

Rows are read in primary-key order and normalised (datetimes as UTC ISO-8601, JSON canonical),
so a SQLite and a PostgreSQL warehouse holding the same data give the same digest. Columns that
only say when the pipeline did something (``info={"wall_clock": True}`` in schema.py, e.g. a
detection's ``first_seen_at``) are left out: two runs of the same data at different times agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.timeutil import as_utc
from securitycoach.warehouse.schema import FACT_TABLES


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def table_digests(
    engine: Engine, tables: Iterable[sa.Table] = FACT_TABLES, tenant_id: str | None = None
) -> dict[str, tuple[int, str]]:
    """``{table name: (row count, sha256 of the normalised rows)}``."""
    result = {}
    with engine.connect() as conn:
        for table in tables:
            columns = [c for c in table.columns if not c.info.get("wall_clock")]
            query = sa.select(*columns).order_by(*table.primary_key.columns)
            if tenant_id is not None:
                query = query.where(table.c.tenant_id == tenant_id)
            digest = hashlib.sha256()
            count = 0
            for row in conn.execute(query).mappings():
                normal = {k: _normal(v) for k, v in row.items()}
                digest.update(json.dumps(normal, sort_keys=True, default=str).encode())
                count += 1
            result[table.name] = (count, digest.hexdigest())
    return result

"""Create or upgrade the warehouse schema: one command, one task, versioned.

A new warehouse gets every table straight from ``schema.metadata`` and is stamped with the
latest version. An older warehouse gets each ``include/sql/migrations/NNNN_*.sql`` whose number
is above its version, in order, each in its own transaction. Views in ``include/sql/views`` are
(re)created after every migration so they always match the tables.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from securitycoach.paths import sql_dir
from securitycoach.warehouse.schema import metadata, schema_version

log = logging.getLogger(__name__)

# Bump together with a new include/sql/migrations/NNNN_*.sql file and the matching change in
# schema.py.
SCHEMA_VERSION = 3
_BASELINE = "baseline: code42 facts, staging, audit, mapping, detection and coaching"


def migrate(engine: Engine) -> int:
    """Bring the warehouse to ``SCHEMA_VERSION``; returns the version it had before (0 = new).

    On PostgreSQL concurrent callers (parallel DAG runs' ``ensure_schema``, e.g. a backfill's first
    runs on a new warehouse) take turns on an advisory lock per schema instead of racing.
    """
    if engine.dialect.name != "postgresql":
        return _migrate(engine)
    lock = "SELECT {}(hashtext(current_schema() || ':securitycoach-migrate'))"
    with engine.connect() as holder:
        holder.exec_driver_sql(lock.format("pg_advisory_lock"))
        try:
            return _migrate(engine)
        finally:
            holder.exec_driver_sql(lock.format("pg_advisory_unlock"))
            holder.commit()


def _migrate(engine: Engine) -> int:
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"warehouse schema is at version {current}, newer than this code "
                f"({SCHEMA_VERSION}); upgrade the project before running it"
            )
        if current == 0:
            metadata.create_all(conn)
            _stamp(conn, SCHEMA_VERSION, _BASELINE)
            log.info("created warehouse schema version %s", SCHEMA_VERSION)
    if 0 < current < SCHEMA_VERSION:
        for version, path in _migrations(after=current):
            with engine.begin() as conn:
                _run_script(conn, path)
                # tables a version adds come straight from schema.py (checkfirst): the script
                # only carries what create_all cannot do (altered columns, data moves)
                metadata.create_all(conn)
                _stamp(conn, version, path.stem)
            log.info("upgraded warehouse schema to version %s (%s)", version, path.name)
    with engine.begin() as conn:
        for path in sorted((sql_dir() / "views").glob("*.sql")):
            _run_script(conn, path)
    return current


def _stamp(conn: Connection, version: int, description: str) -> None:
    conn.execute(
        schema_version.insert().values(
            version=version, description=description, applied_at=datetime.now(UTC)
        )
    )


def _migrations(after: int) -> list[tuple[int, Path]]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:4])
        if after < version <= SCHEMA_VERSION:
            found.append((version, path))
    return found


def _run_script(conn: Connection, path: Path) -> None:
    """Run a SQL file statement by statement (``;`` at end of line separates statements)."""
    text = path.read_text(encoding="utf-8")
    for statement in re.split(r";\s*$", text, flags=re.MULTILINE):
        body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            conn.exec_driver_sql(body)

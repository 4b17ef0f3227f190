"""Create or upgrade the warehouse schema: one command, one task, versioned.

A new warehouse gets every table straight from ``schema.metadata`` and is stamped with the
latest version. An older warehouse gets each ``include/sql/migrations/NNNN_*.sql`` whose number
is above its version, in order, each in its own transaction. Views in ``include/sql/views`` are
(re)created after every migration so they always match the tables: ``x.sql`` is portable, and
``x.<dialect>.sql`` (``x.sqlite.sql``, ``x.postgresql.sql``) replaces it on that dialect. Views are
created in name order, so the dialect-specific ``base_*`` helpers come before the ``rpt_*`` views
that read them.

On PostgreSQL the same transaction that recreates the views (re)grants the analyst role
(``SECURITYCOACH_ANALYST_ROLE``, default ``securitycoach_analyst``, NOLOGIN): USAGE on the schema
and SELECT on the ``rpt_*`` views, nothing else.
"""

from __future__ import annotations

import logging
import os
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
SCHEMA_VERSION = 6
_BASELINE = ("baseline: code42 facts, staging, audit, mapping, detection, coaching, reporting, deletion actions "
             "and KSAT events")

ANALYST_ROLE_ENV = "SECURITYCOACH_ANALYST_ROLE"
DEFAULT_ANALYST_ROLE = "securitycoach_analyst"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DIALECTS = ("sqlite", "postgresql")


def migrate(engine: Engine, *, analyst_role: str | None = None) -> int:
    """Bring the warehouse to ``SCHEMA_VERSION``; returns the version it had before (0 = new).

    On PostgreSQL concurrent callers (parallel DAG runs' ``ensure_schema``, e.g. a backfill's first
    runs on a new warehouse) take turns on an advisory lock per schema instead of racing.
    ``analyst_role`` (PostgreSQL only) defaults to ``$SECURITYCOACH_ANALYST_ROLE`` or
    ``securitycoach_analyst``; an empty name leaves roles alone.
    """
    if engine.dialect.name != "postgresql":
        return _migrate(engine)
    role = analyst_role_name(analyst_role)
    lock = "SELECT {}(hashtext(current_schema() || ':securitycoach-migrate'))"
    with engine.connect() as holder:
        holder.exec_driver_sql(lock.format("pg_advisory_lock"))
        try:
            return _migrate(engine, role)
        finally:
            holder.exec_driver_sql(lock.format("pg_advisory_unlock"))
            holder.commit()


def analyst_role_name(name: str | None = None) -> str:
    """The analyst role to manage ('' = none): ``name``, else the environment, else the default."""
    source = "analyst_role"
    if name is None:
        source = ANALYST_ROLE_ENV
        name = os.environ.get(ANALYST_ROLE_ENV, DEFAULT_ANALYST_ROLE)
    if name and not _ROLE_NAME.fullmatch(name):
        raise ValueError(f"{source}: {name!r} is not a usable PostgreSQL role name (lowercase letters, "
                         "digits and _, starting with a letter or _, at most 63 characters; empty = "
                         "manage no role)")
    return name


def _migrate(engine: Engine, analyst_role: str = "") -> int:
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
        for version, path in _migrations(after=current, dialect=engine.dialect.name):
            with engine.begin() as conn:
                _run_script(conn, path)
                # tables a version adds come straight from schema.py (checkfirst): the script
                # only carries what create_all cannot do (altered columns, data moves)
                metadata.create_all(conn)
                _stamp(conn, version, path.stem)
            log.info("upgraded warehouse schema to version %s (%s)", version, path.name)
    with engine.begin() as conn:
        for path in view_files(engine.dialect.name):
            _run_script(conn, path)
        if engine.dialect.name == "postgresql" and analyst_role:
            _grant_analyst(conn, analyst_role)
    return current


def view_files(dialect: str) -> list[Path]:
    """The view scripts for ``dialect`` in creation order: ``x.<dialect>.sql`` over ``x.sql``."""
    by_view: dict[str, dict[str, Path]] = {}
    for path in (sql_dir() / "views").glob("*.sql"):
        view, _, variant = path.name[: -len(".sql")].partition(".")
        if variant and variant not in _DIALECTS:
            raise RuntimeError(f"{path}: unknown dialect {variant!r} (use one of {list(_DIALECTS)})")
        by_view.setdefault(view, {})[variant] = path
    files = []
    for view in sorted(by_view):
        path = by_view[view].get(dialect) or by_view[view].get("")
        if path is None:
            raise RuntimeError(f"include/sql/views: view {view} has no {dialect} variant and no portable {view}.sql")
        files.append(path)
    return files


def _grant_analyst(conn: Connection, role: str) -> None:
    """(Re)grant ``role``: USAGE on this schema, SELECT on its ``rpt_*`` views, nothing else.

    Roles are cluster-wide, so migrations of two schemas can race to create the same role: a
    transaction lock on the role's name serialises them (and their GRANTs, which PostgreSQL does not
    like to run side by side on one object).
    """
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('securitycoach-analyst-role:' || :r))"), {"r": role})
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if not exists:
        may_create = conn.execute(sa.text(
            "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
        if not may_create:
            log.warning("analyst role %s does not exist and %s may not create roles: create it "
                        "(CREATE ROLE %s NOLOGIN) or set %s to an existing role; no reporting grants made",
                        role, conn.execute(sa.text("SELECT current_user")).scalar(), role, ANALYST_ROLE_ENV)
            return
        conn.exec_driver_sql(f'CREATE ROLE "{role}" NOLOGIN')
        log.info("created analyst role %s", role)
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    quoted = '"' + schema.replace('"', '""') + '"'
    conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA {quoted} TO "{role}"')
    conn.exec_driver_sql(f'REVOKE ALL ON ALL TABLES IN SCHEMA {quoted} FROM "{role}"')
    views = conn.execute(sa.text(
        "SELECT table_name FROM information_schema.views WHERE table_schema = current_schema() "
        "AND table_name LIKE 'rpt\\_%' ORDER BY table_name")).scalars().all()
    for view in views:
        conn.exec_driver_sql(f'GRANT SELECT ON {quoted}."{view}" TO "{role}"')


def _stamp(conn: Connection, version: int, description: str) -> None:
    conn.execute(
        schema_version.insert().values(
            version=version, description=description, applied_at=datetime.now(UTC)
        )
    )


def _migrations(after: int, dialect: str = "") -> list[tuple[int, Path]]:
    """The scripts above ``after``: ``NNNN_x.<dialect>.sql`` replaces ``NNNN_x.sql`` on that dialect."""
    by_version: dict[int, dict[str, Path]] = {}
    for path in sorted((sql_dir() / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:4])
        variant = path.name[: -len(".sql")].partition(".")[2]
        if after < version <= SCHEMA_VERSION:
            by_version.setdefault(version, {})[variant] = path
    return [(v, paths.get(dialect) or paths[""]) for v, paths in sorted(by_version.items())]


def _run_script(conn: Connection, path: Path) -> None:
    """Run a SQL file statement by statement (``;`` at end of line separates statements)."""
    text = path.read_text(encoding="utf-8")
    for statement in re.split(r";\s*$", text, flags=re.MULTILINE):
        body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            conn.exec_driver_sql(body)

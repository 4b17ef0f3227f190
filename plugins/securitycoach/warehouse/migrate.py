"""Create or upgrade the warehouse schema with Alembic: one command, one task, versioned.

The schema's history is the Alembic revisions in ``warehouse/migrations/versions/`` (``0001_baseline``
... ``NNNN_x``, one per schema version, each the tables as they were at that version), replayed in order,
each in its own transaction: a new warehouse runs them all, an older one the ones above its version.
Alembic's ``alembic_version`` table holds the revision a warehouse is at; ``schema_version`` keeps the
history (one row per upgrade: the version reached, the revisions applied, when). A warehouse made before
Alembic (a ``schema_version`` table and no ``alembic_version``) is stamped at its version, then upgraded.

Views in ``include/sql/views`` are re-created only when their definition changed (or they are missing,
e.g. dropped by a revision that alters a table they read): ``x.sql`` is portable, and
``x.<dialect>.sql`` (``x.sqlite.sql``, ``x.postgresql.sql``) replaces it on that dialect. Views are
created in name order, so the dialect-specific ``base_*`` helpers come before the ``rpt_*`` views that
read them. What a view was created from is the SQL SQLite keeps (``sqlite_master``), and on PostgreSQL
a digest in the view's comment.

On PostgreSQL, an upgrade (revisions applied or views re-created) (re)grants the analyst role in the
same transaction (``SECURITYCOACH_ANALYST_ROLE``, default ``securitycoach_analyst``, NOLOGIN): USAGE on
the schema and SELECT on the ``rpt_*`` views, nothing else. A current warehouse costs ``migrate`` three
small queries and no lock; read-only callers use ``check_schema``, which never changes anything.

How to add a migration (e.g. a new table):

1. Add the table (or column) to ``schema.py``, the newest shape.
2. Add ``migrations/versions/NNNN_<what>.py`` (NNNN = the last revision + 1, four digits; copy the
   newest one): ``revision = "NNNN"``, ``down_revision`` = the previous one, and ``upgrade()`` with
   Alembic operations spelling the change as of this version (``op.create_table("t", sa.Column(...),
   ...)``, ``op.add_column``; never the ``Table`` from ``schema.py``, which moves on). Forward only.
3. Describe it in ``docs/warehouse.md``. ``SCHEMA_VERSION`` follows the newest revision by itself;
   ``tests/test_migrations.py`` fails until ``schema.py`` and the revisions agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from securitycoach.paths import sql_dir
from securitycoach.warehouse.schema import schema_version

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
ANALYST_ROLE_ENV = "SECURITYCOACH_ANALYST_ROLE"
DEFAULT_ANALYST_ROLE = "securitycoach_analyst"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DIALECTS = ("sqlite", "postgresql")
_VIEW_MARK = "securitycoach view sha256:"
# Alembic's ``context`` and ``op`` are process-wide proxies: one upgrade at a time per process (threads
# upgrading two warehouses at once would otherwise run each other's revisions).
_ALEMBIC = threading.Lock()


class SchemaNotCurrent(RuntimeError):
    """The warehouse is not at this code's schema (read-only commands do not upgrade it)."""


def alembic_config(connection: Connection | None = None, applied: list | None = None) -> Config:
    """Alembic's configuration for the warehouse on ``connection`` (for ``alembic.command``: history,
    current, or an upgrade to a given revision); ``applied`` collects the revisions an upgrade runs."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if applied is not None:
        config.attributes["on_version_apply"] = lambda step, **_: applied.append(step.up_revision)
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _head() -> str:
    head = _scripts().get_current_head()
    if head is None or not re.fullmatch(r"\d{4}", head):
        raise RuntimeError(f"{MIGRATIONS}: the newest revision must be named by four digits, got {head!r}")
    return head


SCHEMA_VERSION = int(_head())


def migrate(engine: Engine, *, analyst_role: str | None = None) -> int:
    """Bring the warehouse to ``SCHEMA_VERSION``; returns the version it had before (0 = new).

    Cheap when current (the version and the views' digests read, nothing written, no lock). On
    PostgreSQL concurrent upgraders (parallel DAG runs' ``ensure_schema``, e.g. a backfill's first runs
    on a new warehouse) take turns on an advisory lock per schema, and each looks again once it holds
    it. ``analyst_role`` (PostgreSQL only) defaults to ``$SECURITYCOACH_ANALYST_ROLE`` or
    ``securitycoach_analyst``; an empty name leaves roles alone.
    """
    role = analyst_role_name(analyst_role) if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        before, alembic = _version(conn)
        if alembic and before == SCHEMA_VERSION and not _stale_views(conn):
            return before
    if engine.dialect.name != "postgresql":
        return _upgrade(engine)
    lock = "SELECT {}(hashtext(current_schema() || ':securitycoach-migrate'))"
    with engine.connect() as holder:
        holder.exec_driver_sql(lock.format("pg_advisory_lock"))
        try:
            return _upgrade(engine, role)
        finally:
            holder.exec_driver_sql(lock.format("pg_advisory_unlock"))
            holder.commit()


def check_schema(engine: Engine) -> None:
    """Raise ``SchemaNotCurrent`` (one line: what the warehouse is at, what to run) unless the
    warehouse is at this code's schema. Changes nothing: for read-only commands."""
    with engine.connect() as conn:
        version, alembic = _version(conn)
        if alembic and version == SCHEMA_VERSION and not _stale_views(conn):
            return
    state = "has no schema yet" if version == 0 else (
        f"is at schema version {version}" + ("" if alembic else " (made before Alembic)"))
    if version == SCHEMA_VERSION and alembic:
        state = "has reporting views older than this code"
    raise SchemaNotCurrent(f"the warehouse {state}; this code needs version {SCHEMA_VERSION}: run the "
                           "ensure_schema task or `securitycoach warehouse upgrade` first")


def grant_analyst(engine: Engine, analyst_role: str | None = None) -> None:
    """Renew the analyst role's grants now (PostgreSQL; e.g. once an administrator created the role),
    without an upgrade: what ``securitycoach warehouse upgrade --grants`` does after the upgrade."""
    role = analyst_role_name(analyst_role)
    if engine.dialect.name == "postgresql" and role:
        with engine.begin() as conn:
            _grant_analyst(conn, role)


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


def _version(conn: Connection) -> tuple[int, bool]:
    """(schema version, whether Alembic manages it): 0 for a new warehouse; a warehouse made before
    Alembic has the ``schema_version`` history only. A version this code does not know is refused."""
    inspector = sa.inspect(conn)
    if inspector.has_table("alembic_version"):
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        if revision is not None and revision not in _revisions():
            raise RuntimeError(f"warehouse schema is at revision {revision}, newer than this code "
                               f"({SCHEMA_VERSION}); upgrade the project before running it")
        return (int(revision) if revision else 0), True
    if not inspector.has_table(schema_version.name):
        return 0, False
    version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"warehouse schema is at version {version}, newer than this code "
                           f"({SCHEMA_VERSION}); upgrade the project before running it")
    return version, False


@cache
def _revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _upgrade(engine: Engine, analyst_role: str = "") -> int:
    """Stamp a pre-Alembic warehouse, apply the revisions above its version, refresh stale views
    (and then the grants), each revision in its own transaction."""
    applied: list = []
    with engine.connect() as conn:
        before, alembic = _version(conn)
        conn.rollback()
        with _ALEMBIC:
            if not alembic and before:
                command.stamp(alembic_config(conn), f"{before:04d}")
                log.info("warehouse made before Alembic: stamped at schema version %s", before)
            command.upgrade(alembic_config(conn, applied), "head")
        conn.commit()
    with engine.begin() as conn:
        if applied:
            conn.execute(schema_version.insert().values(
                version=SCHEMA_VERSION, applied_at=datetime.now(UTC),
                description=", ".join(Path(s.path).stem for s in applied)))
            log.info("warehouse schema %s -> %s (%s)", before, SCHEMA_VERSION,
                     ", ".join(s.revision for s in applied))
        changed = _refresh_views(conn) > 0 or bool(applied)
        if changed and engine.dialect.name == "postgresql" and analyst_role:
            _grant_analyst(conn, analyst_role)
    return before


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


def _view_name(path: Path) -> str:
    return path.name.partition(".")[0]


def _digest(sql: str) -> str:
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()


def _create_statement(path: Path) -> str:
    """The view's ``CREATE VIEW`` statement (what SQLite keeps and what the digest covers)."""
    for statement in _statements(path):
        if statement.lstrip().upper().startswith("CREATE"):
            return statement
    raise RuntimeError(f"{path}: no CREATE VIEW statement")


def _installed_views(conn: Connection) -> dict[str, str]:
    """{view: digest of what it was created from} for the views in the warehouse ('' = unknown)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view'").all()
        return {name: _digest(sql or "") for name, sql in rows}
    rows = conn.exec_driver_sql(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v' AND n.nspname = current_schema()").all()
    return {name: (comment or "").removeprefix(_VIEW_MARK) for name, comment in rows}


def _stale_views(conn: Connection) -> list[Path]:
    installed = _installed_views(conn)
    return [path for path in view_files(conn.dialect.name)
            if installed.get(_view_name(path)) != _digest(_create_statement(path))]


def _refresh_views(conn: Connection) -> int:
    """Re-create, in name order, each view that is missing or whose definition changed; returns how
    many. A PostgreSQL ``base_*`` script drops its dependants (CASCADE): they are missing then, so the
    ones after it in name order are re-created too."""
    done = []
    installed = _installed_views(conn)
    for path in view_files(conn.dialect.name):
        name, digest = _view_name(path), _digest(_create_statement(path))
        if installed.get(name) == digest:
            continue
        _run_script(conn, path)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"COMMENT ON VIEW \"{name}\" IS '{_VIEW_MARK}{digest}'")
            installed = _installed_views(conn)
        done.append(name)
    if done:
        log.info("views (re)created: %s", ", ".join(done))
    return len(done)


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


def _statements(path: Path) -> list[str]:
    """A SQL file's statements (``;`` at end of line separates them; ``--`` comment lines dropped)."""
    text = path.read_text(encoding="utf-8")
    statements = []
    for statement in re.split(r";\s*$", text, flags=re.MULTILINE):
        body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            statements.append(body)
    return statements


def _run_script(conn: Connection, path: Path) -> None:
    """Run a SQL file statement by statement."""
    for statement in _statements(path):
        conn.exec_driver_sql(statement)

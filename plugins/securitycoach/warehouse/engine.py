"""SQLAlchemy engines for the warehouse: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url


def create_warehouse_engine(url: str | URL, *, search_path: str | None = None) -> Engine:
    """An engine for ``url``; ``search_path`` puts a PostgreSQL schema first (tests, tenants).

    PostgreSQL is always reached through psycopg 3 (``postgresql+psycopg``): a ``postgresql://`` or
    ``postgresql+psycopg2://`` URL is read as that, so every URL written for the warehouse so far keeps
    working; another driver is refused. SQLite gets a busy timeout and WAL so a scheduler running tasks side by side waits for the
    writer instead of failing with "database is locked".
    """
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            _ensure_math(dbapi_conn)

        return engine
    if backend == "postgresql":
        if url.drivername in ("postgresql", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        if url.get_driver_name() != "psycopg":
            raise ValueError(f"warehouse URL {describe_url(url)!r}: PostgreSQL driver {url.get_driver_name()!r} "
                             "is not supported (use postgresql+psycopg://)")
        connect_args = {"options": f"-csearch_path={search_path}"} if search_path else {}
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    raise ValueError(f"warehouse URL {describe_url(url)!r}: unsupported backend {backend!r} "
                     "(use sqlite or postgresql)")


class WarehouseMissing(LookupError):
    """There is no warehouse where the URL (and search path) point: nothing was created."""


def open_existing_warehouse(url: str | URL, *, search_path: str | None = None) -> Engine:
    """An engine for a warehouse that already exists; ``WarehouseMissing`` (naming it) when the
    SQLite file is absent or no schema of the PostgreSQL search path exists. Creates nothing: for
    commands that read, so a typo in a URL fails instead of passing for an empty warehouse."""
    where = describe_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise WarehouseMissing(f"warehouse {where}: no such SQLite file {path or '(in memory)'!r}; nothing was "
                                   "created (`securitycoach warehouse upgrade` creates a warehouse)")
        return create_warehouse_engine(parsed)
    engine = create_warehouse_engine(parsed, search_path=search_path)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # current_schema(): the first schema of the search path that exists
            if conn.execute(sa.text("SELECT current_schema()")).scalar() is None:
                engine.dispose()
                shown = search_path or conn.execute(sa.text("SHOW search_path")).scalar()
                raise WarehouseMissing(f"warehouse {where}: database {parsed.database!r} has no schema {shown!r} "
                                       "(search path); nothing was created")
    return engine


def _ensure_math(dbapi_conn) -> None:
    """The reporting views use ``exp``/``power``: built into SQLite 3.35+ when compiled with math
    functions; registered from Python's math module on builds without them."""
    for name, n_args, func in (("exp", 1, math.exp), ("power", 2, math.pow)):
        try:
            dbapi_conn.execute(f"SELECT {name}({', '.join(['1'] * n_args)})")
        except sqlite3.OperationalError:
            dbapi_conn.create_function(name, n_args, _null_safe(func), deterministic=True)


def _null_safe(func):
    def call(*args):
        return None if any(a is None for a in args) else func(*args)
    return call


# A bulk change this large (rows) makes PostgreSQL's planner statistics stale enough to matter
# before autovacuum gets to them (seen: a hash join over a whole fact table instead of key look-ups).
ANALYZE_MIN_ROWS = 10_000


def refresh_statistics(engine: Engine, tables: list[str], changed: int, *, vacuum: bool = False) -> None:
    """``ANALYZE`` ``tables`` on PostgreSQL after a bulk change of ``changed`` rows, so the next
    steps' plans see the rows just written (or, for a drained queue, that it is empty again);
    ``vacuum`` also reclaims the dead rows a drain leaves. Small changes (hourly runs) and SQLite:
    nothing."""
    if engine.dialect.name != "postgresql" or changed < ANALYZE_MIN_ROWS:
        return
    verb = "VACUUM ANALYZE" if vacuum else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # VACUUM: no transaction
        for table in tables:
            conn.exec_driver_sql(f'{verb} "{table}"')


def describe_url(url: str | URL) -> str:
    """The URL with any password hidden, for logs and the demo's summary."""
    return make_url(url).render_as_string(hide_password=True)

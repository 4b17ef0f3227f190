"""SQLAlchemy engines for the warehouse: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url


def create_warehouse_engine(url: str | URL, *, search_path: str | None = None) -> Engine:
    """An engine for ``url``; ``search_path`` puts a PostgreSQL schema first (tests, tenants).

    SQLite gets a busy timeout and WAL so a scheduler running tasks side by side waits for the
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

        return engine
    if backend == "postgresql":
        connect_args = {"options": f"-csearch_path={search_path}"} if search_path else {}
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    raise ValueError(f"warehouse URL {describe_url(url)!r}: unsupported backend {backend!r} "
                     "(use sqlite or postgresql)")


def describe_url(url: str | URL) -> str:
    """The URL with any password hidden, for logs and the demo's summary."""
    return make_url(url).render_as_string(hide_password=True)

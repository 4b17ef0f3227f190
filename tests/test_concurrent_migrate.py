"""Parallel runs' ensure_schema tasks on a new PostgreSQL warehouse take turns instead of racing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from conftest import PG_ADMIN_URL
from securitycoach.warehouse import SCHEMA_VERSION, create_warehouse_engine, migrate


def test_concurrent_migrations_of_a_new_schema_all_succeed(pg_schema):
    engines = [create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            before = sorted(pool.map(migrate, engines))
        assert before == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]  # one created it
        with engines[0].connect() as conn:
            assert conn.execute(sa.text("select count(*) from schema_version")).scalar() == 1
    finally:
        for engine in engines:
            engine.dispose()

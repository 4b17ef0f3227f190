"""Helpers shared by the ``tests/test_faults_*.py`` files (the pattern of ``tests/test_faults.py``).

``make_hook`` builds a Code42Hook on a sandbox, ``run_sync`` / ``run_hours`` run the sync's core
calls for hourly intervals (what ``code42_sync``'s tasks do), ``fresh_warehouse`` makes an empty
warehouse, ``pg_url`` (a fixture: ``pg_url = fault_helpers.pg_url`` in a test module) makes
PostgreSQL warehouses in throwaway schemas, ``arm`` fires an action at the N-th matching SQL
statement (deterministic fault points).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from code42_hook import Code42Hook
from securitycoach import sync
from securitycoach.warehouse import create_warehouse_engine, migrate

LOOKBACK = timedelta(hours=24)


def make_hook(monkeypatch, sandbox, conn_id: str = "code42_faults", **extra) -> Code42Hook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "code42", "login": sandbox.client_id, "password": sandbox.client_secret,
        "host": sandbox.base_url, "extra": {"rate_limit_per_minute": 60000, "retry_backoff": 0.05, **extra}}))
    return Code42Hook(conn_id)


def hourly_ends(sandbox, count: int, last_offset: timedelta = timedelta(hours=-3)) -> list[datetime]:
    """``count`` consecutive hourly interval ends, the last one at anchor + ``last_offset``."""
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0) + last_offset
    return [last - timedelta(hours=h) for h in range(count - 1, -1, -1)]


def run_interval(engine, hook, end: datetime, *, lookback: timedelta = LOOKBACK, batch_size: int | None = None,
                 tenant: str | None = None) -> None:
    """One hourly run, as the DAG's tasks do it (the core's interval runner): extract both streams,
    load them, new actors."""
    size = {} if batch_size is None else {"batch_size": batch_size}
    sync.Interval(tenant_id=tenant or hook.tenant_id, run_key=f"run-{end:%Y%m%dT%H}", start=end - timedelta(hours=1),
                  end=end, lookback_hours=lookback // timedelta(hours=1), **size).run(engine, hook)


def run_sync(engine, hook, ends, **kwargs) -> None:
    tenant = hook.tenant_id
    for end in ends:
        run_interval(engine, hook, end, tenant=tenant, **kwargs)


def fresh_warehouse(url: str, **kwargs):
    engine = create_warehouse_engine(url, **kwargs)
    migrate(engine)
    return engine


def diff_counts(expected: dict, actual: dict) -> dict[str, tuple[int, int]]:
    """``{table: (expected rows, actual rows)}`` for the tables whose digests differ."""
    return {name: (expected[name][0], actual[name][0]) for name in expected if expected[name] != actual.get(name)}


@pytest.fixture
def pg_url(pg_admin_engine):
    """Factory of PostgreSQL warehouse engines: ``make()`` a fresh schema (dropped afterwards),
    ``make(port=p)`` through another port (the proxy), ``make(schema=s)`` an existing one."""
    from conftest import PG_ADMIN_URL  # here: a child process importing these helpers needs no conftest

    made, schemas = [], []

    def make(port: int | None = None, schema: str | None = None):
        name = schema or f"t_{uuid.uuid4().hex[:12]}"
        if schema is None:
            with pg_admin_engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            schemas.append(name)
        url = sa.engine.make_url(PG_ADMIN_URL)
        if port is not None:
            url = url.set(host="127.0.0.1", port=port)
        engine = create_warehouse_engine(url, search_path=name)

        @sa.event.listens_for(engine, "connect")
        def _no_endless_waits(dbapi_conn, _record):  # a leftover lock must fail the test, not hang it
            with dbapi_conn.cursor() as cur:
                cur.execute("SET lock_timeout = '10s'")
            dbapi_conn.commit()

        if schema is None:
            migrate(engine)
        engine.schema_name = name
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()
    with pg_admin_engine.begin() as conn:
        for name in schemas:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


def run_hours(engine, hook, sandbox, ends, first: int = 0, batch_size: int | None = None) -> None:
    """Runs ``ends[first:]``, the sandbox clock at anchor + k hours for the k-th interval."""
    tenant = hook.tenant_id
    for k, end in enumerate(ends[first:], start=first):
        clock_for_run(sandbox, k)
        run_interval(engine, hook, end, tenant=tenant, batch_size=batch_size)


def clock_for_run(sandbox, k: int) -> None:
    """The sandbox clock an hour on per run: anchor + k hours for the k-th (new and changed data)."""
    target = sandbox.anchor_ms + k * 3_600_000
    clock = sandbox.stats()["clock_ms"]
    if clock < target:
        sandbox.advance((target - clock) / 60_000)


def arm(engine, prefix: str, nth: int, action, event: str = "before_cursor_execute") -> list[str]:
    """Call ``action()`` just before (or, with ``event="after_cursor_execute"``, just after) the
    ``nth`` statement starting with ``prefix`` runs."""
    seen: list[str] = []

    @sa.event.listens_for(engine, event)
    def _count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(prefix):
            seen.append(statement)
            if len(seen) == nth:
                action()

    return seen


class InjectedFailure(RuntimeError):
    """Raised by ``failed_run_digest`` at its chosen statement."""


def failed_run_digest(engine, hook, sandbox, ends, run: int, prefix: str, nth: int,
                      batch_size: int | None = None) -> dict:
    """The state "nothing half-written" must match: runs ``ends[:run]`` cleanly, then run ``run`` fails
    by an exception inside its transaction just before the ``nth`` statement starting with ``prefix``;
    returns the table digests after that failure."""
    from securitycoach.warehouse.digest import table_digests

    run_hours(engine, hook, sandbox, ends[:run], batch_size=batch_size)

    def boom():
        raise InjectedFailure(f"injected failure before statement {nth} starting {prefix!r}")

    arm(engine, prefix, nth, boom)
    with pytest.raises(InjectedFailure):
        run_hours(engine, hook, sandbox, ends[:run + 1], first=run, batch_size=batch_size)
    return table_digests(engine)

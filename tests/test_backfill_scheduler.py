"""A real Airflow backfill: ``airflow backfill create`` queues the runs, a real scheduler (LocalExecutor)
and api-server on loopback execute them, and the warehouse ends up with exactly what the API holds.

This is the README's "Backfill historical alerts" recipe run as written (its own AIRFLOW_HOME,
metadata DB, pools from the tenants file as docker/init.sh makes them, DAG serialized and unpaused),
against the sandbox and a PostgreSQL warehouse schema. The tenant is a daily one from its own tenants
file, so three days of history are three runs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from airflow_stack import airflow, airflow_env, prepare, start, stop, wait_for_backfill, wait_healthy

from conftest import PG_ADMIN_URL
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

pytestmark = pytest.mark.slow

TENANT = "backfill"
DAG_ID = f"code42_sync_{TENANT}"
DAYS = 3
TENANTS_FILE = f"""version: 1
tenants:
  - name: {TENANT}
    code42_tenant_uid: 41a617d1-b5bb-4fb2-a12e-1c7d362780bc
    code42_conn_id: code42_default
    knowbe4_conn_id: knowbe4_default
    schedule: "0 0 * * *"
    lookback_hours: 24
    pool_slots: 4
    pages_in_flight: 2
    max_active_runs: 2
"""
DEADLINE_S = 420


# Its own waits bound it (db migrate 300 s, api-server health 120 s, backfill DEADLINE_S): 308 s
# measured on a loaded 2-core machine, so it gets more than the suite's per-test limit.
@pytest.mark.timeout(900)
def test_backfill_through_the_real_scheduler_loads_every_interval(tmp_path, sandbox, pg_schema, metadata_db,
                                                                   monkeypatch):
    env, port, home = airflow_env(tmp_path, sandbox, pg_schema, metadata_db, TENANTS_FILE)
    prepare(env, DAG_ID)

    last = sandbox.anchor.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    api = start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
    scheduler = None
    try:
        wait_healthy(port, api, home)
        scheduler = start(env, home, "scheduler", "scheduler", "--skip-serve-logs")
        airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
                "--to-date", last.isoformat(), "--max-active-runs", "2")
        runs = wait_for_backfill(env, home, DAG_ID, DAYS, DEADLINE_S, {"scheduler": scheduler})
    finally:
        for process in (scheduler, api):
            stop(process)

    assert sorted(r["state"] for r in runs) == ["success"] * DAYS, runs
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)
    with engine.connect() as conn:
        audit = conn.execute(sa.select(t.sync_audit.c.interval_start, t.sync_audit.c.run_id)
                             .order_by(t.sync_audit.c.interval_start)).all()
        got = set(conn.execute(sa.select(t.code42_session.c.session_id)).scalars())
        got_alerts = set(conn.execute(sa.select(t.code42_alert.c.alert_id)).scalars())
    engine.dispose()
    # One audit row per backfilled interval (the unpaused DAG may also have made its latest scheduled run).
    assert [a.interval_start for a in audit if a.run_id.startswith("backfill__")] == \
        [first + timedelta(days=d) for d in range(DAYS)]

    # What the API holds for the backfilled range (with the DAG's 24 h look-back), read independently.
    for name, value in sandbox.airflow_connections().items():
        monkeypatch.setenv(name, value)
    from code42_hook import Code42Hook

    hook = Code42Hook()
    end = last + timedelta(days=1)
    sessions = {s.session_id for s in hook.iter_sessions(first - timedelta(hours=24), end)}
    alerts = {a.id for a in hook.iter_alerts(first, end)}
    assert sessions and alerts
    assert sessions <= got and alerts <= got_alerts

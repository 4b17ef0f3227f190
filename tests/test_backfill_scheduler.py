"""A real Airflow backfill: ``airflow backfill create`` queues the runs, a real scheduler (LocalExecutor)
and api-server on loopback execute them, and the warehouse ends up with exactly what the API holds.

This is the README's "Backfill historical alerts" recipe run as written (its own AIRFLOW_HOME,
metadata DB, pools from the tenants file as docker/init.sh makes them, DAG serialized and unpaused),
against the sandbox and a PostgreSQL warehouse schema. The tenant is a daily one from its own tenants
file, so three days of history are three runs.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from conftest import PG_ADMIN_URL, ROOT
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

pytestmark = pytest.mark.slow

AIRFLOW = str(Path(sys.executable).parent / "airflow")
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def metadata_db(pg_admin_engine):
    """A PostgreSQL metadata database of its own (SQLite locks up between scheduler and CLI), dropped after."""
    name = f"airflow_{uuid.uuid4().hex[:10]}"
    admin = pg_admin_engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def airflow_env(tmp_path, sandbox, pg_schema, metadata_db):
    port = _free_port()
    home = tmp_path / "airflow"
    home.mkdir()
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(TENANTS_FILE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update(sandbox.airflow_connections())
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "SECURITYCOACH_DATA_DIR": str(tmp_path / "data"),
        "SECURITYCOACH_TENANTS": str(tenants),
        "AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE": json.dumps({
            "conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test",
            "extra": {"search_path": pg_schema}}),
    })
    return env, port, home


def _airflow(env, *args, timeout=120) -> str:
    done = subprocess.run([AIRFLOW, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _start(env, home, name, *args) -> subprocess.Popen:
    log = open(home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([AIRFLOW, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_healthy(port: int, process: subprocess.Popen, home: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "api-server.log").read_text()[-4000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).ok:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            pass
        time.sleep(1)
    raise AssertionError("the api-server did not answer in 120 s:\n" + (home / "api-server.log").read_text()[-4000:])


def _runs(env) -> list[dict]:
    out = _airflow(env, "dags", "list-runs", DAG_ID, "-o", "json")
    table = [line for line in out.splitlines() if line.startswith("[")]  # log lines may come first
    return json.loads(table[-1]) if table else []


# Its own waits bound it (db migrate 300 s, api-server health 120 s, backfill DEADLINE_S): 308 s
# measured on a loaded 2-core machine, so it gets more than the suite's per-test limit.
@pytest.mark.timeout(900)
def test_backfill_through_the_real_scheduler_loads_every_interval(airflow_env, sandbox, pg_schema, monkeypatch):
    env, port, home = airflow_env
    _airflow(env, "db", "migrate", timeout=300)
    pools = subprocess.run([str(Path(sys.executable).parent / "securitycoach"), "tenant", "pools"], env=env,
                           check=True, capture_output=True, text=True).stdout
    for line in pools.splitlines():  # as docker/init.sh does
        name, slots, description = line.split("\t")
        _airflow(env, "pools", "set", name, slots, description)
    _airflow(env, "dags", "reserialize")
    _airflow(env, "dags", "unpause", DAG_ID)

    last = sandbox.anchor.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    api = _start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
    scheduler = None
    try:
        _wait_healthy(port, api, home)
        scheduler = _start(env, home, "scheduler", "scheduler", "--skip-serve-logs")
        _airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
                 "--to-date", last.isoformat(), "--max-active-runs", "2")
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            runs = [r for r in _runs(env) if r["run_id"].startswith("backfill__")]
            if len(runs) == DAYS and all(r["state"] in ("success", "failed") for r in runs):
                break
            assert scheduler.poll() is None, (home / "scheduler.log").read_text()[-4000:]
            time.sleep(3)
        else:
            raise AssertionError(f"backfill not finished in {DEADLINE_S} s: {_runs(env)}\n"
                                 + (home / "scheduler.log").read_text()[-3000:])
    finally:
        for process in (scheduler, api):
            if process:
                _stop(process)

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

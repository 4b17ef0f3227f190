"""One warehouse Asset per tenant, through a real scheduler: two tenants (each on its own sandbox,
so two Code42 tenant uids), a triggered sync run of ``acme`` only; the scheduler (LocalExecutor, an
api-server for the task runners, a PostgreSQL metadata DB) turns the load's asset event into an
asset-triggered run of ``securitycoach_report_acme``, which writes acme's report from the event's
extra, and never starts ``securitycoach_report`` (the default tenant's)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from airflow_stack import airflow, airflow_env, runs, start, stop, wait_healthy

pytestmark = pytest.mark.slow

TENANTS_FILE = """version: 1
tenants:
  - name: default
    code42_tenant_uid: {default_uid}
    code42_conn_id: code42_default
    knowbe4_conn_id: knowbe4_default
    pool_slots: 2
    pages_in_flight: 2
  - name: acme
    code42_tenant_uid: {acme_uid}
    code42_conn_id: code42_acme
    knowbe4_conn_id: knowbe4_acme
    pool_slots: 2
    pages_in_flight: 2
"""
DEADLINE_S = 600


@pytest.mark.timeout(1200)
def test_a_tenants_load_triggers_only_its_own_report_dag_through_the_scheduler(
        tmp_path, sandbox, start_sandbox, pg_schema, metadata_db):
    other = start_sandbox(seed=7)
    tenants = TENANTS_FILE.format(default_uid=sandbox.tenant_id, acme_uid=other.tenant_id)
    env, port, home = airflow_env(tmp_path, sandbox, pg_schema, metadata_db, tenants)
    env.update({
        "AIRFLOW_CONN_CODE42_ACME": json.dumps({"conn_type": "code42", "login": other.client_id,
                                                "password": other.client_secret, "host": other.base_url,
                                                "extra": {"rate_limit_per_minute": 6000}}),
        "AIRFLOW_CONN_KNOWBE4_ACME": json.dumps({"conn_type": "knowbe4", "password": other.ksat_key,
                                                 "host": other.base_url}),
    })
    airflow(env, "db", "migrate", timeout=300)
    pools = subprocess.run([str(Path(sys.executable).parent / "securitycoach"), "tenant", "pools"], env=env,
                           check=True, capture_output=True, text=True).stdout
    for line in pools.splitlines():  # as docker/init.sh does
        name, slots, description = line.split("\t")
        airflow(env, "pools", "set", name, slots, description)
    airflow(env, "dags", "reserialize")
    for dag_id in ("code42_sync_acme", "securitycoach_report_acme", "securitycoach_report"):
        airflow(env, "dags", "unpause", dag_id)  # default's sync stays paused: only acme loads

    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    api = start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
    scheduler = None
    try:
        wait_healthy(port, api, home)
        scheduler = start(env, home, "scheduler", "scheduler", "--skip-serve-logs")
        airflow(env, "dags", "trigger", "code42_sync_acme", "--logical-date", end.isoformat())
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            syncs, reports = runs(env, "code42_sync_acme"), runs(env, "securitycoach_report_acme")
            if (syncs and all(r["state"] in ("success", "failed") for r in syncs)
                    and reports and all(r["state"] in ("success", "failed") for r in reports)):
                break
            assert scheduler.poll() is None, (home / "scheduler.log").read_text()[-4000:]
            time.sleep(3)
        else:
            raise AssertionError(f"no finished report run in {DEADLINE_S} s: {runs(env, 'securitycoach_report_acme')}"
                                 + (home / "scheduler.log").read_text()[-3000:])
        default_runs = runs(env, "securitycoach_report")
    finally:
        for process in (scheduler, api):
            if process:
                stop(process)

    triggered = [r for r in syncs if r["run_id"].startswith("manual__")]
    assert [r["state"] for r in triggered] == ["success"], syncs
    assert reports and {r["state"] for r in reports} == {"success"}, reports
    assert all(r["run_id"].startswith("asset_triggered__") for r in reports), reports
    assert default_runs == []  # acme's loads never start the default tenant's report DAG
    written = sorted(p.name for p in (tmp_path / "data" / "reports").glob("*.html"))
    assert written and all(name.startswith(f"securitycoach_{other.tenant_id}_") for name in written), written
    # the report task took its tenant from the asset event, not from the by-hand fallback
    task_logs = "\n".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*.log")
                          if "dag_id=securitycoach_report_acme" in str(p))
    assert "report written:" in task_logs and "a manual run" not in task_logs

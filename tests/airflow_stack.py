"""Real Airflow components for the tests that run them (the LocalExecutor backfill, the Celery
workers): an environment of their own (AIRFLOW_HOME, metadata DB, api-server port), the CLI, and
the processes started, watched and stopped. The ``metadata_db`` fixture is in conftest.py."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

from conftest import ROOT

AIRFLOW = str(Path(sys.executable).parent / "airflow")
SECURITYCOACH = str(Path(sys.executable).parent / "securitycoach")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(tmp_path: Path, sandbox, pg_schema: str, metadata_db: str, tenants_file: str, *,
                executor: str = "LocalExecutor", **code42_extra) -> tuple[dict, int, Path]:
    """The environment every component and CLI call of one test shares: its own AIRFLOW_HOME,
    metadata DB and api-server port, the tenants file, the sandbox's connections (``code42_extra``
    on the Code42 one) and a PostgreSQL warehouse in ``pg_schema``. Returns (env, port, home)."""
    port = free_port()
    home = tmp_path / "airflow"
    home.mkdir()
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(tenants_file, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update(sandbox.airflow_connections(**code42_extra))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
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


def airflow(env: dict, *args: str, timeout: float = 120) -> str:
    """``airflow ARGS`` to completion; its stdout (a failure shows its output)."""
    done = subprocess.run([AIRFLOW, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def prepare(env: dict, dag_id: str | None) -> None:
    """What docker/init.sh does before the components start: migrate, the tenants' pools; then (with
    a ``dag_id``) the DAGs serialized and that one unpaused (without: a dag-processor does it)."""
    airflow(env, "db", "migrate", timeout=300)
    pools = subprocess.run([SECURITYCOACH, "tenant", "pools"], env=env, check=True, capture_output=True,
                           text=True).stdout
    for line in pools.splitlines():
        name, slots, description = line.split("\t")
        airflow(env, "pools", "set", name, slots, description)
    if dag_id:
        airflow(env, "dags", "reserialize")
        airflow(env, "dags", "unpause", dag_id)


def start(env: dict, home: Path, name: str, *args: str) -> subprocess.Popen:
    """An Airflow component (``airflow ARGS``) in its own process group, logging to ``home/name.log``."""
    log = open(home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([AIRFLOW, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM to the component's process group, SIGKILL after 30 s."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def log_tail(home: Path, name: str, chars: int = 4000) -> str:
    path = home / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"<no {name}.log>"


def wait_healthy(port: int, process: subprocess.Popen, home: Path, timeout: float = 120) -> None:
    """Until the api-server answers its health endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log_tail(home, "api-server")
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy starting
            pass
        time.sleep(1)
    raise AssertionError(f"the api-server did not answer in {timeout:.0f} s:\n" + log_tail(home, "api-server"))


_dag_run = sa.table("dag_run", sa.column("dag_id"), sa.column("run_id"), sa.column("state"))
_dag = sa.table("dag", sa.column("dag_id"), sa.column("is_paused"))


def _metadata(env: dict) -> sa.Engine:
    return sa.create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=sa.pool.NullPool)


def runs(env: dict, dag_id: str) -> list[dict]:
    """The DAG's runs (run_id, state), read from the metadata DB (a CLI call per poll costs a
    process start of CPU the components need)."""
    engine = _metadata(env)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_dag_run.c.run_id, _dag_run.c.state).where(_dag_run.c.dag_id == dag_id)
                            .order_by(_dag_run.c.run_id)).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def wait_for_dag(env: dict, home: Path, dag_id: str, timeout: float, components: dict[str, subprocess.Popen]) -> None:
    """Until the dag-processor has stored ``dag_id``, unpaused (``dags_are_paused_at_creation`` off)."""
    deadline, engine = time.monotonic() + timeout, _metadata(env)
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                paused = conn.execute(sa.select(_dag.c.is_paused).where(_dag.c.dag_id == dag_id)).scalar()
            if paused is False:
                return
            for name, process in components.items():
                assert process.poll() is None, f"{name} exited:\n" + log_tail(home, name)
            time.sleep(1)
    finally:
        engine.dispose()
    raise AssertionError(f"{dag_id} not parsed and unpaused in {timeout:.0f} s:\n" + log_tail(home, "dag-processor"))


def wait_for_backfill(env: dict, home: Path, dag_id: str, count: int, deadline_s: float,
                      components: dict[str, subprocess.Popen], on_poll=None) -> list[dict]:
    """Until the DAG's ``count`` backfill runs are finished (success or failed); fails naming a
    component that died or the runs left when ``deadline_s`` passes. ``on_poll()`` is called each poll."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        done = [r for r in runs(env, dag_id) if r["run_id"].startswith("backfill__")]
        if len(done) == count and all(r["state"] in ("success", "failed") for r in done):
            return done
        for name, process in components.items():
            assert process.poll() is None, f"{name} exited:\n" + log_tail(home, name)
        if on_poll:
            on_poll()
        time.sleep(3)
    raise AssertionError(f"backfill not finished in {deadline_s} s: {runs(env, dag_id)}\n"
                         + log_tail(home, "scheduler", 3000))

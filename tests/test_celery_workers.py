"""CeleryExecutor for real: one tenant's parallel intervals on two Celery workers "on two hosts"
share the Code42 client's one rate limit through Redis.

A scheduler, an api-server, a dag-processor and two ``airflow celery worker`` processes (broker:
Redis at 127.0.0.1:6379 in a db number, key prefix and queue of this test's own; result backend and
metadata DB: a PostgreSQL database of its own). Each worker has its own TMPDIR, throttle folder and
log folder, as if on its own host, so the file lock cannot be what spaces them: the connections'
``rate_limit_store`` (Redis) must. ``airflow backfill create`` runs hourly intervals side by side against a sandbox that answers 429 past LIMIT requests in any 60 s. The sandbox's
counters, sampled every second, show the combined rate; the session and alert tables are compared
row by row (the actors by id) with a single-process run of the same intervals (tests/pipeline.py)
into another schema.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
from airflow_stack import (
    airflow,
    airflow_env,
    log_tail,
    prepare,
    start,
    stop,
    wait_for_backfill,
    wait_for_dag,
    wait_healthy,
)
from pipeline import sync_interval, use_sandbox

from conftest import PG_ADMIN_URL, fresh_schema, report_figures
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t

pytestmark = pytest.mark.slow

LIMIT = 60  # Code42 requests per minute: the sandbox's sliding window and the connection's limit
HOURS = 2  # hourly intervals, both at once
WORKERS = 2
TENANT = "celery"
DAG_ID = f"code42_sync_{TENANT}"
TENANTS_FILE = f"""version: 1
tenants:
  - name: {TENANT}
    code42_tenant_uid: {{tenant_uid}}
    code42_conn_id: code42_default
    knowbe4_conn_id: knowbe4_default
    schedule: "0 * * * *"
    lookback_hours: 24
    pool_slots: 8
    pages_in_flight: 2
    max_active_runs: {HOURS}
"""
REDIS_URL = "redis://127.0.0.1:6379/14"  # this test's db number (broker and rate limit store)
CODE42_PATHS = ("GET /v1/sessions", "POST /v1/sessions", "POST /v1/alerts", "GET /v1/actors", "GET /v2/")
COMPARED = (t.code42_session, t.code42_session_risk_indicator, t.code42_session_alert, t.code42_alert,
            t.code42_actor)
DEADLINE_S = 360


@pytest.fixture
def celery_sandbox(start_sandbox):
    """A sandbox of its own: enough sessions that a 25 h read takes a few dozen pages; the limit on."""
    return start_sandbox(sessions=20_000, rate_limit_per_min=LIMIT)


@pytest.fixture
def redis_namespace():
    """A key prefix and queue of this run's own in REDIS_URL; its keys are deleted after."""
    name = f"sc-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def reference_schema(pg_admin_engine):
    """A second warehouse schema: the single-process run the Celery one is compared with."""
    with fresh_schema(pg_admin_engine) as name:
        yield name


def _celery_env(env: dict, metadata_db: str, namespace: str) -> dict:
    """CeleryExecutor on the Redis broker (this run's prefix and queue), PostgreSQL result backend;
    every API connection's limit in the Redis store."""
    backend = sa.engine.make_url(metadata_db).render_as_string(hide_password=False)
    env = {**env,
           "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
           "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{namespace}:",
           "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{backend}",
           "AIRFLOW__OPERATORS__DEFAULT_QUEUE": namespace,
           "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
           # the dag-processor stores the DAG unpaused and parses it once (CPU for the tasks)
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "900"}
    for name in ("AIRFLOW_CONN_CODE42_DEFAULT", "AIRFLOW_CONN_KNOWBE4_DEFAULT", "AIRFLOW_CONN_KNOWBE4_EVENTS_DEFAULT"):
        conn = json.loads(env[name])
        conn["extra"] = {**conn.get("extra", {}), "rate_limit_per_minute": LIMIT, "rate_limit_store": REDIS_URL}
        env[name] = json.dumps(conn)
    return env


class RateSampler(threading.Thread):
    """The sandbox's count of Code42 requests, once a second: (monotonic time, count)."""

    def __init__(self, sandbox) -> None:
        super().__init__(daemon=True)
        self.sandbox, self.samples, self.halt = sandbox, [], threading.Event()

    def count(self) -> int:
        return sum(n for path, n in self.sandbox.stats()["by_path"].items() if path.startswith(CODE42_PATHS))

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.monotonic(), self.count()))
            self.halt.wait(1.0)

    def busiest_minute(self) -> int:
        """The most requests the samples show in any 60 s."""
        best = 0
        for i, (t0, n0) in enumerate(self.samples):
            later = [n for t1, n in self.samples[i:] if t1 - t0 <= 60]
            best = max(best, later[-1] - n0)
        return best

    def active_span(self) -> tuple[float, int]:
        """Seconds between the first and the last sample that saw a new request, and the requests."""
        changes = [(tm, n) for (tm, n), (_, before) in zip(self.samples[1:], self.samples, strict=False) if n > before]
        return (changes[-1][0] - changes[0][0], changes[-1][1] - self.samples[0][1]) if changes else (0.0, 0)


def _worker_logs(host, task: str = "*") -> int:
    """Task attempts a worker ran: the log files it wrote in its own log folder."""
    return sum(1 for _ in (host / "logs").rglob(f"task_id={task}/attempt=*.log"))


def _rows(schema: str) -> dict[str, list[tuple]]:
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=schema)
    with engine.connect() as conn:
        rows = {table.name: sorted(tuple(map(repr, row)) for row in conn.execute(sa.select(table)))
                for table in COMPARED}
    engine.dispose()
    return rows


# Bounded by its own waits: db migrate (300 s), the api-server (120 s), the backfill (DEADLINE_S).
@pytest.mark.timeout(900)
def test_two_celery_workers_share_one_rate_limit(tmp_path, celery_sandbox, pg_schema, reference_schema, metadata_db,
                                                 redis_namespace, monkeypatch):
    sandbox = celery_sandbox
    tenants = TENANTS_FILE.format(tenant_uid=sandbox.tenant_id)
    env, port, home = airflow_env(tmp_path, sandbox, pg_schema, metadata_db, tenants, executor="CeleryExecutor")
    env = _celery_env(env, metadata_db, redis_namespace)
    began = time.monotonic()
    prepare(env, None)
    prepared = time.monotonic() - began

    hosts = [tmp_path / f"host{i}" for i in range(1, WORKERS + 1)]
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    first = last - timedelta(hours=HOURS - 1)
    components: dict = {}
    sampler = RateSampler(sandbox)
    try:
        components["api-server"] = start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
        for i, host in enumerate(hosts, start=1):
            for folder in ("tmp", "throttle", "logs"):
                (host / folder).mkdir(parents=True)
            own = {**env, "TMPDIR": str(host / "tmp"), "CODE42_THROTTLE_DIR": str(host / "throttle"),
                   "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(host / "logs")}
            components[f"worker{i}"] = start(own, home, f"worker{i}", "celery", "worker", "-q", redis_namespace,
                                             "-H", f"{redis_namespace}-{i}@%h", "--pid", str(host / "worker.pid"),
                                             "--skip-serve-logs", "--without-mingle", "--without-gossip")
        components["dag-processor"] = start(env, home, "dag-processor", "dag-processor")
        components["scheduler"] = start(env, home, "scheduler", "scheduler", "--skip-serve-logs")
        wait_healthy(port, components["api-server"], home)
        wait_for_dag(env, home, DAG_ID, 180, components)
        sampler.start()
        started = time.monotonic()
        components_up = started - began - prepared
        airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
                "--to-date", last.isoformat(), "--max-active-runs", str(HOURS))
        runs = wait_for_backfill(env, home, DAG_ID, HOURS, DEADLINE_S, components)
        took = time.monotonic() - started
    finally:
        sampler.halt.set()
        for process in reversed(components.values()):
            stop(process)
    stats = sandbox.stats()
    assert sorted(r["state"] for r in runs) == ["success"] * HOURS, (runs, log_tail(home, "worker1"))

    # Both "hosts" ran tasks, and neither kept a schedule in its own throttle folder: Redis did.
    tasks = [_worker_logs(host) for host in hosts]
    extracts = [_worker_logs(host, "extract_*") for host in hosts]
    assert all(n > 0 for n in tasks), tasks
    assert not [p for host in hosts for p in (host / "throttle").rglob("*")]
    busiest = sampler.busiest_minute()
    span, requests = sampler.active_span()

    # The single-process run of the same intervals into another schema, the limit off.
    sandbox.set_faults(rate_limit_per_min=0)
    code42, _ = use_sandbox(monkeypatch, sandbox)
    reference = create_warehouse_engine(PG_ADMIN_URL, search_path=reference_schema)
    migrate(reference)
    for h in range(HOURS):
        sync_interval(reference, code42, first + timedelta(hours=h + 1))
    reference.dispose()
    got, expected = _rows(pg_schema), _rows(reference_schema)
    compared = sum(len(rows) for name, rows in expected.items() if name != "code42_actor")

    tables = ", ".join(f"{name} {len(rows)}" for name, rows in expected.items())
    figures = [(f"set-up {prepared:.0f} s, components {components_up:.0f} s, {HOURS} runs {took:.0f} s; "
              f"{WORKERS} workers ran {tasks} task attempts ({extracts} extracts); {requests} Code42 requests over {span:.0f} s: "
              f"busiest 60 s {busiest} / {LIMIT} allowed ({busiest / LIMIT:.2f}), "
              f"mean {60 * requests / max(span, 1):.1f}/min; 429s {stats.get('n_429', 0)}; "
              f"rows compared {compared} ({tables})")]
    report_figures("celery_workers", figures[0])  # before the checks: a failed run's figures show too

    assert stats.get("n_429", 0) == 0, stats["by_status"]
    assert busiest <= LIMIT + 1  # a sample's second of slack; the sandbox's own window said no 429
    # How close the busiest minute came to the limit is reported above, not asserted: how much the two
    # runs' extractions overlap depends on how fast the workers pick their tasks up, and a run where
    # they barely overlap proves nothing either way (the spacing itself is tested in
    # test_shared_throttle.py with two processes on one Redis key).
    assert expected["code42_session"] and expected["code42_alert"]
    for name in expected:
        if name == "code42_actor":
            continue
        assert got[name] == expected[name], name
    # Actors: every actor the single-process run resolved, the Celery runs resolved too (by id; how
    # many rows differ in content or are extra is reported: the DAG's runs are not the pipeline's
    # steps alone, see the report of issue 19).
    got_ids, expected_ids = ({row[1] for row in rows["code42_actor"]} for rows in (got, expected))
    assert expected_ids <= got_ids
    differing = len(set(got["code42_actor"]) ^ set(expected["code42_actor"])) // 2
    figures.append(f"code42_actor: {len(got_ids)} ids in the Celery warehouse, {len(expected_ids)} in the "
                   f"single-process one, all of those present; {len(got_ids - expected_ids)} extra, "
                   f"~{differing} rows differing in content")
    report_figures("celery_workers", "\n".join(figures))

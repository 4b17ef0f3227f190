"""One API client, one rate limit: parallel runs (processes) of one tenant share the throttle."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta

import pytest

from apiclient.throttle import RateLimiter
from code42_hook import Code42ConfigError, Code42Hook

CHILD = textwrap.dedent("""
    import json, sys, time
    from datetime import datetime, timedelta, UTC
    from code42_hook import Code42Hook
    from securitycoach import sync
    from securitycoach.streams import STREAMS
    from securitycoach.warehouse import create_warehouse_engine, migrate

    end = datetime.fromisoformat(sys.argv[1])
    engine = create_warehouse_engine("sqlite:///" + sys.argv[2])
    migrate(engine)
    hook = Code42Hook("code42_parallel")
    tenant = hook.tenant_id
    started = time.time()
    items = sync.extract_to_staging(engine, hook, STREAMS["sessions"], tenant_id=tenant, run_key=sys.argv[1],
                                    start=end - timedelta(hours=25), end=end)
    print(json.dumps({"started": started, "finished": time.time(), "items": items,
                      "requests": hook.stats.requests, "n_429": hook.stats.n_429}))
""")


def test_limiter_schedule_is_shared_across_processes(tmp_path):
    """Two processes drawing 8 slots each from one shared key: 16 slots, spaced as one limiter's."""
    script = tmp_path / "slots.py"
    script.write_text(textwrap.dedent("""
        import json, sys, time
        from apiclient.throttle import RateLimiter
        limiter = RateLimiter(600, shared_key="test-key")
        stamps = []
        for _ in range(8):
            limiter.acquire()
            stamps.append(time.time())
        print(json.dumps(stamps))
    """))
    env = {**os.environ, "CODE42_THROTTLE_DIR": str(tmp_path / "throttle")}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    stamps = sorted(s for p in procs for s in json.loads(p.communicate(timeout=60)[0]))
    interval = RateLimiter(600).interval
    assert len(stamps) == 16
    # One schedule: 16 slots one interval apart (two separate limiters would take 8 slots' time).
    assert stamps[-1] - stamps[0] >= 15 * interval * 0.95
    assert sum(b - a < interval / 2 for a, b in itertools.pairwise(stamps)) <= 2  # scheduling jitter at most


def test_two_parallel_intervals_stay_under_the_clients_limit(start_sandbox, tmp_path):
    """Two hourly extractions (24 h look-back each) of one tenant run in parallel processes, each
    configured with the client's full limit; the sandbox enforces that limit and counts requests."""
    limit = 240  # per minute: 4 requests/s between both processes
    sandbox = start_sandbox(sessions=20_000, rate_limit_per_min=limit)
    env = {**os.environ, "CODE42_THROTTLE_DIR": str(tmp_path / "throttle"),
           "AIRFLOW_CONN_CODE42_PARALLEL": json.dumps({
               "conn_type": "code42", "login": sandbox.client_id, "password": sandbox.client_secret,
               "host": sandbox.base_url, "extra": {"rate_limit_per_minute": limit, "pages_in_flight": 4}})}
    script = tmp_path / "extract.py"
    script.write_text(CHILD)
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    before = sandbox.stats()["data_requests"]
    procs = [subprocess.Popen([sys.executable, str(script), (last - timedelta(hours=h)).isoformat(),
                               str(tmp_path / f"wh{h}.db")], env=env, stdout=subprocess.PIPE, text=True)
             for h in (0, 5)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    stats = sandbox.stats()
    served = stats["data_requests"] - before
    assert all(r["items"] > 500 and r["n_429"] == 0 for r in results)
    assert served == sum(r["requests"] for r in results) >= 25
    assert stats.get("n_429", 0) == 0
    started, finished = min(r["started"] for r in results), max(r["finished"] for r in results)
    overlap = min(r["finished"] for r in results) - max(r["started"] for r in results)
    assert overlap > 0, "the two extractions did not run at the same time"
    # Both together never went faster than the one client's limit (each alone would have).
    assert served - 1 <= (finished - started) * limit / 60


@pytest.mark.parametrize("shared", [False, True])
def test_separate_limiters_share_only_with_a_key(tmp_path, monkeypatch, shared):
    monkeypatch.setenv("CODE42_THROTTLE_DIR", str(tmp_path))
    key = "k" if shared else None
    a, b = RateLimiter(60, shared_key=key), RateLimiter(60, shared_key=key)
    assert a.acquire() == 0
    waited = b.acquire()
    assert (waited > 0.9) if shared else (waited == 0)


# --- the Redis store: one schedule for every host -------------------------------------------------
REDIS_URL = os.environ.get("SECURITYCOACH_TEST_REDIS", "redis://127.0.0.1:6379/11")


@pytest.fixture
def redis_key():
    """A Redis key of this test's own (the limiter's digest of a fresh shared key), deleted after."""
    import hashlib

    import redis

    from apiclient.throttle import REDIS_KEY_PREFIX

    shared_key = f"test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    yield shared_key
    client.delete(REDIS_KEY_PREFIX + hashlib.sha256(shared_key.encode()).hexdigest()[:24])
    client.close()


def test_two_hosts_sharing_one_redis_key_are_spaced_as_one_limiter(tmp_path, redis_key):
    """Two processes, each with its own temp and throttle folder (as if on two hosts), drawing 8 slots
    each from one Redis store: 16 slots, spaced as one limiter's (the file lock cannot do it here)."""
    script = tmp_path / "slots.py"
    script.write_text(textwrap.dedent("""
        import json, sys, time
        from apiclient.throttle import RateLimiter
        limiter = RateLimiter(600, shared_key=sys.argv[1], store=sys.argv[2])
        stamps = []
        for _ in range(8):
            limiter.acquire()
            stamps.append(time.time())
        print(json.dumps(stamps))
    """))
    procs = []
    for host in ("a", "b"):
        env = {**os.environ, "CODE42_THROTTLE_DIR": str(tmp_path / host / "throttle"),
               "TMPDIR": str((tmp_path / host).resolve())}
        (tmp_path / host).mkdir()
        procs.append(subprocess.Popen([sys.executable, str(script), redis_key, REDIS_URL], env=env,
                                      stdout=subprocess.PIPE, text=True))
    stamps = sorted(s for p in procs for s in json.loads(p.communicate(timeout=60)[0]))
    interval = RateLimiter(600).interval
    assert len(stamps) == 16
    assert stamps[-1] - stamps[0] >= 15 * interval * 0.95  # one schedule, not two
    assert sum(b - a < interval / 2 for a, b in itertools.pairwise(stamps)) <= 2  # scheduling jitter at most
    assert not list((tmp_path / "a").rglob("*.slot")) and not list((tmp_path / "b").rglob("*.slot"))


@pytest.fixture
def code42_conn(monkeypatch, clean_sandbox):
    def make(conn_id: str, **extra) -> Code42Hook:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "code42", "login": clean_sandbox.client_id, "password": clean_sandbox.client_secret,
            "host": clean_sandbox.base_url, "extra": {"retry_backoff": 0.05, **extra}}))
        return Code42Hook(conn_id)
    return make


@pytest.mark.parametrize(("url", "problem"), [
    ("http://:s3cret@127.0.0.1:6379/0", "is not a Redis URL"),
    ("redis://:s3cret@127.0.0.1:63x9/0", "is not a URL"),
    ("redis://:s3cret@127.0.0.1:6379/zero", "the database must be a number"),
    ("redis://", "names no host"),
])
def test_a_bad_store_url_is_refused_naming_the_connection(code42_conn, url, problem):
    hook = code42_conn("code42_badstore", rate_limit_store=url)
    with pytest.raises(Code42ConfigError) as raised:
        hook.settings  # noqa: B018
    message = str(raised.value)
    assert message.startswith("connection 'code42_badstore': extra rate_limit_store: ")
    assert problem in message and "s3cret" not in message and "\n" not in message
    ok, said = hook.test_connection()
    assert not ok and said == f"Invalid connection settings: {message}"


def test_an_unreachable_store_fails_the_call_naming_the_connection_and_the_store(code42_conn, clean_sandbox):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"redis://:s3cret@127.0.0.1:{closed}/3"
    hook = code42_conn("code42_nostore", rate_limit_store=url)
    with pytest.raises(Code42ConfigError) as raised:
        list(hook.iter_alert_rules())
    message = str(raised.value)
    assert message.startswith(f"connection 'code42_nostore': rate limit store redis://127.0.0.1:{closed}/3 "
                              "unreachable (ConnectionError: ")
    assert "s3cret" not in message and "\n" not in message
    ok, said = hook.test_connection()
    assert not ok and said == message
    assert clean_sandbox.stats()["data_requests"] == 0  # nothing was sent without a slot


def test_the_connection_test_draws_from_the_tasks_budget(code42_conn, clean_sandbox, monkeypatch, tmp_path):
    """A task's hook and the connection test of another connection object (same Base URL and Client
    ID, same store; another host's throttle folder) share one schedule: the test's three data
    requests wait for the slots the task reserved."""
    limit = 30  # per minute: one slot every ~2 s
    task = code42_conn("code42_task", rate_limit_per_minute=limit, rate_limit_store=REDIS_URL)
    monkeypatch.setenv("CODE42_THROTTLE_DIR", str(tmp_path / "task-host"))
    for _ in range(2):
        task.limiter.acquire()  # the task's next two requests
    monkeypatch.setenv("CODE42_THROTTLE_DIR", str(tmp_path / "api-server-host"))
    started = time.monotonic()
    ok, said = code42_conn("code42_ui", rate_limit_per_minute=limit, rate_limit_store=REDIS_URL).test_connection()
    waited = time.monotonic() - started
    interval = task.limiter.interval
    assert ok, said
    # Its three requests took the 3rd, 4th and 5th slots of the schedule: at least 3 intervals (one
    # connection test alone would start at once and need 2).
    assert waited >= 3 * interval * 0.95
    assert clean_sandbox.stats()["data_requests"] == 3

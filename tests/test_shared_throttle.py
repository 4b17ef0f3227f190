"""One API client, one rate limit: parallel runs (processes) of one tenant share the throttle."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from apiclient.throttle import RateLimiter

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

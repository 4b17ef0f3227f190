"""The worker killed with SIGKILL mid-load, then rerun.

Four hourly runs (the sandbox clock an hour on per run), batches of 10. The third run happens in
a child process (``tests/kill_worker.py``), as an Airflow worker would run the task. The child
stops right *after* the last write of its second sessions batch (the batch's children were
deleted and rewritten and the session rows upserted; only the commit is missing), prints
``writing`` and blocks; the test then sends SIGKILL. No sleeps: the kill point is a statement
count, the handshake a line on a pipe.

What must hold, on the embedded SQLite warehouse and on PostgreSQL:
- the killed transaction left nothing: the warehouse equals a reference run that failed just
  before the *first* write of that batch (the batches before it are there, whole; nothing of it);
- rerunning the killed interval and running the next one gives exactly the clean run's digest.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import fault_helpers
import pytest
from fault_helpers import (
    clock_for_run,
    diff_counts,
    failed_run_digest,
    fresh_warehouse,
    hourly_ends,
    make_hook,
    run_hours,
)

from securitycoach.warehouse.digest import table_digests

pytestmark = pytest.mark.faults

pg_url = fault_helpers.pg_url  # the fixture

BATCH = 10
KILLED_RUN = 2  # the third of four runs
PREFIX, NTH = "INSERT INTO code42_session (", 2  # the last write of the 2nd sessions batch
# The reference fails at the *first* write of that batch: the state a whole-batch transaction must
# leave (batches before it applied, nothing of it), whatever the batch does in between.
REFERENCE_PREFIX = "DELETE FROM code42_session_risk_indicator "
WORKER = Path(__file__).with_name("kill_worker.py")


def _warehouse(backend, pg_url, tmp_path, name):
    """(engine, spec for the worker) on the backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / name}.db"
        return fresh_warehouse(url), {"url": url}
    engine = pg_url()
    return engine, {"url": engine.url.render_as_string(hide_password=False), "search_path": engine.schema_name}


def kill_mid_load(spec: dict) -> subprocess.CompletedProcess:
    """Run the worker; SIGKILL it once it reports being inside the chosen write's transaction."""
    with subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        seen, deadline = [], time.monotonic() + 120
        with selectors.DefaultSelector() as sel:  # its log lines go to stdout too: read up to "writing"
            sel.register(child.stdout, selectors.EVENT_READ)
            while "writing" not in seen[-1:] and sel.select(timeout=max(0.0, deadline - time.monotonic())):
                raw = child.stdout.readline()
                if not raw:
                    break
                seen.append(raw.strip())
        if not seen or seen[-1] != "writing":
            child.kill()
            _, err = child.communicate(timeout=30)
            pytest.fail(f"the worker never reached the kill point: {seen[-5:]!r}\n{err[-3000:]}")
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_worker_killed_mid_load_then_rerun_gives_the_clean_warehouse(backend, pg_url, clean_sandbox, monkeypatch,
                                                                     tmp_path):
    sb = clean_sandbox
    hook = make_hook(monkeypatch, sb, "code42_kill")
    ends = hourly_ends(sb, 4)

    clean, _ = _warehouse(backend, pg_url, tmp_path, "clean")
    run_hours(clean, hook, sb, ends, batch_size=BATCH)
    clean_digest = table_digests(clean)

    sb.reset()
    reference, _ = _warehouse(backend, pg_url, tmp_path, "reference")
    reference_digest = failed_run_digest(reference, hook, sb, ends, KILLED_RUN, REFERENCE_PREFIX, NTH, batch_size=BATCH)

    sb.reset()
    killed, spec = _warehouse(backend, pg_url, tmp_path, "killed")
    run_hours(killed, hook, sb, ends[:KILLED_RUN], batch_size=BATCH)
    before = table_digests(killed)
    clock_for_run(sb, KILLED_RUN)
    result = kill_mid_load({**spec, "conn_id": "code42_kill", "end": ends[KILLED_RUN].isoformat(),
                            "prefix": PREFIX, "nth": NTH, "batch_size": BATCH})
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-3000:])

    after_kill = table_digests(killed)
    assert after_kill == reference_digest, diff_counts(reference_digest, after_kill)
    assert after_kill != before  # the first sessions batch of the killed run was committed, whole

    run_hours(killed, hook, sb, ends, first=KILLED_RUN, batch_size=BATCH)  # the retry, then the next run
    rerun = table_digests(killed)
    assert rerun == clean_digest, diff_counts(clean_digest, rerun)
    rows = sum(n for n, _ in rerun.values())
    lost = sum(max(0, clean_digest[t][0] - rerun[t][0]) for t in clean_digest)
    extra = sum(max(0, rerun[t][0] - clean_digest[t][0]) for t in clean_digest)
    print(f"\n[SIGKILL mid-load, {backend}] runs=4+1 rerun, worker exit {result.returncode}; "
          f"rows compared={rows} lost={lost} duplicated={extra}")

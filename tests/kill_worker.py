"""The worker of ``test_faults_sigkill``: one hourly sync run in a child process that stops right
after a chosen write (inside its open transaction), says so on stdout and waits to be killed.

    python tests/kill_worker.py '{"url": ..., "search_path": ..., "conn_id": ..., "end": "<ISO>",
                                  "prefix": "INSERT INTO code42_session (", "nth": 2, "batch_size": 10}'

The Code42 connection comes from the environment (``AIRFLOW_CONN_<CONN_ID>``), as in a worker.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

from fault_helpers import arm, run_interval

from code42_hook import Code42Hook
from securitycoach.warehouse import create_warehouse_engine


def main(spec: dict) -> int:
    engine = create_warehouse_engine(spec["url"], search_path=spec.get("search_path"))
    hook = Code42Hook(spec["conn_id"])

    def wait_to_be_killed() -> None:
        print("writing", flush=True)
        sys.stdin.read()  # the parent never writes: this blocks until SIGKILL
        os._exit(3)  # stdin closed without a kill: fail loudly

    arm(engine, spec["prefix"], spec["nth"], wait_to_be_killed, event="after_cursor_execute")
    run_interval(engine, hook, datetime.fromisoformat(spec["end"]), batch_size=spec["batch_size"])
    print("finished without reaching the kill point", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))

"""Requests the hook makes to read every session of a window, against the fewest pages possible.

Reads both listings of a 30-day window and of a 25-hour look-back of a 50 000-session sandbox,
with the sub-window fill given (default the hook's), and prints requests / (ceil(quiet / 50) +
ceil(alerted / 50)).

    .venv/bin/python scripts/sessions_request_cost.py [fill]
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import timedelta

from incydr_sandbox.process import SandboxProcess


def main() -> None:
    with SandboxProcess(seed=42, anchor="2026-11-01T00:00:00Z", sessions=50_000) as sb:
        os.environ["AIRFLOW_CONN_C42_COST"] = json.dumps({
            "conn_type": "code42", "login": sb.client_id, "password": sb.client_secret, "host": sb.base_url,
            "extra": {"rate_limit_per_minute": 60000}})
        from code42_hook import Code42Hook

        fill = float(sys.argv[1]) if len(sys.argv) > 1 else Code42Hook.SESSIONS_WINDOW_FILL

        def hook() -> Code42Hook:
            h = Code42Hook("c42_cost")
            h.SESSIONS_WINDOW_FILL = fill
            return h

        for label, start in (("30 days", sb.anchor - timedelta(days=30)), ("25 h", sb.anchor - timedelta(hours=25))):
            counts = {flag: sum(1 for _ in hook().iter_sessions(start, sb.anchor, has_alerts=flag))
                      for flag in (False, True)}
            both = hook()
            read = sum(1 for _ in both.iter_sessions(start, sb.anchor))
            fewest = sum(math.ceil(n / Code42Hook.SESSIONS_PAGE_SIZE) for n in counts.values())
            print(f"{label}: fill {fill}, {read} sessions ({counts[False]} without alerts, {counts[True]} with), "
                  f"{both.stats.requests} requests for {fewest} pages at the fewest "
                  f"({both.stats.requests / fewest:.2f} x)")


if __name__ == "__main__":
    main()

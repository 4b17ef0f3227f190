"""Measure what a page shift does to ``Code42Hook.iter_sessions``: its begin-time sub-windows against
paging the listings by page number in each order the API offers.

A sandbox with 40 sessions an hour; a 14-hour window reaching 2 h past the sandbox clock; the
clock moves 10 minutes with every page served (``advance_per_page_min``), so sessions arrive and
change (end times grow, alerts appear and move sessions between the two listings) while the hook
reads. For each way: items yielded, items yielded twice (in both listings: they moved, or a page
shift doubled them), items *skipped* (present both when the read began and when it ended, never
yielded) and arrivals not yielded (the next run's look-back reads those).

    .venv/bin/python scripts/page_shift_orders.py
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import timedelta

from incydr_sandbox.process import SandboxProcess

ORDERS = {  # each reads both listings (has_alerts false, then true)
    "hook: sub-windows": {},
    "paged, end time DESC": {"sort_direction": "DESC"},  # the API's default order, paged
    "paged, end time ASC": {"order_by": "end_time", "sort_direction": "ASC"},
    "paged, score": {"order_by": "score"},
}


def main() -> None:
    with SandboxProcess(seed=42, anchor="2026-11-01T00:00:00Z", sessions=28_800) as sb:
        os.environ["AIRFLOW_CONN_C42_SHIFT"] = json.dumps({
            "conn_type": "code42", "login": sb.client_id, "password": sb.client_secret, "host": sb.base_url,
            "extra": {"rate_limit_per_minute": 60000, "retry_backoff": 0.05}})
        from code42_hook import Code42Hook

        window = (sb.anchor - timedelta(hours=12), sb.anchor + timedelta(hours=2))

        def listing(clock: int, filters: dict) -> list[str]:
            sb.reset()
            sb.advance((clock - sb.anchor_ms) / 60_000)
            return [s.session_id for s in Code42Hook("c42_shift").iter_sessions(*window, **filters)]

        print(f"{'order':24} {'yielded':>8} {'doubled':>8} {'skipped':>8} {'arrivals missed':>16}")
        for name, filters in ORDERS.items():
            sb.reset()
            sb.set_faults(advance_per_page_min=10)
            first_clock = sb.stats()["clock_ms"]
            got = [s.session_id for s in Code42Hook("c42_shift").iter_sessions(*window, **filters)]
            last_clock = sb.stats()["clock_ms"] - 10 * 60_000
            first, last = set(listing(first_clock, filters)), set(listing(last_clock, filters))
            doubled = sum(n - 1 for n in Counter(got).values())
            print(f"{name:24} {len(got):8} {doubled:8} {len(first & last - set(got)):8} "
                  f"{len(last - first - set(got)):16}")


if __name__ == "__main__":
    main()

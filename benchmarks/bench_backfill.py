"""Benchmark: a backfill of a large tenant through the sync pipeline, against the floor and a peer.

Starts the sandbox with a large, lazily generated tenant and measures in one run:

- raw floor: a minimal client paging the same sessions + alerts (+ actors) with the same pages in
  flight as the pipeline and parsing the JSON, writing nothing;
- pipeline: the core code the DAG tasks run (alert rules and actors as ``code42_reference``; extract
  sessions and alerts to staging, load, resolve new actors, map users, detect as ``code42_sync``) over the
  whole range into a fresh PostgreSQL schema, in a subprocess (peak RSS, time, requests);
  the same over a quarter of the range (N vs 4N sessions: RSS and time ratios);
- peer: the official ``incydr`` CLI listing the same sessions as json-lines to /dev/null;
- rate limit: the sandbox enforcing a scaled limit for a short run: 429s, achieved ÷ allowed rate;
- a no-new-data hourly run (its tasks' work, after the backfill, nothing changed): seconds.

    .venv/bin/python benchmarks/bench_backfill.py [--sessions 200000] [--days 30] [--profile]

With ``--scale 125000,250000,500000,1000000`` it measures only a scale series instead: the sandbox
holds the largest size over ``--days``, and the pipeline child runs once per size over the leading
share of the range that holds it (peak RSS, seconds, requests per size; time and RSS of the largest
size over those of the size a quarter of it). Before the series it counts the requests of a sample
of hourly intervals at that density, as the hourly sync reads them (sessions with no look-back and
with the DAG's 24 h one, alerts), and of one day's deep re-read (``deep_lookback_days``):
the figures the README's request budget is checked against. ``--no-series`` stops after those.

Writes build/bench/summary.json (a scale series under its key ``scale``, the other figures kept)
and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ANCHOR = "2026-11-01T00:00:00Z"
SEED = 42
PG_URL = os.environ.get("SECURITYCOACH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CONN_ID = "code42_bench"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _conn_env(base_url: str, client_id: str, secret: str, **extra) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({
        "conn_type": "code42", "login": client_id, "password": secret, "host": base_url, "extra": extra})}


# --- the raw floor ------------------------------------------------------------------------------
def raw_floor(base_url: str, client_id: str, secret: str, start_ms: int, end_ms: int, tenant_id: str,
              in_flight: int, actors_page: int = 500) -> dict:
    """Page sessions (both listings, has_alerts false and true), alerts and actors with ``in_flight``
    pages at a time by page number (the sandbox's clock stands still here, so nothing moves), parse
    JSON, keep nothing: the least any client can do."""
    http = requests.Session()
    http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(in_flight, 1)))
    token = http.post(f"{base_url}/v1/oauth", auth=(client_id, secret), timeout=30).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def sessions_listing(has_alerts):
        def sessions(page):
            return http.get(f"{base_url}/v1/sessions", timeout=60, params={
                "on_or_after": start_ms, "before": end_ms, "has_alerts": has_alerts, "page_size": 50,
                "page_number": page}).json()
        return sessions

    iso = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def alerts(page):
        return http.post(f"{base_url}/v1/alerts/query-alerts", timeout=60, json={
            "tenantId": tenant_id, "groupClause": "AND", "groups": [{"filterClause": "AND", "filters": [
                {"term": "CreatedAt", "operator": "ON_OR_AFTER", "value": iso(start_ms)},
                {"term": "CreatedAt", "operator": "ON_OR_BEFORE", "value": iso(end_ms)}]}],
            "pgNum": page, "pgSize": 500, "srtDirection": "ASC", "srtKey": "CreatedAt"}).json()

    def actors(page):
        return http.get(f"{base_url}/v1/actors/actor/search", timeout=60,
                        params={"page": page + 1, "pageSize": actors_page}).json()

    counts, requests_made = {}, 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max(in_flight, 1)) as pool:
        for name, fetch, key, size in (("actors", actors, "actors", actors_page),
                                       ("sessions_quiet", sessions_listing("false"), "items", 50),
                                       ("sessions_alerted", sessions_listing("true"), "items", 50),
                                       ("alerts", alerts, "alerts", 500)):
            first = fetch(0)
            requests_made += 1
            items = len(first[key])
            total = first.get("totalCount")
            if total is None:  # actors: no total, page until a short page
                page = 1
                while len(first[key]) == size:
                    first = fetch(page)
                    requests_made, items, page = requests_made + 1, items + len(first[key]), page + 1
            else:
                for body in pool.map(fetch, range(1, math.ceil(total / size))):
                    requests_made += 1
                    items += len(body[key])
            counts[name] = items
    counts["sessions"] = counts["sessions_quiet"] + counts["sessions_alerted"]
    return {"seconds": time.perf_counter() - started, "requests": requests_made, **counts}


# --- the pipeline (run in a child process) ------------------------------------------------------
def pipeline_child(args: argparse.Namespace) -> None:
    """The DAG tasks' core calls over [start, end) into a fresh schema; prints one JSON line."""
    import sqlalchemy as sa

    from code42_hook import Code42Hook
    from securitycoach import sync
    from securitycoach.detection.catalog import load_catalog
    from securitycoach.detection.engine import detect
    from securitycoach.mapping.rules import load_rules
    from securitycoach.mapping.store import remap
    from securitycoach.paths import detection_rules_path, mapping_rules_path
    from securitycoach.warehouse import create_warehouse_engine, migrate

    start = datetime.fromtimestamp(args.start_ms / 1000, UTC)
    end = datetime.fromtimestamp(args.end_ms / 1000, UTC)
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{args.schema}"'))
    engine = create_warehouse_engine(PG_URL, search_path=args.schema)
    try:
        migrate(engine)
        rules = load_rules(mapping_rules_path())
        catalog = load_catalog(detection_rules_path())
        rss_before = _rss_mb()

        def run(run_key: str, start: datetime, end: datetime, sessions_from: datetime) -> tuple[dict, Code42Hook]:
            hook = Code42Hook(CONN_ID)
            tenant = hook.tenant_id
            lookback = (start - sessions_from) // timedelta(hours=1)
            done = sync.Interval(tenant_id=tenant, run_key=run_key, start=start, end=end,
                                 lookback_hours=lookback).run(engine, hook)
            times = {f"extract_{e.stream}": e.seconds for e in done.extracted}
            times.update(load=done.load_seconds, new_actors=done.new_actors_seconds)
            t0 = time.perf_counter()
            remap(engine, tenant, rules)
            times["map_users"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            detect(engine, tenant, catalog)  # the detect task (tip delivery, after it, is not measured)
            times["detect"] = time.perf_counter() - t0
            return {"times": times, "items": {e.stream: e.items for e in done.extracted},
                    "changed": done.changed}, hook

        started = time.perf_counter()
        ref_hook = Code42Hook(CONN_ID)  # what code42_reference does: alert rules and actors
        sync.refresh_alert_rules(engine, ref_hook, tenant_id=ref_hook.tenant_id)
        sync.refresh_actors(engine, ref_hook, tenant_id=ref_hook.tenant_id)
        actors_s = time.perf_counter() - started
        result, hook = run("backfill", start, end, start)
        seconds = time.perf_counter() - started
        out = {"seconds": seconds, "actors_s": actors_s, **result, "rss_mb": _rss_mb(), "rss_before_mb": rss_before,
               "requests": hook.stats.requests + ref_hook.stats.requests,
               "n_429": hook.stats.n_429, "retries": hook.stats.retries}
        if args.hourly:
            # No new data: the last hour again, with the DAG's default 24 h look-back, after the backfill.
            # Its task work is also counted as this process's CPU time (every thread), apart from the
            # wall time, which includes waiting for the API's pages.
            t0, cpu0 = time.perf_counter(), time.process_time()
            hourly, hourly_hook = run("hourly", end - timedelta(hours=1), end, end - timedelta(hours=25))
            out["hourly"] = {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, **hourly,
                             "requests": hourly_hook.stats.requests}
        print(json.dumps(out, default=str), flush=True)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
        admin.dispose()


def profiled(function, args: argparse.Namespace, out: Path) -> None:
    """``function(args)`` under cProfile (the main thread only: parsing, transform, load, detect; the
    page threads and the staging writer thread are not profiled, the main thread's waits on them
    show as lock acquires); the top functions by own time and by cumulative time go to ``out``."""
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    profile.runcall(function, args)
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue())


def run_pipeline(sb, start_ms: int, end_ms: int, hourly: bool, extra: dict, profile_out: Path | None = None) -> dict:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, **_conn_env(sb.base_url, sb.client_id, sb.client_secret, **extra)}
    before = sb.stats()["data_requests"]
    cmd = [sys.executable, __file__, "--child", "pipeline", "--start-ms", str(start_ms), "--end-ms", str(end_ms),
           "--schema", schema] + (["--hourly"] if hourly else []) + (
           ["--profile-out", str(profile_out)] if profile_out else [])
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["server_requests"] = sb.stats()["data_requests"] - before
    result["wall_s"] = wall
    return result


# --- the peer ------------------------------------------------------------------------------------
def run_cli(sb, start_ms: int, end_ms: int) -> float:
    fmt = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    env = {**os.environ, "INCYDR_URL": sb.base_url, "INCYDR_API_CLIENT_ID": sb.client_id,
           "INCYDR_API_CLIENT_SECRET": sb.client_secret, "INCYDR_USE_RICH": "false"}
    cli = str(Path(sys.executable).with_name("incydr"))
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:  # both listings: sessions with alerts (its default), then without
        for listing in ([], ["--no-alerts"]):
            subprocess.run([cli, "sessions", "search", "--start", fmt(start_ms), "--end", fmt(end_ms), *listing,
                            "--format", "json-lines"], env=env, stdout=devnull, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - started


# --- the rate limit ------------------------------------------------------------------------------
def rate_limited_run(sb, start_ms: int, end_ms: int, per_minute: int, seconds: float) -> dict:
    """Extract sessions for ``seconds`` with the sandbox enforcing ``per_minute`` (and the connection
    set to the same limit); 429s seen and achieved ÷ allowed rate, counted by the sandbox."""
    from code42_hook import Code42Hook

    os.environ.update(_conn_env(sb.base_url, sb.client_id, sb.client_secret, rate_limit_per_minute=per_minute))
    sb.reset()
    sb.set_faults(rate_limit_per_min=per_minute)
    hook = Code42Hook(CONN_ID)
    hook.tenant_id  # noqa: B018 - the token first (not a data request)
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    sessions = hook.iter_sessions(start, end)
    started = time.perf_counter()
    items = 0
    for _ in sessions:
        items += 1
        if time.perf_counter() - started >= seconds:
            break
    elapsed = time.perf_counter() - started
    stats = sb.stats()
    sessions.close()
    time.sleep(1.0)  # let the pages still in flight land before the sandbox goes away
    sb.reset()
    served = stats["data_requests"]
    return {"seconds": elapsed, "requests": served, "n_429": stats.get("n_429", 0), "items": items,
            "rate_per_min": served / elapsed * 60, "utilization": served / elapsed / (per_minute / 60)}


# --- the scale series ----------------------------------------------------------------------------
def scale_sizes(text: str) -> list[int]:
    """``--scale 125000,250000,...``: sizes, ascending, each positive."""
    try:
        sizes = sorted({int(part.replace("_", "").replace("k", "000").replace("M", "000000"))
                        for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale {text!r}: expected sizes like 125000,250000 or 125k,1M") from None
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError(f"--scale {text!r}: expected positive sizes")
    return sizes


def scale_ratios(rows: list[dict]) -> dict:
    """Time and peak RSS of the largest size over those of the size a quarter of it (or the
    smallest), and seconds per 1 000 sessions at each size."""
    big = rows[-1]
    base = next((r for r in rows if r["sessions_asked"] * 4 == big["sessions_asked"]), rows[0])
    return {"base_size": base["sessions_asked"], "largest_size": big["sessions_asked"],
            "size_ratio": round(big["sessions"] / base["sessions"], 3),
            "time_ratio": round(big["seconds"] / base["seconds"], 3),
            "rss_ratio": round(big["rss_mb"] / base["rss_mb"], 3),
            "requests_ratio": round(big["requests"] / base["requests"], 3)}


def write_summary(out: Path, section: dict) -> dict:
    """Merge ``section`` into the summary file (the other figures, from earlier runs, kept)."""
    summary = json.loads(out.read_text()) if out.exists() else {}
    summary.update(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def interval_requests(sb, end_ms: int, hours: int, lookback_hours: int) -> dict:
    """Requests of ``hours`` consecutive hourly intervals ending at ``end_ms``, each extracting
    sessions begun in the interval plus ``lookback_hours`` before it and alerts created in it, as
    the hourly sync does (counted by the hook; mean per interval)."""
    from code42_hook import Code42Hook

    os.environ.update(_conn_env(sb.base_url, sb.client_id, sb.client_secret, rate_limit_per_minute=1_000_000))
    sessions = alerts = session_requests = alert_requests = 0
    for k in range(hours):
        end = datetime.fromtimestamp(end_ms / 1000, UTC) - timedelta(hours=hours - k - 1)
        start = end - timedelta(hours=1)
        hook = Code42Hook(CONN_ID)
        hook.tenant_id  # noqa: B018 - the token first (not a data request)
        sessions += sum(1 for _ in hook.iter_sessions(start - timedelta(hours=lookback_hours), end))
        session_requests, before = session_requests + hook.stats.requests, hook.stats.requests
        alerts += sum(1 for _ in hook.iter_alerts(start, end))
        alert_requests += hook.stats.requests - before
    return {"intervals": hours, "lookback_hours": lookback_hours, "sessions": round(sessions / hours, 1),
            "session_requests": round(session_requests / hours, 2), "alerts": round(alerts / hours, 1),
            "alert_requests": round(alert_requests / hours, 2),
            "requests": round((session_requests + alert_requests) / hours, 2)}


def deep_reread_requests(sb, end_ms: int, days: int) -> dict:
    """Requests of the reference DAG's daily re-read: sessions begun in the ``days`` before a daily
    interval and in it (its ``lookback_hours`` is 24 x ``deep_lookback_days``)."""
    from code42_hook import Code42Hook

    os.environ.update(_conn_env(sb.base_url, sb.client_id, sb.client_secret, rate_limit_per_minute=1_000_000))
    hook = Code42Hook(CONN_ID)
    hook.tenant_id  # noqa: B018
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    sessions = sum(1 for _ in hook.iter_sessions(end - timedelta(days=days + 1), end))
    return {"deep_lookback_days": days, "sessions": sessions, "requests": hook.stats.requests}


def measure_intervals(sb, args: argparse.Namespace) -> dict:
    """The request figures of the README's budget at this tenant's density (away from the anchor,
    where sessions are still being observed)."""
    end_ms = sb.anchor_ms - 2 * 86_400_000
    out = {"tenant_sessions": args.scale[-1], "days": args.days,
           "hourly_no_lookback": interval_requests(sb, end_ms, args.interval_sample, 0),
           "hourly_lookback_24h": interval_requests(sb, end_ms, max(1, args.interval_sample // 4), 24),
           "deep_reread": deep_reread_requests(sb, end_ms, 14),
           "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    print(f"request budget figures: {json.dumps(out)}", flush=True)
    write_summary(args.out, {"intervals": out})
    return out


def run_scale(args: argparse.Namespace) -> None:
    """The pipeline over the leading share of one large tenant's range that holds each size."""
    from incydr_sandbox.process import SandboxProcess

    sizes, started = args.scale, time.perf_counter()
    local = {"rate_limit_per_minute": 1_000_000}
    rows: list[dict] = []
    with SandboxProcess(seed=SEED, anchor=ANCHOR, sessions=sizes[-1], days=args.days, actors=args.actors) as sb:
        end_ms = sb.anchor_ms
        start_ms = end_ms - args.days * 86_400_000
        print(f"sandbox {sb.base_url}: {sizes[-1]} sessions over {args.days} days, {args.actors} actors; "
              f"scale series {sizes}", flush=True)
        warmed = sb.warm()  # the alerts query plans every session before its end otherwise
        print(f"sandbox warmed: {warmed['sessions']} sessions planned in {warmed['seconds']:.1f} s", flush=True)
        if args.interval_sample:
            measure_intervals(sb, args)
        if args.no_series:
            return
        for size in sizes:
            part_end = start_ms + (end_ms - start_ms) * size // sizes[-1]
            result = run_pipeline(sb, start_ms, part_end, False, local)
            rows.append({"sessions_asked": size, "sessions": result["items"]["sessions"],
                         "alerts": result["items"]["alerts"], "days": round((part_end - start_ms) / 86_400_000, 3),
                         "seconds": round(result["seconds"], 1), "rss_mb": round(result["rss_mb"], 1),
                         "rss_before_mb": round(result["rss_before_mb"], 1), "requests": result["server_requests"],
                         "s_per_1k_sessions": round(result["seconds"] / result["items"]["sessions"] * 1000, 3),
                         "steps_s": {k: round(v, 1) for k, v in {"actors": result["actors_s"],
                                                                  **result["times"]}.items()}})
            print(f"scale {size}: {rows[-1]['sessions']} sessions, {rows[-1]['seconds']} s, "
                  f"{rows[-1]['rss_mb']} MB peak RSS, {rows[-1]['requests']} requests", flush=True)
            write_summary(args.out, {"scale": {  # after each size: a cut-short run keeps what it measured
                "rows": rows, **scale_ratios(rows), "days": args.days, "actors": args.actors,
                "tenant_sessions": sizes[-1], "complete": size == sizes[-1],
                "bench_s": round(time.perf_counter() - started, 1),
                "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}})
    scale = json.loads(args.out.read_text())["scale"]
    print(f"\n{'sessions':>10} {'days':>7} {'seconds':>9} {'s/1k':>7} {'peak RSS MB':>12} {'requests':>9}")
    for row in rows:
        print(f"{row['sessions']:>10} {row['days']:>7} {row['seconds']:>9} {row['s_per_1k_sessions']:>7} "
              f"{row['rss_mb']:>12} {row['requests']:>9}")
    print(f"\n{scale['largest_size']} vs {scale['base_size']} (x{scale['size_ratio']} sessions): time x"
          f"{scale['time_ratio']} (linear: ~{scale['size_ratio']}), peak RSS x{scale['rss_ratio']} (flat: ~1), "
          f"requests x{scale['requests_ratio']}")
    print(f"\nwrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200_000, help="sessions over the whole span (4N)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--actors", type=int, default=2000)
    parser.add_argument("--rate-limit", type=int, default=600, help="scaled limit for the rate run (per minute)")
    parser.add_argument("--rate-seconds", type=float, default=75.0, help="length of the rate-limited run")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured runs, run the pipeline over N once more under cProfile and "
                             "write its top functions to build/bench/profile.txt")
    parser.add_argument("--scale", type=scale_sizes, metavar="SIZES",
                        help="only a scale series: sizes like 125000,250000,500000,1000000 (the sandbox holds "
                             "the largest over --days; one pipeline run per size)")
    parser.add_argument("--interval-sample", type=int, default=24, metavar="HOURS",
                        help="with --scale: hourly intervals whose requests are counted first (0: none)")
    parser.add_argument("--no-series", action="store_true", help="with --scale: only the request counts")
    parser.add_argument("--out", type=Path, default=Path("build/bench/summary.json"))
    parser.add_argument("--child", choices=["pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--start-ms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--end-ms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--hourly", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("code42_hook").setLevel(logging.WARNING)  # the listings' progress lines: not in the table
    if args.child == "pipeline" and args.profile_out:
        profiled(pipeline_child, args, args.profile_out)
        return
    if args.child == "pipeline":
        pipeline_child(args)
        return
    if args.scale:
        run_scale(args)
        return

    from code42_hook import Code42Hook, Code42Settings
    from incydr_sandbox.process import SandboxProcess

    in_flight = Code42Settings().pages_in_flight
    local = {"rate_limit_per_minute": 1_000_000}  # local runs: no client throttle (only the rate run has one)
    started = time.perf_counter()
    with SandboxProcess(seed=SEED, anchor=ANCHOR, sessions=args.sessions, days=args.days,
                        actors=args.actors) as sb:
        end_ms = sb.anchor_ms
        start_ms = end_ms - args.days * 86_400_000
        quarter_ms = start_ms + (end_ms - start_ms) // 4
        print(f"sandbox {sb.base_url}: {args.sessions} sessions over {args.days} days, {args.actors} actors; "
              f"{in_flight} pages in flight", flush=True)
        warmed = sb.warm()  # every session planned once now: no run below pays for it
        print(f"sandbox warmed: {warmed['sessions']} sessions planned in {warmed['seconds']:.1f} s", flush=True)

        raw = raw_floor(sb.base_url, sb.client_id, sb.client_secret, start_ms, end_ms, sb.tenant_id, in_flight)
        print(f"raw floor: {raw['seconds']:.1f} s", flush=True)
        full = run_pipeline(sb, start_ms, end_ms, True, local)
        print(f"pipeline (4N): {full['seconds']:.1f} s", flush=True)
        quarter = run_pipeline(sb, start_ms, quarter_ms, False, local)
        print(f"pipeline (N): {quarter['seconds']:.1f} s", flush=True)
        cli_s = None if args.skip_cli else run_cli(sb, start_ms, end_ms)
        if cli_s is not None:
            print(f"incydr CLI: {cli_s:.1f} s", flush=True)
        rate = rate_limited_run(sb, start_ms, end_ms, args.rate_limit, args.rate_seconds)
        if args.profile:
            profile_out = args.out.with_name("profile.txt")
            run_pipeline(sb, start_ms, quarter_ms, False, local, profile_out=profile_out)
            print(f"profile of the pipeline over N: {profile_out}", flush=True)

    min_requests = (math.ceil(raw["sessions_quiet"] / Code42Hook.SESSIONS_PAGE_SIZE)
                    + math.ceil(raw["sessions_alerted"] / Code42Hook.SESSIONS_PAGE_SIZE)
                    + max(1, math.ceil(raw["alerts"] / Code42Hook.ALERTS_PAGE_SIZE))
                    + math.ceil((raw["actors"] + 1) / Code42Hook.ACTORS_PAGE_SIZE)
                    + 1)  # alert rules: one page
    summary = {
        "raw_floor_s": round(raw["seconds"], 2),
        "pipeline_s": round(full["seconds"], 2),
        "cli_s": round(cli_s, 2) if cli_s is not None else None,
        "pipeline_vs_raw": round(full["seconds"] / raw["seconds"], 3),
        "cli_vs_pipeline": round(cli_s / full["seconds"], 3) if cli_s is not None else None,
        "requests": full["server_requests"] - full["hourly"]["requests"],  # the backfill's, counted by the sandbox
        "min_requests": min_requests,
        "rss_mb_n": round(quarter["rss_mb"], 1),
        "rss_mb_4n": round(full["rss_mb"], 1),
        "time_ratio_4n": round(full["seconds"] / quarter["seconds"], 3),
        "rate_utilization": round(rate["utilization"], 3),
        "n_429": rate["n_429"],
        "hourly_no_new_data_s": round(full["hourly"]["seconds"], 3),
        "hourly_no_new_data_cpu_s": round(full["hourly"]["cpu_s"], 3),
        "sessions_4n": full["items"]["sessions"],
        "sessions_n": quarter["items"]["sessions"],
        "alerts_4n": full["items"]["alerts"],
        "actors": raw["actors"],
        "days": args.days,
        "pages_in_flight": in_flight,
        "rate_limit_per_min": args.rate_limit,
        "rate_run_s": round(rate["seconds"], 1),
        "rate_run_requests": rate["requests"],
        "pipeline_steps_s": {k: round(v, 2) for k, v in {"actors": full["actors_s"], **full["times"]}.items()},
        "hourly_steps_s": {k: round(v, 3) for k, v in full["hourly"]["times"].items()},
        "hourly_requests": full["hourly"]["requests"],
        "pipeline_n_s": round(quarter["seconds"], 2),
        "pipeline_429s": full["n_429"],
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"{platform.system()} {platform.release()}",
        "bench_s": round(time.perf_counter() - started, 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_summary(args.out, summary)  # a scale series measured earlier stays under "scale"
    targets = {"pipeline_vs_raw": "<= 1.5", "cli_vs_pipeline": ">= 2", "requests": f"<= {min_requests + 2}",
               "rss_mb_4n": f"<= {1.2 * summary['rss_mb_n']:.1f}", "time_ratio_4n": "<= 4.4",
               "rate_utilization": ">= 0.95", "n_429": "= 0", "hourly_no_new_data_s": "< 2",
               "hourly_no_new_data_cpu_s": "< 2"}
    width = max(map(len, summary))
    print(f"\n{'metric':<{width}}  {'value':<24}  target")
    for key, value in summary.items():
        print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, dict) else value!s:<24}  {targets.get(key, '')}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

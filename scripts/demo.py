"""`make demo`: the main job on the embedded default, end to end.

Starts the local Incydr sandbox on a free loopback port, uses a throwaway AIRFLOW_HOME with a
SQLite metadata DB, points the `code42_default` and `securitycoach_warehouse` connections at the
sandbox and at data/warehouse.db, runs the reference DAG once and the hourly sync DAG for each
hour of the sandbox's last 24 hours (one dag.test() per interval, DEMO_HOURS) and the reporting DAG
(securitycoach_report: the default tenant's HTML report) once, then prints rows per table, the audit
summary and where the results are. The warehouse is rebuilt from scratch on every demo.

Why 24 intervals: they are what the demo shows that the reference run does not. The reference
run's deep re-read (deep_lookback_days, 14) loads the sessions of the 14 days before the last
midnight, whose tips are stale (older than campaigns.yaml's freshness_hours, 24); the hourly runs
cover the last 24 hours, the window in which tips are fresh enough to send, and each re-reads
the 24 hours before its interval (lookback_hours: the audit's items exceed the sessions), so the
first one overlaps the reference re-read. Alerts are read only for each run's own interval, so
code42_alert holds the last 24 hours of alerts (the test-mode campaign's tips with them); every
table the 72-interval demo filled is still filled, and the stale and sent counts are unchanged
(measured 2026-12-02: 720 + 77 stale, 13 + 2 sent). Fewer intervals would leave part of the last
day's alerts unread (and their tips unplanned); more would add runs whose every tip is stale.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO_HOURS = 24  # hourly code42_sync intervals: the last 24 hours, freshness_hours of campaigns.yaml


def _configure_airflow(home: str) -> None:
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "SECURITYCOACH_HOME": str(ROOT),
        }
    )


def main() -> int:
    started = time.monotonic()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # third-party import noise
    data_dir = ROOT / "data"
    warehouse = data_dir / "warehouse.db"
    report = data_dir / "reports" / "sync_report.html"
    for stale in [*data_dir.glob("warehouse.db*"), *data_dir.glob("reports/securitycoach_*.html")]:
        stale.unlink()
    airflow_home = tempfile.mkdtemp(prefix="securitycoach-demo-airflow-")
    _configure_airflow(airflow_home)

    from incydr_sandbox.process import SandboxProcess

    try:
        with SandboxProcess() as sandbox:
            print(f"sandbox: {sandbox.base_url} (anchor {sandbox.anchor:%Y-%m-%d %H:%M} UTC)", flush=True)
            # Code42, KnowBe4, and the sandbox's Slack Web API, SMTP sink (the SecurityTips) and chat
            # webhook (the team digest).
            # The sandbox is local: the client may go faster than Code42's 120 requests/minute.
            os.environ.update(sandbox.airflow_connections(rate_limit_per_minute=6000))
            os.environ["AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE"] = json.dumps(
                {"conn_type": "sqlite", "host": str(warehouse)}
            )
            print("airflow: migrating a throwaway metadata DB ...", flush=True)
            subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True)
            _run_dags(sandbox.anchor)
            sinks = sandbox.sinks()
            user_events = sandbox.user_events()
    finally:
        shutil.rmtree(airflow_home, ignore_errors=True)

    from securitycoach.report import run_report_query, write_sync_report
    from securitycoach.sync import table_counts
    from securitycoach.warehouse import create_warehouse_engine

    engine = create_warehouse_engine(f"sqlite:///{warehouse}")
    write_sync_report(engine, report)
    print("\nRows per table:")
    for name, rows in table_counts(engine).items():
        print(f"  {name:32} {rows:>7}")
    print("\nSync audit:")
    for r in run_report_query(engine, "sync_summary"):
        print(
            f"  tenant {r['tenant_id']}: {r['runs']} runs, {r['pages']} pages, {r['items']} items, "
            f"{r['requests']} requests, {r['retries']} retries, {r['n_429']} x 429, "
            f"{r['rows_changed']} rows changed, {r['seconds']:.1f} s of runs"
        )
    print("\nUser mapping (Code42 actor -> KSAT user):")
    for r in run_report_query(engine, "mapping_summary"):
        print(f"  tenant {r['tenant_id']}: {r['mapped']} of {r['actors']} actors mapped, "
              f"{r['ambiguous']} ambiguous, {r['no_match']} without a KSAT user (see rpt_unmapped_events)")
    print("\nDetections per rule:")
    for r in run_report_query(engine, "detection_summary"):
        print(f"  {r['detections']:>5}  {r['rule_name'][:60]:60}  {r['actors']:>3} actors ({r['mapped']} on mapped users)")
    print("\nSecurityTips per campaign (sent = delivered to the sandbox's sinks):")
    for r in run_report_query(engine, "delivery_summary"):
        print(f"  {r['campaign'][:34]:34} {r['channel']:8} sent {r['sent']:>3} to {r['users_coached']:>2} users, "
              f"test {r['test']:>3}, stale {r['stale']:>3} (older than 24 h), suppressed {r['suppressed']:>3} "
              f"(delivery limit), no chat account {r['no_chat_account']:>2}, failed {r['failed']}")
        print(f"  {'':34} {'':8} withdrawn {r['withdrawn']:>3} (Code42 triage cleared it), covered_by_instructor "
              f"{r['covered_by_instructor']:>3} (Instructor lesson sent), on_watchlist {r['on_watchlist']:>2}")
    _print_withdrawn(engine)
    _print_channels(engine, sinks)
    _print_ksat_events(engine, user_events)
    from securitycoach.html_report import report_path, report_tenants, resolve_period

    print(f"\nsync runs: {report}")
    print(f"warehouse: {warehouse}")
    for tenant in report_tenants(engine):  # the files the reporting DAG wrote
        print(f"report:    {report_path(tenant, resolve_period(engine, tenant))}")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


def _print_withdrawn(engine) -> None:
    """Why tips were withdrawn: the Code42 state of their session or alert (counts only)."""
    import re

    import sqlalchemy as sa

    from securitycoach.warehouse import schema as t

    with engine.connect() as conn:
        reasons = conn.execute(sa.select(t.delivery.c.reason).where(t.delivery.c.status == "withdrawn")).scalars()
        why: dict[str, int] = {}
        for reason in reasons:
            found = re.search(r"cleared (session|alert) \S+ \((\w+)\)", reason or "")
            key = f"{found.group(1)} {found.group(2)}" if found else "other"
            why[key] = why.get(key, 0) + 1
    print("\nWithdrawn SecurityTips (Code42 analysts cleared the activity before the tip went):")
    for key, n in sorted(why.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>5}  {key}")
    if not why:
        print("      0")


def _print_ksat_events(engine, api: dict) -> None:
    """The detections on the KSAT users' timelines (User Event API) and the key's quota."""
    import sqlalchemy as sa

    from securitycoach.warehouse import schema as t

    with engine.connect() as conn:
        by_status = dict(conn.execute(sa.select(t.ksat_event.c.status, sa.func.count())
                                      .group_by(t.ksat_event.c.status)).all())
        quota = conn.execute(sa.select(t.ksat_event_quota).order_by(t.ksat_event_quota.c.day)).all()
    print("\nKSAT timeline events (KnowBe4 User Event API; default push set: detections a campaign coached):")
    print(f"  ksat_event by status      {dict(sorted(by_status.items())) or 'none'}")
    print(f"  the sandbox holds         {len(api['events'])} events ({len({e['external_id'] for e in api['events']})} "
          f"distinct external ids), {len(api['deleted'])} deleted, {len(api['calls'])} calls received")
    for q in quota:
        print(f"  quota {q.day}          {q.calls} calls used, {max(0, q.quota - q.calls)} left of {q.quota} "
              f"(10 per seat per day)")


def _print_channels(engine, sinks: dict) -> None:
    """What each channel received: every tip to its person alone, the team channel counts only."""
    import sqlalchemy as sa

    from securitycoach.warehouse import schema as t

    with engine.connect() as conn:
        tip_bodies = set(conn.execute(sa.select(t.delivery.c.body).where(t.delivery.c.status == "sent")).scalars())
        recipients = {e.lower() for e in conn.execute(sa.select(t.delivery.c.recipient)).scalars() if e}
    dms, mails, posts = sinks["slack"], sinks["mail"], sinks["webhook"]
    per_person = [p for p in posts if p["payload"]["text"] in tip_bodies
                  or any(r in p["payload"]["text"].lower() for r in recipients)]
    digests = [p for p in posts if p["payload"]["text"].startswith("SecurityCoach digest")]
    print("\nSecurityTips per channel (what the sandbox received):")
    print(f"  Slack direct messages     {len(dms):>4} to {len({m['user_id'] for m in dms})} distinct people, "
          f"each in their own conversation ({len({m['channel'] for m in dms})} direct conversations)")
    print(f"  email                     {len(mails):>4} to {len({r for m in mails for r in m['rcpt_tos']})} "
          f"distinct people")
    print(f"  team channel (webhook)    {len(per_person):>4} person-level posts; {len(digests)} team digests "
          f"(counts only), {len(posts) - len(digests) - len(per_person)} other posts (ops alerts)")


def _run_dags(anchor: datetime) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    last_end = anchor.replace(minute=0, second=0, microsecond=0)
    ends = [last_end - timedelta(hours=h) for h in range(DEMO_HOURS - 1, -1, -1)]
    print(f"airflow: code42_reference once, code42_sync for {len(ends)} hourly intervals "
          f"{ends[0] - timedelta(hours=1):%Y-%m-%d %H:%M} .. {ends[-1]:%Y-%m-%d %H:%M} UTC", flush=True)
    _test(bag.get_dag("code42_reference"), last_end)
    for i, end in enumerate(ends, 1):
        _test(bag.get_dag("code42_sync"), end)
        if i % 12 == 0:
            print(f"  {i}/{len(ends)} intervals done", flush=True)
    # each sync run updated the tenant's warehouse Asset; under a scheduler that triggers its report
    # DAG; run by hand here, it writes the report of the tenant its sync DAG synced
    print("airflow: securitycoach_report (the HTML report of the default tenant)", flush=True)
    _test(bag.get_dag("securitycoach_report"), last_end)


def _test(dag, logical_date: datetime) -> None:
    run = dag.test(logical_date=logical_date.astimezone(UTC))
    if run.state != "success":
        raise SystemExit(f"{dag.dag_id} run for {logical_date} ended {run.state}; see the log above")


if __name__ == "__main__":
    sys.exit(main())

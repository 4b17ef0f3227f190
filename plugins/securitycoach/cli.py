"""``securitycoach``: the pipeline's commands that run without a scheduler.

    securitycoach mapping check-rules [RULES]
    securitycoach mapping upload FILE --tenant TENANT [--by NAME]
    securitycoach mapping run --tenant TENANT [--rules RULES]
    securitycoach tenant delete --tenant TENANT --confirm TENANT [--by NAME]
    securitycoach tenant pools [--tenants FILE]
    securitycoach report --tenant TENANT [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--out PATH]
    securitycoach verify --tenant ENTRY --since DAY [--until DAY] [--repair] [--tenants FILE]
    securitycoach warehouse upgrade [--grants]

The warehouse is ``--warehouse URL`` (SQLAlchemy URL), else ``$SECURITYCOACH_WAREHOUSE_URL``,
else the embedded SQLite warehouse (``data/warehouse.db``). ``report`` only reads: it refuses a
warehouse that is not at this code's schema (``warehouse upgrade`` or the ensure_schema task first);
the commands that write bring it up to date themselves. ``verify`` reads the Code42 API through
the entry's Airflow connection (it runs where Airflow's connections are: a scheduler or worker host).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from securitycoach.mapping.rules import RuleFileError, load_rules
from securitycoach.mapping.store import apply_upload, remap
from securitycoach.paths import data_dir, mapping_rules_path
from securitycoach.tenancy import DeletionRefused, delete_integration
from securitycoach.tenants import TenantFileError, load_tenants
from securitycoach.warehouse import SCHEMA_VERSION, create_warehouse_engine, describe_url, migrate
from securitycoach.warehouse.migrate import SchemaNotCurrent, check_schema, grant_analyst


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securitycoach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", help="SQLAlchemy URL of the warehouse")
    parser.add_argument("--search-path", help="PostgreSQL schema of the warehouse")
    sub = parser.add_subparsers(dest="area", required=True)
    mapping = sub.add_parser("mapping", help="user mapping").add_subparsers(dest="command", required=True)
    check = mapping.add_parser("check-rules", help="validate a mapping rule file")
    check.add_argument("rules", nargs="?", type=Path)
    upload = mapping.add_parser("upload", help="apply a code42_identifier,ksat_email CSV, then re-map")
    upload.add_argument("file", type=Path)
    upload.add_argument("--tenant", required=True)
    upload.add_argument("--by", default=os.environ.get("USER"), help="who uploads (audited)")
    upload.add_argument("--rules", type=Path)
    run = mapping.add_parser("run", help="re-map every actor of a tenant")
    run.add_argument("--tenant", required=True)
    run.add_argument("--rules", type=Path)
    tenant = sub.add_parser("tenant", help="the tenants in the warehouse").add_subparsers(dest="command",
                                                                                          required=True)
    delete = tenant.add_parser("delete", help="delete every row of one tenant (Delete Integration)")
    delete.add_argument("--tenant", required=True, help="the Code42 tenant id")
    delete.add_argument("--confirm", required=True, help="the tenant id again, to confirm")
    delete.add_argument("--by", default=os.environ.get("USER"), help="who deletes (audited)")
    delete.add_argument("--airflow", choices=("auto", "none"), default="auto",
                        help="auto: then pause the tenant's DAGs and remove its connections (Airflow REST API "
                             "if the connection securitycoach_airflow_api is defined, else the metadata DB); "
                             "none: only delete the rows and list what is left to do")
    delete.add_argument("--tenants", type=Path, help="tenants file (default include/config/tenants.yaml)")
    pools = tenant.add_parser("pools", help="print the Airflow pools of the tenants file (pool, slots, description; "
                                            "tab-separated), for docker/init.sh")
    pools.add_argument("--tenants", type=Path, help="tenants file (default include/config/tenants.yaml)")
    report = sub.add_parser("report", help="write the tenant's HTML report (self-contained, charts inline); "
                                           "prints the file's path")
    report.add_argument("--tenant", required=True, help="the Code42 tenant id")
    report.add_argument("--start", help="first day, YYYY-MM-DD (default: 30 days before the end)")
    report.add_argument("--end", help="last day, YYYY-MM-DD (default: the tenant's latest day with data)")
    report.add_argument("--out", type=Path,
                        help="file to write (default data/reports/securitycoach_<tenant>_<start>_<end>.html)")
    verify = sub.add_parser("verify", help="recount a tenant's past windows against the Code42 API's totalCount; "
                                           "list the windows the warehouse holds fewer rows of (exit 1), --repair them")
    verify.add_argument("--tenant", required=True, help="the tenants-file entry (its connection and schedule)")
    verify.add_argument("--since", required=True, help="first day, YYYY-MM-DD (or an ISO 8601 time, UTC)")
    verify.add_argument("--until", help="end, not included: YYYY-MM-DD or an ISO 8601 time (default: the end of "
                                        "the schedule's last whole interval)")
    verify.add_argument("--repair", action="store_true",
                        help="re-extract and load the windows with gaps, then recount them")
    verify.add_argument("--tenants", type=Path, help="tenants file (default include/config/tenants.yaml)")
    warehouse = sub.add_parser("warehouse", help="the warehouse schema").add_subparsers(dest="command",
                                                                                       required=True)
    upgrade = warehouse.add_parser("upgrade", help="create or upgrade the warehouse schema (what the ensure_schema "
                                                   "task does)")
    upgrade.add_argument("--grants", action="store_true",
                         help="PostgreSQL: renew the analyst role's grants even when the schema was current")
    return parser


def _engine(args, *, upgrade: bool = True):
    """The warehouse's URL and engine, brought to this code's schema unless ``upgrade`` is False."""
    url = args.warehouse or os.environ.get("SECURITYCOACH_WAREHOUSE_URL") or f"sqlite:///{data_dir() / 'warehouse.db'}"
    engine = create_warehouse_engine(url, search_path=args.search_path)
    if upgrade:
        migrate(engine)
    return url, engine


def _upgrade(args) -> int:
    url, engine = _engine(args, upgrade=False)
    before = migrate(engine)
    if args.grants:
        grant_analyst(engine)
    print(f"warehouse {describe_url(url)}: schema version {SCHEMA_VERSION}"
          + ("" if before == SCHEMA_VERSION else f" (was {before or 'empty'})"))
    return 0


def _delete_tenant(args) -> int:
    _, engine = _engine(args)
    try:
        tenants = load_tenants(args.tenants)
    except TenantFileError as exc:
        print(f"tenant delete: {exc}", file=sys.stderr)
        return 2
    control = None
    if args.airflow == "auto":
        from operators.airflow_control import airflow_control

        control = airflow_control()
    try:
        report = delete_integration(engine, args.tenant, confirm=args.confirm, deleted_by=args.by or "",
                                    control=control, tenants=tenants)
    except DeletionRefused as exc:
        print(f"tenant delete: {exc}", file=sys.stderr)
        return 2
    counts = report.counts
    print(f"deleted tenant {args.tenant}: {sum(counts.values())} rows "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}); audit row {report.deletion_id} written")
    for action in report.actions:
        print(f"  {action}")
    return 0


def _tenant_pools(args) -> int:
    try:
        tenants = load_tenants(args.tenants)
    except TenantFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    for tenant in tenants.enabled:
        print(f"{tenant.pool}\t{tenant.pool_slots}\tCode42 pages tenant {tenant.name} may fetch at once "
              f"(connection {tenant.code42_conn_id})")
    return 0


def _report(args) -> int:
    from securitycoach.html_report import ReportError, write_tenant_report

    _, engine = _engine(args, upgrade=False)
    try:
        check_schema(engine)
    except SchemaNotCurrent as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    try:
        path = write_tenant_report(engine, args.tenant, args.start, args.end, out=args.out)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _when(value: str, what: str) -> datetime:
    """A day (its midnight, UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        when = datetime.combine(date.fromisoformat(value), datetime.min.time()) if len(value) == 10 \
            else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a day (YYYY-MM-DD) or an ISO 8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _verify(args) -> int:
    from securitycoach import verify

    try:
        tenants = load_tenants(args.tenants)
        entry = next((t for t in tenants.tenants if t.name == args.tenant), None)
        if entry is None:
            raise ValueError(f"no entry {args.tenant!r} in the tenants file "
                             f"(entries: {', '.join(t.name for t in tenants.tenants)})")
        since = _when(args.since, "--since")
        until = _when(args.until, "--until") if args.until else verify.last_tick(entry.schedule, datetime.now(UTC))
        windows = verify.schedule_windows(entry.schedule, since, until)
    except (TenantFileError, ValueError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    from code42_hook import Code42Error, connect  # the client comes from Airflow's connections

    _, engine = _engine(args)
    try:
        client = connect(entry.code42_conn_id)
        tenant_id = client.tenant_id
        found = verify.find_gaps(engine, client, tenant_id, windows)
        _print_gaps(found, entry.name, tenant_id, windows, entry.schedule)
        if not (args.repair and found.gaps):
            return 1 if found.gaps else 0
        changed = verify.repair(engine, client, tenant_id, found.gaps)
        after = verify.find_gaps(engine, client, tenant_id, windows)
    except Code42Error as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    print(f"repaired {len(found.gaps)} windows: {changed} rows new or changed; recounted:")
    _print_gaps(after, entry.name, tenant_id, windows, entry.schedule)
    return 1 if after.gaps else 0


def _print_gaps(found, entry: str, tenant_id: str, windows, schedule: str) -> None:
    if found.gaps:
        print(f"{'stream':<9}{'window':<38}{'API total':>10}{'warehouse':>11}")
        for gap in found.gaps:
            print(f"{gap.stream:<9}{gap.span():<38}{gap.api_total:>10}{gap.rows:>11}")
    span = f"{windows[0][0]:%Y-%m-%dT%H:%MZ} .. {windows[-1][1]:%Y-%m-%dT%H:%MZ}"
    verdict = (f"{len(found.gaps)} windows with gaps, {found.missing} rows missing" if found.gaps else "no gaps")
    print(f"verify {entry} (tenant {tenant_id}) {span}: {found.windows} windows of '{schedule}', sessions and "
          f"alerts: {verdict} ({found.requests} Code42 requests)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.area == "report":
        return _report(args)
    if args.area == "verify":
        return _verify(args)
    if args.area == "warehouse":
        return _upgrade(args)
    if args.area == "tenant":
        return _tenant_pools(args) if args.command == "pools" else _delete_tenant(args)
    try:
        ruleset = load_rules(getattr(args, "rules", None) or mapping_rules_path())
    except RuleFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "check-rules":
        print(f"{len(ruleset.rules)} rules, {len(ruleset.enabled)} enabled: OK")
        return 0
    url, engine = _engine(args)
    if args.command == "upload":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            print(f"{args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        result = apply_upload(engine, args.tenant, data, file_name=args.file.name, uploaded_by=args.by)
        if result.status != "applied":
            print(f"{args.file}: rejected, nothing applied ({len(result.errors)} problems):", file=sys.stderr)
            for error in result.errors:
                print(f"  {error}", file=sys.stderr)
            return 1
        print(f"{args.file}: applied {result.rows} rows (upload {result.upload_id}) to {describe_url(url)}")
    summary = remap(engine, args.tenant, ruleset)
    print(f"mapping: {summary['mapped']} mapped, {summary['ambiguous']} ambiguous, {summary['no_match']} without "
          f"a KSAT user, {summary['changed']} rows changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

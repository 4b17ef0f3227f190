"""securitycoach: the pipeline's commands that run without a scheduler.

  securitycoach mapping check-rules [RULES]
  securitycoach mapping upload FILE --tenant TENANT [--by NAME]
  securitycoach mapping run --tenant TENANT [--rules RULES]
  securitycoach tenant delete --tenant TENANT --confirm TENANT [--by NAME]
  securitycoach tenant pools [--tenants FILE]
  securitycoach report --tenant TENANT [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--out PATH]
  securitycoach verify --tenant ENTRY --since DAY [--until DAY] [--repair] [--tenants FILE]
  securitycoach warehouse upgrade [--grants]

The warehouse is --warehouse URL (a SQLAlchemy URL), else $SECURITYCOACH_WAREHOUSE_URL, else the
embedded SQLite warehouse (data/warehouse.db); --warehouse and --search-path go before or after the
command. Only "warehouse upgrade" creates a warehouse: every other command refuses one that does
not exist (a SQLite file that is not there, a PostgreSQL schema that is not there) and a tenant the
warehouse holds no rows of. "report" only reads: it also refuses a warehouse that is not at this
code's schema; the commands that write bring it up to date themselves. "verify" reads the Code42
API through the entry's Airflow connection (it runs where Airflow's connections are: a scheduler
or worker host).

Exit status: 0 done; 1 failed while running (e.g. the database is unreachable); 2 bad usage or
input (the message says which).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import sqlalchemy as sa

from securitycoach.mapping.rules import RuleFileError, load_rules
from securitycoach.mapping.store import apply_upload, remap
from securitycoach.paths import data_dir, mapping_rules_path
from securitycoach.tenancy import DeletionRefused, UnknownTenant, delete_integration, require_tenant
from securitycoach.tenants import TenantFileError, load_tenants
from securitycoach.warehouse import (
    SCHEMA_VERSION,
    WarehouseMissing,
    create_warehouse_engine,
    describe_url,
    migrate,
    open_existing_warehouse,
)
from securitycoach.warehouse.migrate import SchemaNotCurrent, check_schema, grant_analyst

DISTRIBUTION = "incydr-securitycoach"  # the name in pyproject.toml, for --version


class UsageError(Exception):
    """Bad usage or input: exit status 2, the message on one line."""


class CommandFailed(Exception):
    """The command ran and could not finish: exit status 1, the message on one line."""


def project_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown (not installed)"


# Options every command accepts, before or after its name (each parser of the tree gets them).
GLOBAL_OPTIONS = (
    (("--warehouse",), {"metavar": "URL", "help": "SQLAlchemy URL of the warehouse (default: "
                        "$SECURITYCOACH_WAREHOUSE_URL, else the embedded SQLite warehouse data/warehouse.db)"}),
    (("--search-path",), {"metavar": "SCHEMA", "help": "PostgreSQL schema of the warehouse (default: the "
                          "database's search path)"}),
)


class _Parser(argparse.ArgumentParser):
    """Every parser of the command tree (subcommands are made with this class too) takes the global
    options, and reports a usage error in one line."""

    def __init__(self, *args, top: bool = False, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        group = self.add_argument_group("global options (before or after the command)")
        for flags, options in GLOBAL_OPTIONS:
            # below the top, an option not given must not hide the value given before the command
            group.add_argument(*flags, **options, default=None if top else argparse.SUPPRESS)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name: str, run, text: str) -> _Parser:
    """A command ``name`` (its help line is also its --help description) that ``run(args)`` runs."""
    parser = sub.add_parser(name, help=text, description=text)
    parser.set_defaults(run=run, prog=parser.prog)
    return parser


def _group(sub, name: str, text: str):
    return sub.add_parser(name, help=text, description=text).add_subparsers(
        dest="command", required=True, metavar="COMMAND")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="securitycoach", description=__doc__, top=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {project_version()}",
                        help="print the version of the installed project and exit")
    sub = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")
    tenant_help = "the Code42 tenant id (the warehouse's tenant_id)"
    rules_help = "mapping rule file (default include/config/mapping_rules.yaml)"
    tenants_help = "tenants file (default include/config/tenants.yaml)"

    mapping = _group(sub, "mapping", "user mapping: Code42 actors to KnowBe4 KSAT users")
    check = _command(mapping, "check-rules", _check_rules, "validate a mapping rule file")
    check.add_argument("rules", nargs="?", type=Path, metavar="RULES", help=rules_help)
    upload = _command(mapping, "upload", _mapping, "apply a code42_identifier,ksat_email CSV, then re-map")
    upload.add_argument("file", type=Path, metavar="FILE", help="the CSV file (header code42_identifier,ksat_email)")
    upload.add_argument("--tenant", required=True, help=tenant_help)
    upload.add_argument("--by", default=os.environ.get("USER"), metavar="NAME", help="who uploads (audited; default $USER)")
    upload.add_argument("--rules", type=Path, help=rules_help)
    run = _command(mapping, "run", _mapping, "re-map every actor of a tenant")
    run.add_argument("--tenant", required=True, help=tenant_help)
    run.add_argument("--rules", type=Path, help=rules_help)

    tenant = _group(sub, "tenant", "the tenants in the warehouse and the tenants file")
    delete = _command(tenant, "delete", _delete_tenant, "delete every row of one tenant (Delete Integration)")
    delete.add_argument("--tenant", required=True, help=tenant_help)
    delete.add_argument("--confirm", required=True, metavar="TENANT", help="the tenant id again, to confirm")
    delete.add_argument("--by", default=os.environ.get("USER"), metavar="NAME", help="who deletes (audited; default $USER)")
    delete.add_argument("--airflow", choices=("auto", "none"), default="auto",
                        help="auto: then pause the tenant's DAGs and remove its connections (Airflow REST API "
                             "if the connection securitycoach_airflow_api is defined, else the metadata DB); "
                             "none: only delete the rows and list what is left to do")
    delete.add_argument("--tenants", type=Path, metavar="FILE", help=tenants_help)
    pools = _command(tenant, "pools", _tenant_pools, "print the Airflow pools of the tenants file (pool, slots, "
                                                     "description; tab-separated), for docker/init.sh")
    pools.add_argument("--tenants", type=Path, metavar="FILE", help=tenants_help)

    report = _command(sub, "report", _report, "write the tenant's HTML report (self-contained, charts inline); "
                                              "prints the file's path")
    report.add_argument("--tenant", required=True, help=tenant_help)
    report.add_argument("--start", metavar="YYYY-MM-DD", help="first day (default: 30 days before the end)")
    report.add_argument("--end", metavar="YYYY-MM-DD", help="last day (default: the tenant's latest day with data)")
    report.add_argument("--out", type=Path, metavar="PATH",
                        help="file to write (default data/reports/securitycoach_<tenant>_<start>_<end>.html)")

    verify = _command(sub, "verify", _verify, "recount a tenant's past windows against the Code42 API's totalCount; "
                      "list the windows the warehouse holds fewer rows of (exit 1), --repair them")
    verify.add_argument("--tenant", required=True, metavar="ENTRY",
                        help="the tenants-file entry (its connection and schedule)")
    verify.add_argument("--since", required=True, metavar="DAY", help="first day, YYYY-MM-DD (or an ISO 8601 time, UTC)")
    verify.add_argument("--until", metavar="DAY", help="end, not included: YYYY-MM-DD or an ISO 8601 time (default: "
                                                       "the end of the schedule's last whole interval)")
    verify.add_argument("--repair", action="store_true",
                        help="re-extract and load the windows with gaps, then recount them")
    verify.add_argument("--tenants", type=Path, metavar="FILE", help=tenants_help)

    warehouse = _group(sub, "warehouse", "the warehouse schema")
    upgrade = _command(warehouse, "upgrade", _upgrade, "create or upgrade the warehouse schema (what the "
                                                       "ensure_schema task does)")
    upgrade.add_argument("--grants", action="store_true",
                         help="PostgreSQL: renew the analyst role's grants even when the schema was current")
    return parser


def _url(args) -> str:
    return args.warehouse or os.environ.get("SECURITYCOACH_WAREHOUSE_URL") or f"sqlite:///{data_dir() / 'warehouse.db'}"


def _engine(args, mode: str):
    """The warehouse's engine. ``mode`` ``read``: it must exist and be at this code's schema;
    ``write``: it must exist, and is brought to this code's schema; ``create``: may be new."""
    url = _url(args)
    if mode == "create":
        return create_warehouse_engine(url, search_path=args.search_path)
    try:
        engine = open_existing_warehouse(url, search_path=args.search_path)
        if mode == "read":
            check_schema(engine)
        else:
            migrate(engine)
    except (WarehouseMissing, SchemaNotCurrent) as exc:
        raise UsageError(str(exc) if isinstance(exc, WarehouseMissing) else f"{describe_url(url)}: {exc}") from None
    return engine


def _tenant_engine(args, mode: str):
    """The warehouse (as ``_engine``), refusing a ``--tenant`` it holds no rows of."""
    engine = _engine(args, mode)
    try:
        require_tenant(engine, args.tenant)
    except UnknownTenant as exc:
        raise UsageError(f"{describe_url(_url(args))}: {exc}") from None
    return engine


def _upgrade(args) -> int:
    engine = _engine(args, "create")
    before = migrate(engine)
    if args.grants:
        grant_analyst(engine)
    print(f"warehouse {describe_url(_url(args))}: schema version {SCHEMA_VERSION}"
          + ("" if before == SCHEMA_VERSION else f" (was {before or 'empty'})"))
    return 0


def _delete_tenant(args) -> int:
    tenants = load_tenants(args.tenants)
    engine = _engine(args, "write")
    control = None
    if args.airflow == "auto":
        from operators.airflow_control import airflow_control

        control = airflow_control()
    report = delete_integration(engine, args.tenant, confirm=args.confirm, deleted_by=args.by or "",
                                control=control, tenants=tenants)
    counts = report.counts
    print(f"deleted tenant {args.tenant}: {sum(counts.values())} rows "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}); audit row {report.deletion_id} written")
    for action in report.actions:
        print(f"  {action}")
    return 0


def _tenant_pools(args) -> int:
    for tenant in load_tenants(args.tenants).enabled:
        print(f"{tenant.pool}\t{tenant.pool_slots}\tCode42 pages tenant {tenant.name} may fetch at once "
              f"(connection {tenant.code42_conn_id})")
    return 0


def _report(args) -> int:
    from securitycoach.html_report import write_tenant_report

    engine = _tenant_engine(args, "read")
    print(write_tenant_report(engine, args.tenant, args.start, args.end, out=args.out))
    return 0


def _check_rules(args) -> int:
    ruleset = load_rules(args.rules or mapping_rules_path())
    print(f"{len(ruleset.rules)} rules, {len(ruleset.enabled)} enabled: OK")
    return 0


def _mapping(args) -> int:
    ruleset = load_rules(args.rules or mapping_rules_path())
    if args.command == "upload":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"{args.file}: {exc.strerror}") from None
    engine = _tenant_engine(args, "write")
    if args.command == "upload":
        result = apply_upload(engine, args.tenant, data, file_name=args.file.name, uploaded_by=args.by)
        if result.status != "applied":
            print(f"{args.file}: rejected, nothing applied ({len(result.errors)} problems):", file=sys.stderr)
            for error in result.errors:
                print(f"  {error}", file=sys.stderr)
            return 1
        print(f"{args.file}: applied {result.rows} rows (upload {result.upload_id}) to {describe_url(_url(args))}")
    summary = remap(engine, args.tenant, ruleset)
    print(f"mapping: {summary['mapped']} mapped, {summary['ambiguous']} ambiguous, {summary['no_match']} without "
          f"a KSAT user, {summary['changed']} rows changed")
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

    tenants = load_tenants(args.tenants)
    entry = next((t for t in tenants.tenants if t.name == args.tenant), None)
    if entry is None:
        raise UsageError(f"no entry {args.tenant!r} in the tenants file "
                         f"(entries: {', '.join(t.name for t in tenants.tenants)})")
    since = _when(args.since, "--since")
    until = _when(args.until, "--until") if args.until else verify.last_tick(entry.schedule, datetime.now(UTC))
    windows = verify.schedule_windows(entry.schedule, since, until)
    from code42_hook import Code42Error, connect  # the client comes from Airflow's connections
    from securitycoach.sync import TenantMismatch, verify_tenant

    try:
        client = connect(entry.code42_conn_id)
        tenant_id = verify_tenant(client, entry.code42_tenant_uid, entry=entry.name, conn_id=entry.code42_conn_id)
        engine = _engine(args, "write" if args.repair else "read")
        found = verify.find_gaps(engine, client, tenant_id, windows)
        _print_gaps(found, entry.name, tenant_id, windows, entry.schedule)
        if not (args.repair and found.gaps):
            return 1 if found.gaps else 0
        changed = verify.repair(engine, client, tenant_id, found.gaps)
        after = verify.find_gaps(engine, client, tenant_id, windows)
    except (Code42Error, TenantMismatch) as exc:
        raise UsageError(str(exc)) from None
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


# Errors in what the user gave (files, ids, the warehouse URL): exit status 2.
INPUT_ERRORS = (UsageError, RuleFileError, TenantFileError, DeletionRefused, sa.exc.ArgumentError, ValueError)


def _first_line(exc: BaseException) -> str:
    """The error's first line; for a database error the driver's message only (SQLAlchemy's text
    adds the statement and its parameters, which may hold people's names)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error ends as one line on stderr and exit status 1 or 2."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except INPUT_ERRORS as exc:
        print(f"{args.prog}: {_first_line(exc)}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as exc:
        print(f"{args.prog}: warehouse {describe_url(_url(args))}: {type(getattr(exc, 'orig', None) or exc).__name__}: "
              f"{_first_line(exc)}", file=sys.stderr)
        return 1
    except (CommandFailed, OSError) as exc:
        print(f"{args.prog}: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("SECURITYCOACH_TRACEBACK"):
            raise
        print(f"{args.prog}: unexpected {type(exc).__name__}: {_first_line(exc)} (set SECURITYCOACH_TRACEBACK=1 "
              "for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

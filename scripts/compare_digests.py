"""Table digests of the demo warehouse built on a pinned sandbox: proof that a refactoring kept the data.

Starts the local sandbox (seed 42, anchor pinned), builds a SQLite warehouse through the core (the
functions the DAG tasks call): the reference step (alert rules, actors, KSAT directory, user mapping)
once, then the hourly sync intervals of the last ``--hours`` hours before the anchor (extract with
the default 24 h look-back, load, new actors, audit row, user mapping, detection at the interval's
end), and prints one digest per warehouse table: sha256 over its rows, sorted, without the columns
listed in ``WALL_CLOCK`` (they hold when this process ran, not what the data is).

Run it on two trees and compare (``--json`` writes ``{table: [rows, sha256]}``)::

    PYTHONPATH=/path/to/old/plugins:/path/to/old/sandbox python scripts/compare_digests.py --json old.json
    python scripts/compare_digests.py --json new.json --compare old.json

On a tree without ``sync.Interval`` (before the interval runner) the same steps are called one by one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "2026-11-01T00:00:00Z"
SEED = 42
LOOKBACK_HOURS = 24  # the shipped tenants.yaml's lookback_hours
DAG_ID = "code42_sync"

# Columns left out of the digests: each holds the wall-clock time of this process's run (or how long
# a step took), so two runs over the same data differ there and nowhere else. The schema marks most
# of them (``info={"wall_clock": True}``); those it does not are added here.
WALL_CLOCK = {
    "sync_audit": {"finished_at", "seconds"},          # when the run ended, how long its steps took
    "user_mapping": {"mapped_at"},                     # when remap wrote the mapping
    "mapping_upload": {"uploaded_at"},
    "schema_version": {"applied_at", "migrated_at", "updated_at"},
}


def _paths() -> None:
    for sub in ("plugins", "sandbox"):
        path = str(ROOT / sub)
        if path not in sys.path and not any(p.rstrip("/").endswith(f"/{sub}") for p in sys.path):
            sys.path.append(path)


def _normal(value):
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def digests(engine) -> dict[str, tuple[int, str]]:
    import sqlalchemy as sa

    from securitycoach.warehouse import schema as t

    out = {}
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            skip = WALL_CLOCK.get(table.name, set()) | {c.name for c in table.columns if c.info.get("wall_clock")}
            columns = [c for c in table.columns if c.name not in skip]
            rows = sorted(json.dumps({k: _normal(v) for k, v in row.items()}, sort_keys=True, default=str)
                          for row in conn.execute(sa.select(*columns)).mappings())
            digest = hashlib.sha256()
            for row in rows:
                digest.update(row.encode() + b"\n")
            out[table.name] = (len(rows), digest.hexdigest())
    return out


def _interval(sync, code42, engine, tenant: str, end: datetime) -> None:
    """One hourly run's sync tasks: through ``sync.Interval`` where it exists, else step by step (the
    tasks of the tree before it, each extract with its own hook as each task has)."""
    from code42_hook import Code42Hook

    start, run_id = end - timedelta(hours=1), f"scheduled__{end.isoformat()}"
    if hasattr(sync, "Interval"):
        interval = sync.Interval(tenant_id=tenant, run_key=run_id, start=start, end=end,
                                 lookback_hours=LOOKBACK_HOURS)
        interval.run(engine, code42, dag_id=DAG_ID)
        return
    from securitycoach.streams import STREAMS

    row = sync.AuditRow(tenant_id=tenant, dag_id=DAG_ID, run_id=run_id, interval_start=start, interval_end=end,
                        sessions_from=start - timedelta(hours=LOOKBACK_HOURS))
    for stream, since in (("sessions", row.sessions_from), ("alerts", start)):
        hook = Code42Hook()
        row.items += sync.extract_to_staging(engine, hook, STREAMS[stream], tenant_id=tenant, run_key=run_id,
                                             start=since, end=end)
        for name in ("pages", "requests", "retries", "n_429", "n_5xx"):
            setattr(row, name, getattr(row, name) + getattr(hook.stats, name))
    row.rows_changed = sum(sync.load_staged(engine, STREAMS[s], tenant_id=tenant, run_key=run_id)
                           for s in ("sessions", "alerts"))
    sync.resolve_new_actors(engine, Code42Hook(), tenant_id=tenant)
    sync.write_audit(engine, row)


def build(hours: int, warehouse: Path) -> dict[str, tuple[int, str]]:
    from incydr_sandbox.process import SandboxProcess
    from securitycoach import sync
    from securitycoach.detection.catalog import load_catalog
    from securitycoach.detection.engine import detect
    from securitycoach.mapping.rules import load_rules
    from securitycoach.mapping.store import refresh_ksat_directory, remap
    from securitycoach.paths import detection_rules_path, mapping_rules_path
    from securitycoach.warehouse import create_warehouse_engine, migrate

    with SandboxProcess(seed=SEED, anchor=ANCHOR) as sandbox:
        os.environ.update(sandbox.airflow_connections(rate_limit_per_minute=60000))
        from code42_hook import Code42Hook
        from knowbe4_hook import KnowBe4Hook

        engine = create_warehouse_engine(f"sqlite:///{warehouse}")
        migrate(engine)
        code42, tenant = Code42Hook(), sandbox.tenant_id
        rules, catalog = load_rules(mapping_rules_path()), load_catalog(detection_rules_path())
        # the reference step (code42_reference's refresh tasks and map_users)
        sync.refresh_alert_rules(engine, code42, tenant_id=tenant)
        sync.refresh_actors(engine, code42, tenant_id=tenant)
        refresh_ksat_directory(engine, KnowBe4Hook(), tenant_id=tenant)
        remap(engine, tenant, rules)
        last = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
        for h in range(hours - 1, -1, -1):
            end = last - timedelta(hours=h)
            _interval(sync, code42, engine, tenant, end)
            remap(engine, tenant, rules)  # the sync DAG's map_users and detect tasks
            detect(engine, tenant, catalog, now=end)
        result = digests(engine)
        engine.dispose()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=48, help="hourly intervals before the anchor (default 48)")
    parser.add_argument("--json", type=Path, help="also write the digests here")
    parser.add_argument("--compare", type=Path, help="a --json file of another tree: print both, say what differs")
    args = parser.parse_args(argv)
    if args.hours < 1:
        parser.error(f"--hours must be at least 1, got {args.hours}")
    _paths()
    logging.disable(logging.INFO)  # the steps log per interval; the digests are the output
    with tempfile.TemporaryDirectory(prefix="securitycoach-digests-") as tmp:
        result = build(args.hours, Path(tmp) / "warehouse.db")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    other = json.loads(args.compare.read_text()) if args.compare else None
    differ = []
    for name, (rows, digest) in sorted(result.items()):
        line = f"{name:34} {rows:>7}  {digest[:16]}"
        if other is not None:
            theirs = other.get(name)
            same = theirs is not None and list(theirs) == [rows, digest]
            line += f"   {'same' if same else 'DIFFERS'}" + ("" if same or theirs is None else
                                                            f" (other: {theirs[0]} rows, {theirs[1][:16]})")
            if not same:
                differ.append(name)
        print(line)
    if other is not None:
        only = sorted(set(other) - set(result))
        print(f"{len(result) - len(differ)} of {len(result)} tables equal; differ: {differ or 'none'}"
              + (f"; only in the other: {only}" if only else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

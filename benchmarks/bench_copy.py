"""The PostgreSQL COPY path of ``upsert``: this checkout against another code tree, same rows, one run.

    .venv/bin/python benchmarks/bench_copy.py [--rows 50000] [--repeat 5] [--before REV]

``--before`` (default 07ce4e4, the release with psycopg2 and the hand-written COPY encoder) is taken
from this repository's history with ``git archive``. Each tree runs in its own process, alternately,
on a fresh PostgreSQL schema; the time is one ``upsert`` of all rows into ``code42_alert`` (COPY into
a temporary table + INSERT ... SELECT ... ON CONFLICT) in its own transaction, best and median of
``--repeat``. The tree before runs on ``postgresql+psycopg2`` (its COPY needed psycopg2), this one
on ``postgresql+psycopg``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("SECURITYCOACH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

CHILD = """
import json, sys, time, uuid
from datetime import UTC, datetime, timedelta
import sqlalchemy as sa
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert

url, n = sys.argv[1], int(sys.argv[2])
hostile = ["tab\\there", "new\\nline", "back\\\\slash", "\\\\N", "", "quote ' \\" ;", "\\u00fcn\\u00efc\\u00f8d\\u00e9"]
rows = [{"tenant_id": "t1", "alert_id": f"a{i:07d}", "type": "FED_ENDPOINT_EXFILTRATION",
         "created_at": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i), "state": "OPEN",
         "state_last_modified_by": None, "state_last_modified_at": None, "name": hostile[i % 7],
         "description": None if i % 2 else "a description of the alert " * 3, "actor": f"user{i % 500}@example.com",
         "actor_id": f"actor-{i % 500}", "target": None, "severity": "HIGH", "risk_severity": "CRITICAL",
         "rule_id": f"rule-{i % 20}", "watchlists": None if i % 3 else [{"id": "w1", "type": "DEPARTING"}],
         "raw": {"id": f"a{i:07d}", "text": hostile[i % 7], "observations": [{"n": j, "k": [1, None, True]}
                                                                              for j in range(5)]}}
        for i in range(n)]
admin = sa.create_engine(url)
schema = f"bench_{uuid.uuid4().hex[:10]}"
with admin.begin() as conn:
    conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
try:
    engine = create_warehouse_engine(url, search_path=schema)
    migrate(engine)
    with engine.begin() as conn:
        started = time.perf_counter()
        upsert(conn, t.code42_alert, rows)
        seconds = time.perf_counter() - started
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(t.code42_alert)).scalar()
    print(json.dumps({"seconds": seconds, "rows": stored, "driver": engine.dialect.driver}))
    engine.dispose()
finally:
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
"""


def _tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "plugins", "include"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _run(tree: Path, rows: int, url: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "plugins"), "SECURITYCOACH_HOME": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, url, str(rows)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default="07ce4e4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # the release before took COPY only on psycopg2 (on another driver it fell back to executemany)
        before = PG_URL.replace("postgresql+psycopg:", "postgresql+psycopg2:")
        trees = {f"before ({args.before})": (_tree(args.before, Path(tmp)), before), "this checkout": (ROOT, PG_URL)}
        times: dict[str, list[float]] = {name: [] for name in trees}
        drivers = {}
        for _ in range(args.repeat):
            for name, (tree, url) in trees.items():
                result = _run(tree, args.rows, url)
                assert result["rows"] == args.rows, result
                times[name].append(result["seconds"])
                drivers[name] = result["driver"]
    print(f"upsert of {args.rows} code42_alert rows through COPY, {args.repeat} runs each, alternating:")
    for name, values in times.items():
        print(f"  {name:<22} {drivers[name]:<9} best {min(values):6.3f} s  median {statistics.median(values):6.3f} s"
              f"  ({args.rows / min(values):,.0f} rows/s)")


if __name__ == "__main__":
    main()

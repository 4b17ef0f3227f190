"""Benchmark: map N Code42 actors against ~N KSAT users with the shipped rules.

Identities come from the sandbox's generator (the same messy mix as the tests, at scale) and the
result is checked against its ground truth, so speed is never bought with wrong mappings.
Measures, side by side in one run: the decision alone (pure Python) and the full re-map into a
SQLite warehouse (read identities, decide, write), each with its peak RSS.

    .venv/bin/python benchmarks/bench_mapping.py [--actors 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from incydr_sandbox.identities import build_directory
from securitycoach.mapping.engine import ActorIdentity, KsatIdentity, map_actors
from securitycoach.mapping.rules import KSAT_FIELDS, load_rules
from securitycoach.mapping.store import remap
from securitycoach.paths import mapping_rules_path
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert

TENANT = "bench-tenant"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("build/bench/mapping.json"))
    args = parser.parse_args()
    rules = load_rules(mapping_rules_path())

    started = time.perf_counter()
    anchor_ms = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
    directory = build_directory(7, args.actors, anchor_ms, anchor_ms - 30 * 86_400_000)
    users = [directory.ksat_json(u) for u in directory.ksat_users]
    truth = {k: (None if v["ksat_user_id"] == "none" else v["ksat_user_id"])
             for k, v in directory.truth_json().items()}
    actors_raw = [a.api() for a in directory.actors]
    del directory
    generate_s = time.perf_counter() - started
    rss_base = _rss_mb()

    actors = [ActorIdentity(a["actorId"], a["name"], tuple(a["alternateNames"]), a["parentActorId"]) for a in actors_raw]
    ksat = [KsatIdentity(u["id"], u["email"], tuple(u["aliases"]), {f: u[f] for f in KSAT_FIELDS}) for u in users]
    started = time.perf_counter()
    decisions = map_actors(actors, ksat, rules)
    decide_s = time.perf_counter() - started
    rss_decide = _rss_mb()
    wrong = sum(1 for d in decisions if d.ksat_user_id is not None and d.ksat_user_id != truth[d.actor_id])
    missed = sum(1 for d in decisions if d.ksat_user_id is None and truth[d.actor_id] is not None)

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_warehouse_engine(f"sqlite:///{tmp}/wh.db")
        migrate(engine)
        with engine.begin() as conn:
            upsert(conn, t.code42_actor, [{"tenant_id": TENANT, "actor_id": a["actorId"], "name": a["name"],
                                           "alternate_names": a["alternateNames"],
                                           "parent_actor_id": a["parentActorId"], "raw": a} for a in actors_raw])
            upsert(conn, t.ksat_user, [{"tenant_id": TENANT, "ksat_user_id": u["id"], "email": u["email"],
                                        "status": u["status"], "aliases": u["aliases"], "groups": u["groups"],
                                        **{f: u[f] for f in KSAT_FIELDS}, "raw": u} for u in users])
        started = time.perf_counter()
        first = remap(engine, TENANT, rules)
        remap_s = time.perf_counter() - started
        started = time.perf_counter()
        second = remap(engine, TENANT, rules)
        remap_again_s = time.perf_counter() - started
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(t.user_mapping)).scalar()
    summary = {
        "actors": len(actors), "ksat_users": len(ksat), "generate_s": round(generate_s, 2),
        "decide_s": round(decide_s, 2), "decide_rss_mb": round(rss_decide, 1),
        "rss_before_decide_mb": round(rss_base, 1), "remap_sqlite_s": round(remap_s, 2),
        "remap_again_s": round(remap_again_s, 2), "peak_rss_mb": round(_rss_mb(), 1),
        "mapped": first["mapped"], "ambiguous": first["ambiguous"], "no_match": first["no_match"],
        "user_mapping_rows": rows, "changed_on_second_run": second["changed"],
        "wrong_mappings": wrong, "mappable_but_unmapped": missed,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

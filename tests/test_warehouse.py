"""Warehouse core on SQLite and real PostgreSQL: schema versioning, upserts, atomic batches."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from securitycoach import streams, sync
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import SCHEMA_VERSION, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
TENANT = "tenant-1"


def session_item(sid: str, last_updated: int, *, state="OPEN", score=5, alerts=("a1",), indicators=(("ri-1", 3),)):
    return {
        "sessionId": sid, "tenantId": TENANT, "actorId": "actor-1", "actorName": "ann@example.com",
        "userId": None, "type": "ENDPOINT", "beginTime": T0, "endTime": T0 + 60_000,
        "firstObserved": T0, "lastUpdated": last_updated,
        "noRiskEvents": 0, "lowEvents": 1, "moderateEvents": 2, "highEvents": 0, "criticalEvents": 0,
        "contextSummary": "ctx", "exfiltrationSummary": "exf",
        "riskIndicators": [{"id": i, "name": f"name {i}", "weight": w, "eventCount": 1} for i, w in indicators],
        "scores": [{"score": score, "severity": 2, "sourceTimestamp": last_updated}],
        "states": [{"state": state, "stateV2": state, "sourceTimestamp": last_updated, "userId": None}],
        "triggeredAlerts": [{"alertId": a, "ruleId": "r1", "ruleName": "Rule", "lessonId": None} for a in alerts],
        "notes": [], "contentInspectionResults": None,
    }


def test_migrate_is_versioned_and_idempotent(warehouse):
    assert migrate(warehouse) == SCHEMA_VERSION  # already current: reports the version it found
    with warehouse.connect() as conn:
        versions = conn.execute(sa.select(t.schema_version.c.version)).scalars().all()
    assert versions == [SCHEMA_VERSION]
    assert set(sa.inspect(warehouse).get_table_names()) >= {tbl.name for tbl in t.metadata.sorted_tables}


def test_migrate_refuses_a_newer_schema(warehouse):
    with warehouse.begin() as conn:  # what a newer release's upgrade leaves: its revision, its history row
        conn.execute(t.schema_version.insert().values(version=SCHEMA_VERSION + 1, description="future",
                                                      applied_at=datetime.now(UTC)))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": f"{SCHEMA_VERSION + 1:04d}"})
    with pytest.raises(RuntimeError, match="newer than this code"):
        migrate(warehouse)


def _session(conn, sid):
    return conn.execute(sa.select(t.code42_session).where(t.code42_session.c.session_id == sid)).mappings().one()


def test_session_updates_only_when_last_updated_is_newer(warehouse):
    first = session_item("s1", T0 + 1000, state="OPEN", alerts=("a1",))
    newer = session_item("s1", T0 + 2000, state="CLOSED_TP", alerts=("a1", "a2"), indicators=(("ri-2", 4),))
    stale = session_item("s1", T0 + 1500, state="CLOSED_FP", alerts=())
    with warehouse.begin() as conn:
        assert streams.load_sessions(conn, TENANT, [first]) == 1
        assert streams.load_sessions(conn, TENANT, [newer]) == 1
        assert streams.load_sessions(conn, TENANT, [stale]) == 0
        assert streams.load_sessions(conn, TENANT, [copy.deepcopy(newer)]) == 0
        row = _session(conn, "s1")
        alerts = conn.execute(sa.select(t.code42_session_alert.c.alert_id).order_by("alert_id")).scalars().all()
        indicators = conn.execute(sa.select(t.code42_session_risk_indicator.c.indicator_id)).scalars().all()
    assert row["state"] == "CLOSED_TP"
    assert as_utc(row["last_updated"]) == datetime.fromtimestamp((T0 + 2000) / 1000, tz=UTC)
    assert row["raw"]["states"][0]["state"] == "CLOSED_TP"
    assert alerts == ["a1", "a2"]
    assert indicators == ["ri-2"]  # children replaced with the session, not accumulated


def test_same_data_gives_same_digest_on_sqlite_and_postgres(sqlite_warehouse, pg_warehouse):
    items = [session_item(f"s{i}", T0 + i) for i in range(25)]
    for engine in (sqlite_warehouse, pg_warehouse):
        with engine.begin() as conn:
            streams.load_sessions(conn, TENANT, items)
    sqlite_digest = table_digests(sqlite_warehouse)
    assert sqlite_digest["code42_session"][0] == 25
    assert sqlite_digest == table_digests(pg_warehouse)


def test_a_failed_batch_leaves_nothing_half_written(warehouse):
    good = session_item("s-good", T0 + 1)
    broken = session_item("s-broken", T0 + 1)
    broken["beginTime"] = None  # passes the transform; the NOT NULL column refuses it at the last write
    with pytest.raises(sa.exc.IntegrityError), warehouse.begin() as conn:
        streams.load_sessions(conn, TENANT, [good, broken])
    digest = table_digests(warehouse)
    # the children were written before the failing session upsert, and rolled back with it
    assert [digest[name][0] for name in ("code42_session", "code42_session_risk_indicator",
                                         "code42_session_alert")] == [0, 0, 0]


def _stage_and_load(engine, run_key, items) -> int:
    with engine.begin() as conn:
        conn.execute(t.staging_record.insert(), [
            {"tenant_id": TENANT, "run_key": run_key, "stream": "sessions", "record_id": item["sessionId"],
             "cursor_value": None, "payload": item} for item in items])
    return sync.load_staged(engine, streams.STREAMS["sessions"], tenant_id=TENANT, run_key=run_key)


def test_staged_load_ignores_an_older_or_equal_last_updated(warehouse):
    """Through load_staged: on PostgreSQL the in-database load (built from the field maps), on SQLite
    the Python path. A staged copy whose lastUpdated is not newer changes nothing: not the session, not its
    alerts or risk indicators, and it is not queued for detection again."""
    current = session_item("s1", T0 + 2000, state="CLOSED_TP", alerts=("a1", "a2"), indicators=(("ri-2", 4),))
    assert _stage_and_load(warehouse, "first", [current, session_item("s2", T0 + 2000)]) == 2
    with warehouse.begin() as conn:
        conn.execute(t.detection_queue.delete())
    before = table_digests(warehouse)
    older = session_item("s1", T0 + 1500, state="CLOSED_FP", alerts=("a9",), indicators=(("ri-9", 9),))
    equal = session_item("s2", T0 + 2000, state="CLOSED_FP", alerts=("a8",), indicators=(("ri-8", 8),))
    assert _stage_and_load(warehouse, "second", [older, equal]) == 0
    assert table_digests(warehouse) == before
    with warehouse.connect() as conn:
        assert conn.execute(sa.select(t.detection_queue)).all() == []
        alerts = conn.execute(sa.select(t.code42_session_alert.c.session_id, t.code42_session_alert.c.alert_id)
                              .order_by("session_id", "alert_id")).all()
        assert [tuple(a) for a in alerts] == [("s1", "a1"), ("s1", "a2"), ("s2", "a1")]
        assert _session(conn, "s1")["state"] == "CLOSED_TP"
    newer = session_item("s1", T0 + 2001, state="CLOSED_FP", alerts=("a9",))
    assert _stage_and_load(warehouse, "third", [newer]) == 1
    with warehouse.connect() as conn:
        assert _session(conn, "s1")["state"] == "CLOSED_FP"
        assert conn.execute(sa.select(t.detection_queue.c.subject_id)).scalars().all() == ["s1"]

"""The declared field maps (securitycoach.fieldmap, declared in warehouse/schema.py): the Python row
builder (the SQLite load) and the PostgreSQL in-database projection are generated from the same
declaration and must give the same rows, for the sandbox's pages and for awkward items."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pipeline import use_sandbox

from securitycoach import sync
from securitycoach.streams import STREAMS
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import _normal

LOADED = (t.code42_session, t.code42_session_risk_indicator, t.code42_session_alert, t.code42_alert,
          t.detection_queue)


def _rows(engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [{k: _normal(v) for k, v in row.items()} for row in
                conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()]


def _stage(engine, tenant: str, run_key: str, stream: str, items: list[dict]) -> None:
    with engine.begin() as conn:
        conn.execute(t.staging_record.insert(), [
            {"tenant_id": tenant, "run_key": run_key, "stream": stream, "record_id": STREAMS[stream].record_id(i),
             "cursor_value": None, "payload": i} for i in items])


def _load(engine, tenant: str, run_key: str, stream: str, *, in_database: bool) -> int:
    """One stream's staged items through one path (``load_staged`` picks by dialect; here chosen)."""
    load = sync._load_staged_in_postgresql if in_database else sync._load_staged_in_python
    return load(engine, STREAMS[stream], tenant, run_key, 1000)


@pytest.fixture
def pg_pair(pg_admin_engine):
    """Two PostgreSQL warehouses (schemas of their own), dropped afterwards."""
    engines, names = [], [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        with pg_admin_engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        engines.append(create_warehouse_engine(pg_admin_engine.url.render_as_string(hide_password=False), search_path=name))
        migrate(engines[-1])
    yield engines
    for engine, name in zip(engines, names, strict=True):
        engine.dispose()
        with pg_admin_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


def _sandbox_pages(sandbox, monkeypatch) -> tuple[str, dict[str, list[dict]]]:
    code42, _ = use_sandbox(monkeypatch, sandbox)
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=5)
    return code42.tenant_id, {"sessions": list(STREAMS["sessions"].fetch(code42, start, end)),
                              "alerts": list(STREAMS["alerts"].fetch(code42, start, end))}


def test_python_rows_and_postgresql_projection_agree_on_the_sandbox_pages(sandbox, monkeypatch, pg_pair,
                                                                         sqlite_warehouse):
    """The same pages, loaded by the Python row builder (on SQLite and on PostgreSQL) and by the
    in-database projection: every column of every row is the same, and the rows say what the
    payloads say (checked here against the items themselves for the derived columns)."""
    sandbox.reset()
    tenant, pages = _sandbox_pages(sandbox, monkeypatch)
    assert len(pages["sessions"]) > 100 and len(pages["alerts"]) > 20
    in_db, in_python = pg_pair
    counts = {}
    for engine, in_database in ((in_db, True), (in_python, False), (sqlite_warehouse, False)):
        for stream, items in pages.items():
            _stage(engine, tenant, "r1", stream, items)
            counts[engine, stream] = _load(engine, tenant, "r1", stream, in_database=in_database)
    for stream, items in pages.items():
        assert {counts[e, stream] for e in (in_db, in_python, sqlite_warehouse)} == {len(items)}
    for table in LOADED:
        expected = _rows(in_python, table)
        assert expected, table.name
        assert _rows(in_db, table) == expected, table.name
        assert _rows(sqlite_warehouse, table) == expected, table.name
    # the derived columns, read straight from the payloads
    sessions = {r["session_id"]: r for r in _rows(in_db, t.code42_session)}
    for item in pages["sessions"]:
        row = sessions[item["sessionId"]]
        score = max(item["scores"], key=lambda s: s["sourceTimestamp"]) if item["scores"] else {}
        state = max(item["states"], key=lambda s: s["sourceTimestamp"]) if item["states"] else {}
        assert (row["risk_score"], row["severity"]) == (score.get("score"), score.get("severity"))
        assert row["state"] == (state.get("stateV2") or state.get("state"))
        assert row["last_updated"] == datetime.fromtimestamp(item["lastUpdated"] / 1000, UTC).isoformat()
        assert row["raw"] == item


T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def _awkward_sessions() -> list[dict]:
    base = {"sessionId": "s-0", "tenantId": "x", "actorId": "a", "actorName": "n", "userId": None, "type": "ENDPOINT",
            "beginTime": T0, "endTime": None, "firstObserved": T0 + 1, "lastUpdated": T0 + 5,
            "noRiskEvents": 1, "lowEvents": None, "moderateEvents": 0, "highEvents": 2, "criticalEvents": 0,
            "contextSummary": "tab\there", "exfiltrationSummary": None, "riskIndicators": [], "scores": [],
            "states": [], "triggeredAlerts": [], "notes": None, "contentInspectionResults": None}
    items = []
    def add(**change):
        item = copy.deepcopy(base)
        item.update(change, sessionId=f"s-{len(items)}")
        items.append(item)
    add()  # no scores, states, indicators or alerts
    add(scores=[{"score": 3, "severity": 1, "sourceTimestamp": T0}, {"score": 7, "severity": 3, "sourceTimestamp": T0}])
    add(scores=[{"score": 1, "severity": 1, "sourceTimestamp": None}, {"score": 2, "severity": 1}])
    add(states=[{"state": "OPEN", "stateV2": None, "sourceTimestamp": T0 + 9},
                {"state": "CLOSED", "stateV2": "CLOSED_TP", "sourceTimestamp": T0}])
    add(riskIndicators=[{"id": "r1", "name": "first", "weight": 1, "eventCount": 1},
                        {"id": "r1", "name": "second", "weight": 2, "eventCount": 2},
                        {"id": 7, "name": "numeric id", "weight": 3.0, "eventCount": None}])
    add(riskIndicators={"not": "a list"}, triggeredAlerts=None, scores=None, states=None)
    add(triggeredAlerts=[{"alertId": "x", "ruleId": "r", "ruleName": "R", "lessonId": None},
                         {"alertId": "x", "ruleId": "r2", "ruleName": "R2", "lessonId": "l"}])
    del items[-1]["userId"]  # an absent key reads as null
    add(actorName="ünïcode ✓ name", lastUpdated=T0 + 123_456_789)
    return items


def _awkward_alerts() -> list[dict]:
    base = {"tenantId": "x", "type": "FED_ENDPOINT_EXFILTRATION", "createdAt": "2026-11-01T00:00:00.123Z",
            "state": "OPEN", "stateLastModifiedBy": None, "stateLastModifiedAt": None, "name": "n",
            "description": None, "actor": "a@example.com", "actorId": "a", "target": None, "severity": "HIGH",
            "riskSeverity": "LOW", "ruleId": "r", "watchlists": [{"type": "DEPARTING_EMPLOYEE"}]}
    changes = [{}, {"createdAt": "2026-11-01T02:00:00+02:00"}, {"createdAt": "2026-11-01T00:00:00"},
               {"stateLastModifiedAt": ""}, {"stateLastModifiedAt": "2026-11-02T10:11:12.5Z"},
               {"watchlists": None}, {"watchlists": []}]
    items = [{**base, **change, "id": f"al-{n}"} for n, change in enumerate(changes)]
    del items[-1]["watchlists"]
    return items


def test_both_paths_agree_on_awkward_items(pg_pair, sqlite_warehouse):
    """Ties in sourceTimestamp (the first listed wins), missing timestamps, stateV2 null, repeated
    child ids (the last listed wins), arrays that are not arrays, ISO times with an offset, without
    one (UTC) and empty, absent keys: the same rows from both paths, on both dialects."""
    in_db, in_python = pg_pair
    pages = {"sessions": _awkward_sessions(), "alerts": _awkward_alerts()}
    for engine, in_database in ((in_db, True), (in_python, False), (sqlite_warehouse, False)):
        for stream, items in pages.items():
            _stage(engine, "tenant", "r1", stream, items)
            assert _load(engine, "tenant", "r1", stream, in_database=in_database) == len(items)
    for table in LOADED:
        expected = _rows(in_python, table)
        assert _rows(in_db, table) == expected, table.name
        assert _rows(sqlite_warehouse, table) == expected, table.name
    with in_db.connect() as conn:
        s = {r.session_id: r for r in conn.execute(sa.select(t.code42_session))}
        ri = conn.execute(sa.select(t.code42_session_risk_indicator.c.indicator_id,
                                    t.code42_session_risk_indicator.c.name)
                          .order_by("indicator_id")).all()
        al = {r.alert_id: r for r in conn.execute(sa.select(t.code42_alert))}
    assert (s["s-1"].risk_score, s["s-1"].severity) == (3, 1)  # tie: the first listed
    assert s["s-3"].state == "OPEN"  # the latest state; stateV2 null falls back to state
    assert s["s-0"].state is None and s["s-0"].risk_score is None
    assert [tuple(r) for r in ri] == [("7", "numeric id"), ("r1", "second")]
    assert as_utc(al["al-1"].created_at) == as_utc(al["al-2"].created_at) == datetime(2026, 11, 1, tzinfo=UTC)
    assert al["al-3"].state_last_modified_at is None

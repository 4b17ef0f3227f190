"""Detection runs inside the database (rule criteria compiled to SQLAlchemy Core conditions over the
queued subjects). Here a small reference evaluator, written straight against the API payloads the
warehouse kept, says which detections the sandbox tenant must get, with every column; the
database's detections must be exactly those, on SQLite and on PostgreSQL, for the default rules
and for custom rules that use every criterion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline import load_reference, sync_interval, use_sandbox
from test_detection import _catalog_file

from securitycoach.detection.catalog import load_catalog
from securitycoach.detection.engine import detect
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import _normal

CUSTOM_RULES = [
    {"key": "dept-any", "name": "Departments, any case", "kind": "custom", "lesson": {"title": "L"},
     "when": {"departments": ["engineering", "SALES", "rEsEaRcH"], "min_severity": "LOW"}},
    {"key": "dept-none", "name": "No department", "kind": "custom", "lesson": {"title": "L"},
     "when": {"departments": [""]}},
    {"key": "all-of", "name": "All of two indicators", "kind": "custom", "lesson": {"title": "L"},
     "when": {"risk_indicators_all": ["Document", "Removable media"], "max_severity": "HIGH"}},
    {"key": "any-of", "name": "Any of", "kind": "custom", "lesson": {"title": "L"},
     "when": {"risk_indicators_any": ["Spreadsheet", "Zip or compressed file", "not an indicator"],
              "min_event_count": 4}},
    {"key": "terms", "name": "Destination and file categories", "kind": "custom", "lesson": {"title": "L"},
     "when": {"destination_categories": ["Cloud Storage", "Email"], "file_categories": ["Document"]}},
    {"key": "session-watch", "name": "Watchlisted sessions", "kind": "custom", "lesson": {"title": "L"},
     "when": {"watchlists": ["high_impact", "contractor"]}},
    {"key": "alert-watch", "name": "Watchlisted alerts", "kind": "custom", "on": "alert", "lesson": {"title": "L"},
     "when": {"watchlists": ["departing", "high_impact"], "max_severity": "HIGH"}},
    {"key": "alert-by-name", "name": "Alerts by rule name", "kind": "custom", "on": "alert", "lesson": {"title": "L"},
     "when": {"alert_rules": ["Removable media exfiltration", "Public link sharing"], "departments": ["Finance"]}},
    {"key": "alert-severity", "name": "Severe alerts", "kind": "custom", "on": "alert", "lesson": {"title": "L"},
     "when": {"min_severity": "MODERATE"}},
]

SEVERITY = {"NO_RISK": 0, "NO_RISK_INDICATED": 0, "LOW": 1, "MODERATE": 2, "HIGH": 3, "CRITICAL": 4}


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _session_facts(raw: dict, department: str | None, vocabulary) -> dict[str, Any]:
    scores = raw.get("scores") or []
    severity = (max(scores, key=lambda s: s.get("sourceTimestamp") or 0).get("severity") if scores else None) or 0
    names = {i["name"] for i in raw.get("riskIndicators") or [] if i.get("name")}
    meanings = [vocabulary.indicators[n] for n in names if n in vocabulary.indicators]
    terms = {key: {getattr(m, attr) for m in meanings if getattr(m, attr)} for key, attr in (
        ("vectors", "vector"), ("destination_categories", "destination_category"),
        ("file_categories", "file_category"), ("watchlists", "watchlist"))}
    events = sum(raw.get(k) or 0 for k in ("noRiskEvents", "lowEvents", "moderateEvents", "highEvents",
                                            "criticalEvents"))
    evidence = {"severity": severity, **{k: sorted(v) for k, v in {"indicators": names, **terms}.items() if v},
                "event_count": events}
    return {"subject_type": "session", "subject_id": raw["sessionId"], "actor_id": raw.get("actorId"),
            "severity": severity, "occurred_at": _ms(raw.get("endTime") or raw["beginTime"]),
            "subject_version": _ms(raw["lastUpdated"]), "summary": raw.get("exfiltrationSummary"),
            "department": department, "indicators": names, **terms, "event_count": events, "evidence": evidence}


def _alert_facts(raw: dict, department: str | None, rule_name: str | None, vocabulary) -> dict[str, Any]:
    risk = raw.get("riskSeverity")
    severity = SEVERITY.get(risk.strip().upper(), 0) if isinstance(risk, str) else 0
    types = {w.get("type") for w in raw.get("watchlists") or [] if isinstance(w, dict)}
    watchlists = {vocabulary.watchlist_types[x] for x in types if x in vocabulary.watchlist_types}
    name = rule_name or raw.get("name")
    evidence = {"severity": severity, **({"watchlists": sorted(watchlists)} if watchlists else {}),
                "alert_rule": name or raw.get("ruleId")}
    return {"subject_type": "alert", "subject_id": raw["id"], "actor_id": raw.get("actorId"), "severity": severity,
            "occurred_at": _iso(raw["createdAt"]),
            "subject_version": _iso(raw.get("stateLastModifiedAt")) or _iso(raw["createdAt"]),
            "summary": raw.get("name"), "department": department, "watchlists": watchlists,
            "rule_id": raw.get("ruleId"), "rule_name": name, "evidence": evidence}


def _holds(name: str, value: Any, f: dict[str, Any]) -> bool:
    """One criterion, as the README describes it."""
    if name == "min_severity":
        return f["severity"] >= value
    if name == "max_severity":
        return f["severity"] <= value
    if name == "min_event_count":
        return f["event_count"] >= value
    if name == "risk_indicators_any":
        return bool(f["indicators"] & set(value))
    if name == "risk_indicators_all":
        return f["indicators"] >= set(value)
    if name in ("vectors", "destination_categories", "file_categories", "watchlists"):
        return bool(f[name] & set(value))
    if name == "departments":
        return (f["department"] or "").casefold() in {d.casefold() for d in value}
    if name == "alert_rules":
        return f["rule_id"] in value or f["rule_name"] in value
    raise AssertionError(name)


def expected_detections(engine, tenant: str, catalog) -> list[dict[str, Any]]:
    """Every (enabled rule, session or alert) whose criteria all hold, as detection rows."""
    with engine.connect() as conn:
        departments = dict(conn.execute(sa.select(t.code42_actor.c.actor_id, t.code42_actor.c.department)).all())
        alert_rules = [dict(r._mapping) for r in conn.execute(sa.select(
            t.code42_alert_rule.c.rule_id, t.code42_alert_rule.c.name, t.code42_alert_rule.c.description,
            t.code42_alert_rule.c.is_enabled, t.code42_alert_rule.c.lesson_id))]
        sessions = conn.execute(sa.select(t.code42_session.c.raw)).scalars().all()
        alerts = conn.execute(sa.select(t.code42_alert.c.raw)).scalars().all()
    names = {r["rule_id"]: r["name"] for r in alert_rules}
    vocabulary = catalog.vocabulary
    facts = [_session_facts(raw, departments.get(raw.get("actorId")), vocabulary) for raw in sessions]
    facts += [_alert_facts(raw, departments.get(raw.get("actorId")), names.get(raw.get("ruleId")), vocabulary)
              for raw in alerts]
    rows = []
    for rule in catalog.with_alert_rules(alert_rules):
        for f in facts:
            if rule.enabled and rule.subject_type == f["subject_type"] and all(
                    _holds(name, value, f) for name, value in rule.criteria.items()):
                rows.append({"tenant_id": tenant, "rule_key": rule.rule_key,
                             **{k: f[k] for k in ("subject_type", "subject_id", "actor_id", "severity", "occurred_at",
                                                  "subject_version", "summary", "evidence")}})
    return sorted(({k: _normal(v) for k, v in r.items()} for r in rows),
                  key=lambda r: (r["rule_key"], r["subject_type"], r["subject_id"]))


def _stored(engine) -> list[dict[str, Any]]:
    d = t.detection
    columns = [c for c in d.columns if not c.info.get("wall_clock")]
    with engine.connect() as conn:
        return [{k: _normal(v) for k, v in r.items()} for r in conn.execute(
            sa.select(*columns).order_by(d.c.rule_key, d.c.subject_type, d.c.subject_id)).mappings()]


def _requeue(engine) -> None:
    """Every session and alert queued again, no detections: as if loaded for the first time."""
    with engine.begin() as conn:
        conn.execute(t.detection.delete())
        conn.execute(t.detection_queue.delete())
        for table, key, kind in ((t.code42_session, "session_id", "session"), (t.code42_alert, "alert_id", "alert")):
            conn.execute(t.detection_queue.insert().from_select(
                ["tenant_id", "subject_type", "subject_id"],
                sa.select(table.c.tenant_id, sa.literal(kind), table.c[key])))


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_detections_are_what_a_reference_evaluation_of_the_payloads_says(sandbox, monkeypatch, tmp_path, request,
                                                                        dialect):
    engine = request.getfixturevalue("sqlite_warehouse" if dialect == "sqlite" else "pg_warehouse")
    sandbox.reset()
    code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    sync_interval(engine, code42, end, hours=72, lookback=timedelta(0))
    tenant = load_reference(engine, code42, knowbe4)
    catalog = load_catalog(_catalog_file(tmp_path, lambda d: d["rules"].extend(CUSTOM_RULES)))
    expected = expected_detections(engine, tenant, catalog)
    fired = {r["rule_key"] for r in expected}
    # every rule of the file (bar the disabled example) and several Code42 rules fire; none fires on everything
    assert {r["key"] for r in CUSTOM_RULES} <= fired
    assert len([k for k in fired if k.startswith("code42-alert-rule:")]) >= 3
    _requeue(engine)
    result = detect(engine, tenant, catalog, batch_size=97)  # many batches, each a key range of the queue
    assert result.new == len(expected) > 500 and result.updated == 0
    assert _stored(engine) == expected


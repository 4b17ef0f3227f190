"""Raw Code42 API items (as staged) -> warehouse rows. Pure functions, no I/O.

The staged payload is the API's own JSON (camelCase keys, epoch-ms times for sessions, ISO-8601
for alerts and rules), so this module is the one place that maps API fields to columns.
"""

from __future__ import annotations

from typing import Any

from securitycoach.timeutil import from_epoch_ms, from_iso

Row = dict[str, Any]


def _latest(entries: list[dict] | None) -> dict | None:
    """The entry with the greatest ``sourceTimestamp`` (sessions keep histories of scores/states)."""
    if not entries:
        return None
    return max(entries, key=lambda e: e.get("sourceTimestamp") or 0)


def session_rows(tenant_id: str, item: dict) -> tuple[Row, list[Row], list[Row]]:
    """One session -> (session row, risk-indicator rows, triggered-alert rows)."""
    sid = item["sessionId"]
    score = _latest(item.get("scores")) or {}
    state = _latest(item.get("states")) or {}
    session = {
        "tenant_id": tenant_id,
        "session_id": sid,
        "actor_id": item.get("actorId"),
        "actor_name": item.get("actorName"),
        "user_id": item.get("userId"),
        "type": item.get("type"),
        "begin_time": from_epoch_ms(item["beginTime"]),
        "end_time": from_epoch_ms(item.get("endTime")),
        "first_observed": from_epoch_ms(item.get("firstObserved")),
        "last_updated": from_epoch_ms(item["lastUpdated"]),
        # ``state`` is deprecated for ``stateV2`` (the SDK's model); the SQL load does the same.
        "state": state["stateV2"] if state.get("stateV2") is not None else state.get("state"),
        "risk_score": score.get("score"),
        "severity": score.get("severity"),
        "no_risk_events": item.get("noRiskEvents"),
        "low_events": item.get("lowEvents"),
        "moderate_events": item.get("moderateEvents"),
        "high_events": item.get("highEvents"),
        "critical_events": item.get("criticalEvents"),
        "context_summary": item.get("contextSummary"),
        "exfiltration_summary": item.get("exfiltrationSummary"),
        "raw": item,
    }
    indicators = {}
    for ind in item.get("riskIndicators") or []:
        indicators[str(ind["id"])] = {
            "tenant_id": tenant_id,
            "session_id": sid,
            "indicator_id": str(ind["id"]),
            "name": ind.get("name"),
            "weight": ind.get("weight"),
            "event_count": ind.get("eventCount"),
        }
    alerts = {}
    for trig in item.get("triggeredAlerts") or []:
        alerts[str(trig["alertId"])] = {
            "tenant_id": tenant_id,
            "session_id": sid,
            "alert_id": str(trig["alertId"]),
            "rule_id": trig.get("ruleId"),
            "rule_name": trig.get("ruleName"),
            "lesson_id": trig.get("lessonId"),
        }
    return session, list(indicators.values()), list(alerts.values())


def alert_row(tenant_id: str, item: dict) -> Row:
    return {
        "tenant_id": tenant_id,
        "alert_id": item["id"],
        "type": item.get("type"),
        "created_at": from_iso(item["createdAt"]),
        "state": item.get("state"),
        "state_last_modified_by": item.get("stateLastModifiedBy"),
        "state_last_modified_at": from_iso(item.get("stateLastModifiedAt")),
        "name": item.get("name"),
        "description": item.get("description"),
        "actor": item.get("actor"),
        "actor_id": item.get("actorId"),
        "target": item.get("target"),
        "severity": item.get("severity"),
        "risk_severity": item.get("riskSeverity"),
        "rule_id": item.get("ruleId"),
        "watchlists": item.get("watchlists"),
        "raw": item,
    }


def alert_rule_row(tenant_id: str, item: dict) -> Row:
    education = item.get("education") or {}
    return {
        "tenant_id": tenant_id,
        "rule_id": item["id"],
        "name": item.get("name"),
        "description": item.get("description"),
        "severity": item.get("severity"),
        "is_enabled": item.get("isEnabled"),
        "is_system_rule": item.get("isSystemRule"),
        "source": item.get("source"),
        "vectors": item.get("vectors"),
        "lesson_id": education.get("lessonId") if isinstance(education, dict) else None,
        "created_at": from_iso(item.get("createdAt")),
        "modified_at": from_iso(item.get("modifiedAt")),
        "raw": item,
    }


def actor_row(tenant_id: str, item: dict) -> Row:
    return {
        "tenant_id": tenant_id,
        "actor_id": item["actorId"],
        "name": item.get("name"),
        "alternate_names": item.get("alternateNames"),
        "first_name": item.get("firstName"),
        "last_name": item.get("lastName"),
        "department": item.get("department"),
        "division": item.get("division"),
        "title": item.get("title"),
        "employee_type": item.get("employeeType"),
        "country": item.get("country"),
        "locality": item.get("locality"),
        "manager_actor_id": item.get("managerActorId"),
        "parent_actor_id": item.get("parentActorId"),
        "in_scope": item.get("inScope"),
        "start_date": _text(item.get("startDate")),
        "end_date": _text(item.get("endDate")),
        "raw": item,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

"""``POST /v1/alerts/query-alerts`` and ``POST /v1/alerts/query-details`` (the deprecated alerts API)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request

from incydr_sandbox.auth import permission
from incydr_sandbox.config import ALERTS_SESSIONS_READ
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.queries import AlertQuery, alert_keys
from incydr_sandbox.rand import iso_ms, uuid_for
from incydr_sandbox.routes import State, page_slice

MAX_PAGE_SIZE = 500
router = APIRouter(dependencies=[Depends(permission(ALERTS_SESSIONS_READ))])


async def _body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "Bad Request", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Bad Request", "the request body must be a JSON object")
    return body


def _int(body: dict, key: str, default: int) -> int:
    try:
        return int(body.get(key, default))
    except (TypeError, ValueError):
        raise ApiError(400, "Bad Request", f"{key} must be an integer") from None


@router.post("/v1/alerts/query-alerts")
async def query_alerts(state: State, request: Request):
    body = await _body(request)
    if body.get("tenantId") != state.tenant.tenant_id:
        raise ApiError(400, "Bad Request", "tenantId is missing or is not the tenant of the access token")
    size, number = _int(body, "pgSize", 100), _int(body, "pgNum", 0)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, "Bad Request", f"pgSize must be between 1 and {MAX_PAGE_SIZE}",
                       {"problems": [{"type": "InvalidPageSize", "badFilter": None}]})
    if number < 0:
        raise ApiError(400, "Bad Request", "pgNum is 0-based and must not be negative",
                       {"problems": [{"type": "InvalidPageNumber", "badFilter": None}]})
    query = AlertQuery.from_body(body)
    tenant, clock = state.tenant, state.page_clock()
    keys = state.queries.get(("alerts", query, clock), lambda: alert_keys(tenant, query, clock))
    alerts = [tenant.alert(tenant.plan(i), slot, clock) for i, slot in page_slice(keys, number, size)]
    return page_response(state, "alerts", {"type$": "ALERT_QUERY_RESPONSE", "alerts": alerts,
                                           "totalCount": len(keys), "problems": []}, alerts, clock_moved=True)


@router.post("/v1/alerts/query-details")
async def query_details(state: State, request: Request):
    ids = (await _body(request)).get("alertIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise ApiError(400, "Bad Request", "alertIds must be a list of 1 to 100 alert ids")
    tenant, clock = state.tenant, state.clock_ms
    details = []
    for alert_id in ids:
        found = tenant.find_alert(str(alert_id), clock)
        alert = tenant.alert(*found, clock) if found else None
        if alert is None:
            continue
        plan = found[0]
        events = tenant.file_events(plan, clock)
        observation = {"type$": "OBSERVED_ENDPOINT_ACTIVITY", "id": uuid_for(tenant.seed, "observation", alert_id),
                       "sources": [plan.vector.observer], "fileCount": len(events),
                       "totalFileSize": sum(e["file"]["sizeInBytes"] for e in events),
                       "firstActivityAt": iso_ms(plan.begin), "lastActivityAt": iso_ms(plan.end_at(clock))}
        closing = next((ch for ch in reversed(plan.changes) if ch.at <= clock), None)
        note = None
        if closing is not None and alert["state"] == "RESOLVED":
            note = {"id": uuid_for(tenant.seed, "alert-note", alert_id), "lastModifiedAt": iso_ms(closing.at),
                    "lastModifiedBy": alert["stateLastModifiedBy"], "message": closing.note}
        details.append({**alert, "observations": [{
            "id": observation["id"], "observedAt": iso_ms(plan.begin), "lastObservedAt": iso_ms(plan.end_at(clock)),
            "type": "FedEndpointExfiltration", "data": json.dumps(observation)}], "note": note})
    return {"type$": "ALERT_DETAILS_RESPONSE", "alerts": details}

"""``GET /v2/alert-rules`` (a bare JSON array) and ``GET /v2/alert-rules/{id}``."""

from __future__ import annotations

import copy
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from incydr_sandbox.auth import permission
from incydr_sandbox.config import ALERT_RULES_READ
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.routes import State, page_slice

MAX_PAGE_SIZE = 500
router = APIRouter(dependencies=[Depends(permission(ALERT_RULES_READ))])


@router.get("/v2/alert-rules")
def list_rules(state: State, number: Annotated[int, Query(alias="PageNumber")] = 0,
               size: Annotated[int, Query(alias="PageSize")] = 10,  # the OpenAPI file's default
               watchlist_id: Annotated[str | None, Query(alias="WatchlistId")] = None):
    if number < 0:
        raise ApiError(400, "Bad Request", "PageNumber is 0-based and must not be negative")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, "Bad Request", f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    rules = state.tenant.alert_rules
    if watchlist_id:
        rules = [r for r in rules
                 if watchlist_id in {w["id"] for w in r["filters"].get("watchlist", {}).get("watchlists", [])}]
    items = copy.deepcopy(page_slice(rules, number, size))
    return page_response(state, "rules", items, items)


@router.get("/v2/alert-rules/{rule_id}")
def get_rule(state: State, rule_id: str):
    rule = state.tenant.alert_rules_by_id.get(rule_id)
    if rule is None:
        raise ApiError(404, "Not Found", f"alert rule {rule_id} not found")
    return rule

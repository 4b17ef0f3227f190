"""Watchlists v2: ``GET /v2/watchlists`` and ``GET /v2/watchlists/{id}/members`` (pages from 1).

The tenant's watchlists are ``catalog.WATCHLISTS``; an actor is a member of the ones
``Actor.watchlists(clock)`` names (departing employees from their notice date, high impact
employees, contractors). Shapes follow the OpenAPI file's ``WatchlistSdk.Model.*``: a list type
(``DEPARTINGEMPLOYEE``, ``HIGHIMPACTEMPLOYEE``, ``CUSTOM``...), a ``title`` for custom lists only,
members as ``actorId`` / ``actorname`` / ``addedTime``. Needs the "Watchlists read" permission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from incydr_sandbox.auth import permission
from incydr_sandbox.config import WATCHLISTS_READ
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.rand import iso_ms
from incydr_sandbox.routes import State
from incydr_sandbox.tenant import catalog

MAX_PAGE_SIZE = 100
router = APIRouter(dependencies=[Depends(permission(WATCHLISTS_READ))])
_LIST_TYPE = {"DEPARTING_EMPLOYEE": "DEPARTINGEMPLOYEE", "HIGH_IMPACT_EMPLOYEE": "HIGHIMPACTEMPLOYEE",
              "CUSTOM": "CUSTOM"}


def _check_page(page: int, size: int) -> None:
    if page < 1:
        raise ApiError(400, "Bad Request", "page is 1-based and must be at least 1")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, "Bad Request", f"page_size must be between 1 and {MAX_PAGE_SIZE}")


def _watchlist(state, wl: catalog.WatchlistDef, clock: int) -> dict:
    members = [a for a in state.tenant.actors if wl.key in a.watchlists(clock)]
    custom = wl.type == "CUSTOM"
    return {"listType": _LIST_TYPE[wl.type], "tenantId": state.tenant.tenant_id,
            "watchlistId": state.tenant.watchlist_id(wl.key), "title": wl.name if custom else None,
            "description": f"{wl.name} (sandbox)" if custom else None,
            "stats": {"includedActorsCount": len(members), "excludedActorsCount": 0,
                      "includedDepartmentsCount": 0, "includedDirectoryGroupsCount": 0}}


@router.get("/v2/watchlists")
def list_watchlists(state: State, page: int = 1, size: Annotated[int, Query(alias="page_size")] = 10,
                    actor_id: str | None = None):
    _check_page(page, size)
    clock = state.clock_ms
    lists = catalog.WATCHLISTS
    if actor_id:
        actor = state.tenant.actors_by_id.get(actor_id)
        lists = tuple(wl for wl in lists if actor is not None and wl.key in actor.watchlists(clock))
    items = [_watchlist(state, wl, clock) for wl in lists[(page - 1) * size:page * size]]
    return page_response(state, "watchlists", {"watchlists": items, "totalCount": len(lists)}, items)


@router.get("/v2/watchlists/{watchlist_id}/members")
def list_members(state: State, watchlist_id: str, page: int = 1,
                 size: Annotated[int, Query(alias="page_size")] = 10):
    _check_page(page, size)
    wl = next((w for w in catalog.WATCHLISTS if state.tenant.watchlist_id(w.key) == watchlist_id), None)
    if wl is None:
        raise ApiError(404, "Not Found", f"watchlist {watchlist_id} not found")
    clock = state.clock_ms
    members = [a for a in state.tenant.actors if wl.key in a.watchlists(clock)]
    start = state.tenant.span_start
    items = [{"actorId": a.actor_id, "actorname": a.name, "addedTime": iso_ms(start)}
             for a in members[(page - 1) * size:page * size]]
    return page_response(state, "watchlist_members", {"watchlistMembers": items, "totalCount": len(members)},
                         items)

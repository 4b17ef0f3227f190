"""``/v1/actors/actor/...``: by id or name (with ``/parent`` and ``/family``) and search (1-based pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from incydr_sandbox.auth import code42_client
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.identities import Actor
from incydr_sandbox.routes import State
from incydr_sandbox.state import SandboxState

MAX_PAGE_SIZE = 500
router = APIRouter(dependencies=[Depends(code42_client)])  # any valid API client may read actors


def _by(state: SandboxState, how: str, value: str) -> Actor:
    tenant = state.tenant
    actor = tenant.actors_by_id.get(value) if how == "id" else tenant.actors_by_name.get(value.lower())
    if actor is None:
        raise ApiError(404, "Not Found", f"no actor with {how} {value}")
    return actor


def _search(state: SandboxState, page: int, page_size: int, starts: str | None, ends: str | None,
            active: bool | None, prefer_parent: bool):
    if page < 1:
        raise ApiError(400, "Bad Request", "page is 1-based and must be at least 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError(400, "Bad Request", f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    tenant = state.tenant
    found: list[Actor] = []
    for actor in tenant.actors:
        name = actor.name.lower()
        if (starts and not name.startswith(starts.lower())) or (ends and not name.endswith(ends.lower())):
            continue
        if active is not None and actor.active != active:
            continue
        found.append(tenant.parent_of(actor) if prefer_parent else actor)
    if prefer_parent:
        found = list({a.actor_id: a for a in found}.values())
    items = [a.api() for a in found[(page - 1) * page_size:page * page_size]]
    return page_response(state, "actors", {"actors": items}, items)


Page = Annotated[int, Query(alias="page")]
PageSize = Annotated[int, Query(alias="pageSize")]
StartsWith = Annotated[str | None, Query(alias="nameStartsWith")]
EndsWith = Annotated[str | None, Query(alias="nameEndsWith")]


# The search routes come first: "/search/parent" would otherwise read as a lookup by "search".
@router.get("/v1/actors/actor/search")
def search(state: State, page: Page = 1, page_size: PageSize = 100, starts: StartsWith = None,
           ends: EndsWith = None, active: bool | None = None):
    return _search(state, page, page_size, starts, ends, active, prefer_parent=False)


@router.get("/v1/actors/actor/search/parent")
def search_parents(state: State, page: Page = 1, page_size: PageSize = 100, starts: StartsWith = None,
                   ends: EndsWith = None, active: bool | None = None):
    return _search(state, page, page_size, starts, ends, active, prefer_parent=True)


@router.get("/v1/actors/actor/{how}/{value}")
def get_actor(state: State, how: str, value: str):
    _check(how)
    return _by(state, how, value).api()


@router.get("/v1/actors/actor/{how}/{value}/parent")
def get_parent(state: State, how: str, value: str):
    _check(how)
    return state.tenant.parent_of(_by(state, how, value)).api()


@router.get("/v1/actors/actor/{how}/{value}/family")
def get_family(state: State, how: str, value: str):
    _check(how)
    return state.tenant.family_of(_by(state, how, value))


def _check(how: str) -> None:
    if how not in ("id", "name"):
        raise ApiError(404, "Not Found", f"no such actor lookup {how!r} (id or name)")

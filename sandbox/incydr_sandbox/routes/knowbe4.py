"""KnowBe4 Reporting API: ``/v1/account``, ``/v1/users`` and ``/v1/groups`` (Bearer API key; 1-based pages; an empty
page ends a listing; ``per_page`` above 500 is served as 500, KnowBe4's documented maximum)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from incydr_sandbox.auth import knowbe4_key
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.routes import State
from incydr_sandbox.state import SandboxState

MAX_PER_PAGE = 500
router = APIRouter(dependencies=[Depends(knowbe4_key)])


def _page(items: list, page: int, per_page: int) -> list:
    if page < 1:
        raise ApiError(400, "Bad Request", "page is 1-based and must be at least 1")
    if per_page < 1:
        raise ApiError(400, "Bad Request", "per_page must be at least 1")
    per_page = min(per_page, MAX_PER_PAGE)
    return items[(page - 1) * per_page:page * per_page]


def _status(status: str | None) -> str | None:
    if status not in (None, "active", "archived"):
        raise ApiError(400, "Bad Request", "status must be active or archived")
    return status


@router.get("/v1/account")
def account(state: State):
    """The account: ``number_of_seats`` (the ``events_seats`` knob, else one per KSAT user) sizes the
    User Event API's quota (10 calls per seat per day)."""
    return {"name": "Sandbox Corp", "type": "paid", "domains": ["example.com"], "subscription_level": "Diamond",
            "number_of_seats": state.seats, "current_risk_score": 31.4}


@router.get("/v1/users")
def users(state: State, status: str | None = None, group_id: int | None = None, page: int = 1,
          per_page: int = 100):
    directory, wanted = state.tenant.directory, _status(status)
    chosen = [u for u in directory.ksat_users if (wanted is None or u.status == wanted)
              and (group_id is None or group_id in directory.groups_of(u))]
    items = [directory.ksat_json(u) for u in _page(chosen, page, per_page)]
    return page_response(state, "ksat_users", items, items)


@router.get("/v1/users/{user_id}")
def user(state: State, user_id: int):
    directory = state.tenant.directory
    found = next((u for u in directory.ksat_users if u.id == user_id), None)
    if found is None:
        raise ApiError(404, "Not Found", f"no user {user_id}")
    return directory.ksat_json(found)


@router.get("/v1/groups")
def groups(state: State, status: str | None = None, page: int = 1, per_page: int = 100):
    wanted = _status(status)
    chosen = [g for g in state.tenant.directory.ksat_groups() if wanted is None or g["status"] == wanted]
    items = _page(chosen, page, per_page)
    return page_response(state, "ksat_groups", items, items)


def _group(state: SandboxState, group_id: int) -> dict:
    found = next((g for g in state.tenant.directory.ksat_groups() if g["id"] == group_id), None)
    if found is None:
        raise ApiError(404, "Not Found", f"no group {group_id}")
    return found


@router.get("/v1/groups/{group_id}")
def group(state: State, group_id: int):
    return _group(state, group_id)


@router.get("/v1/groups/{group_id}/members")
def members(state: State, group_id: int, page: int = 1, per_page: int = 100):
    _group(state, group_id)
    directory = state.tenant.directory
    chosen = [u for u in directory.ksat_users if u.status == "active" and group_id in directory.groups_of(u)]
    items = [directory.ksat_json(u) for u in _page(chosen, page, per_page)]
    return page_response(state, "ksat_users", items, items)

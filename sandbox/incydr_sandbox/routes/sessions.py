"""``GET /v1/sessions``, ``/v1/sessions/{id}`` and ``/v1/sessions/{id}/events``; ``POST
/v1/sessions/{id}/add-note`` (``{"noteContent": ...}``, at most 2000 characters, as the incydr SDK's
``sessions.v1.add_note`` sends it; needs "Alerts and Sessions update"). Added notes are recorded in
the sinks (``code42_notes``) and listed in that session's ``notes`` by ``GET /v1/sessions/{id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from incydr_sandbox.auth import permission
from incydr_sandbox.config import ALERTS_SESSIONS_READ, ALERTS_SESSIONS_UPDATE
from incydr_sandbox.errors import ApiError
from incydr_sandbox.faults import page_response
from incydr_sandbox.queries import SessionQuery, session_indices
from incydr_sandbox.routes import State, page_slice
from incydr_sandbox.state import SandboxState

MAX_PAGE_SIZE = 50  # "Max of '50'"
DEFAULT_PAGE_SIZE = 10  # the OpenAPI file's default
router = APIRouter(dependencies=[Depends(permission(ALERTS_SESSIONS_READ))])
Many = Annotated[list[str] | None, Query()]


def _flag(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ApiError(400, "Bad Request", f"{name} must be true or false")
    return value.lower() == "true"


@router.get("/v1/sessions")
def list_sessions(
    state: State,
    on_or_after: int | None = None,
    before: int | None = None,
    actor_id: str | None = None,
    has_alerts: str = "true",
    state_: Annotated[list[str] | None, Query(alias="state")] = None,
    severity: Annotated[list[int] | None, Query()] = None,
    rule_id: Many = None,
    watchlist_id: Many = None,
    risk_indicators: Many = None,
    content_inspection_status: Many = None,
    type: str | None = None,
    order_by: str | None = None,
    sort_direction: str = "DESC",
    page_number: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
):
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError(400, "Bad Request", f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if page_number < 0:
        raise ApiError(400, "Bad Request", "page_number is 0-based and must not be negative")
    if sort_direction not in ("ASC", "DESC"):  # the OpenAPI enum: upper case only
        raise ApiError(400, "Bad Request", f"sort_direction must be ASC or DESC, got {sort_direction!r}")
    query = SessionQuery(
        on_or_after=on_or_after, before=before, actor_id=actor_id, has_alerts=_flag("has_alerts", has_alerts),
        states=frozenset(state_ or ()), severities=frozenset(severity or ()), rule_ids=frozenset(rule_id or ()),
        watchlist_ids=frozenset(watchlist_id or ()), risk_indicators=frozenset(risk_indicators or ()),
        inspection=frozenset(content_inspection_status or ()), type=type, order_by=order_by,
        descending=sort_direction == "DESC",
    )
    tenant, clock = state.tenant, state.page_clock()
    indices = state.queries.get(("sessions", query, clock), lambda: session_indices(tenant, query, clock))
    items = [tenant.session(tenant.plan(i), clock) for i in page_slice(indices, page_number, page_size)]
    return page_response(state, "sessions", {"items": items, "totalCount": len(indices)}, items, clock_moved=True)


def _visible_session(state: SandboxState, session_id: str):
    plan = state.tenant.find_session(session_id, state.clock_ms)
    if plan is None:
        raise ApiError(404, "Not Found", f"session {session_id} not found")
    return plan


@router.get("/v1/sessions/{session_id}")
def get_session(state: State, session_id: str):
    session = state.tenant.session(_visible_session(state, session_id), state.clock_ms)
    added = state.sinks.notes_of(session_id)
    return {**session, "notes": [*session.get("notes", []), *added]} if added else session


@router.post("/v1/sessions/{session_id}/add-note", dependencies=[Depends(permission(ALERTS_SESSIONS_UPDATE))])
async def add_note(state: State, session_id: str, request: Request):
    _visible_session(state, session_id)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Bad Request", "the request body is not JSON") from None
    content = body.get("noteContent") if isinstance(body, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise ApiError(400, "Bad Request", "noteContent is required")
    if len(content) > 2000:
        raise ApiError(400, "Bad Request", "noteContent has a 2000 character max limit")
    note = {"id": state.user_events.new_id("note"), "content": content, "sourceTimestamp": state.clock_ms,
            "userId": "integration"}
    state.sinks.record_note({"session_id": session_id, "note": note})
    return {}


@router.get("/v1/sessions/{session_id}/events")
def session_events(state: State, session_id: str,
                   page_size: Annotated[int | None, Query(alias="pgSize")] = None,
                   page_token: Annotated[str | None, Query(alias="pgToken")] = None):
    """The session's alerted-on file events at once, as the SDK reads them (OpenAPI: a 404 when the
    session has no alerts); with ``pgSize`` a page of them, and ``nextPgToken`` (an opaque offset)
    for the next page, ``""`` after the last (a sandbox extension: no source documents paging)."""
    plan = _visible_session(state, session_id)
    if not plan.alerts_visible(state.clock_ms):
        raise ApiError(404, "Not Found", f"session {session_id} has no alerts associated with it")
    events = state.tenant.file_events(plan, state.clock_ms)
    start = 0
    if page_token:
        if not page_token.startswith("o") or not page_token[1:].isdigit():
            raise ApiError(400, "Bad Request", "pgToken is not a token this endpoint issued")
        start = int(page_token[1:])
    if page_size is not None and not 1 <= page_size <= 10_000:
        raise ApiError(400, "Bad Request", "pgSize must be between 1 and 10000")
    stop = len(events) if page_size is None else min(start + page_size, len(events))
    page = events[start:stop]
    body = {"queryResult": {"fileEvents": page, "nextPgToken": f"o{stop}" if stop < len(events) else "",
                            "problems": None, "totalCount": len(events)}}
    return page_response(state, "events", body, page)

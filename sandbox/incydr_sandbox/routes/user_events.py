"""KnowBe4 User Event API (``https://api.events.knowbe4.com`` in real life): ``/events`` (GET, POST,
``/events/{id}`` GET and DELETE), ``/event_types`` (GET, POST) and ``/statuses`` (GET, ``/{id}``).

Shapes follow KnowBe4's User Event API: answers wrap their payload in ``data`` (lists add ``meta``
with ``count``, ``current_page``, ``total_pages``...); ``POST /events`` takes ``target_user`` (the KSAT
email), ``event_type`` (an event type's name), ``external_id``, ``source``, ``description``,
``occurred_date``, ``risk_level`` (-10..10), ``risk_decay_mode``, ``risk_expire_date`` and answers 201
``{"data": {"id": <request id>}}``; the request's outcome (events created, failures) is
``GET /statuses/{id}``. The sandbox processes a request at once: an unknown KSAT user or event type
is a failure in the status, not an error of the POST. ``DELETE /events/{id}`` answers 204.

Auth: ``Authorization: Bearer sandbox-events-key``. Quota: 10 calls per seat per day and key
(incydr_sandbox.user_events); over it, 429 with ``Retry-After`` (seconds to the next UTC day of the
sandbox clock). Knobs: ``events_429_next`` / ``events_retry_after`` (429s before the quota),
``events_fail_after_post_next`` (a POST is processed, then answered 504: the answer is lost),
``events_seats``. Every call is recorded (``GET /_sandbox/user-events``).
"""

from __future__ import annotations

import hmac
import json
import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from incydr_sandbox.auth import bearer_token
from incydr_sandbox.config import KSAT_EVENTS_KEY
from incydr_sandbox.errors import ApiError
from incydr_sandbox.rand import iso_ms
from incydr_sandbox.routes import State
from incydr_sandbox.state import SandboxState

router = APIRouter()
MAX_PER_PAGE = 100
RISK_LEVELS = range(-10, 11)


def _too_many(retry_after: float, why: str) -> ApiError:
    seconds = str(max(1, math.ceil(retry_after)))
    return ApiError(429, "Too Many Requests", why, headers={"Retry-After": seconds})


async def _call(state: SandboxState, request: Request) -> dict:
    """Authenticate, count against the key's quota, apply the 429 knob; returns the recorded call."""
    if not hmac.compare_digest(bearer_token(request.headers).encode(), KSAT_EVENTS_KEY.encode()):
        raise ApiError(401, "Unauthorized", "invalid User Event API key")
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = "<not json>"
    entry = {"method": request.method, "path": request.url.path, "query": dict(request.query_params),
             "body": body, "clock": iso_ms(state.clock_ms), "status": None}
    state.user_events.record(entry)
    with state.lock:
        limited = state.faults.events_429_next > 0
        if limited:
            state.faults.events_429_next -= 1
        retry_after = state.faults.events_retry_after
    wait = state.user_events.take_call(state.clock_ms, state.events_quota)
    if wait is not None:
        entry["status"] = 429
        raise _too_many(wait, f"daily quota of {state.events_quota} calls ({state.seats} seats x 10) used up")
    if limited:
        entry["status"] = 429
        raise _too_many(retry_after, "sandbox fault: events_429_next")
    return entry


def _answer(entry: dict, status: int, body: dict | None = None) -> Response:
    entry["status"] = status
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status_code=status)


def _page(items: list, page: int, per_page: int) -> dict:
    if page < 1 or per_page < 1:
        raise ApiError(400, "Bad Request", "page and per_page must be at least 1")
    per_page = min(per_page, MAX_PER_PAGE)
    total_pages = max(1, math.ceil(len(items) / per_page))
    chosen = items[(page - 1) * per_page:page * per_page]
    return {"data": chosen, "meta": {"count": len(items), "limit_value": per_page, "total_pages": total_pages,
                                     "current_page": page, "next_page": page + 1 if page < total_pages else None,
                                     "prev_page": page - 1 if page > 1 else None, "is_first_page": page == 1,
                                     "is_last_page": page >= total_pages}}


@router.api_route("/event_types", methods=["GET", "POST"])
async def event_types(state: State, request: Request):
    entry = await _call(state, request)
    store = state.user_events
    if request.method == "GET":
        name = request.query_params.get("name")
        with store.lock:
            chosen = [t for t in store.event_types if name is None or t["name"] == name]
        return _answer(entry, 200, {"data": chosen, "meta": {"count": len(chosen)}})
    body = entry["body"]
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        entry["status"] = 400
        raise ApiError(400, "Bad Request", "name is required")
    with store.lock:
        if any(t["name"] == body["name"] for t in store.event_types):
            entry["status"] = 422
            raise ApiError(422, "Unprocessable Entity", f"event type {body['name']!r} already exists")
    created = {"id": store.next_type_id(), "account_id": 1, "name": body["name"],
               "description": body.get("description")}
    with store.lock:
        store.event_types.append(created)
    return _answer(entry, 201, {"data": created})


def _problems(state: SandboxState, body: dict) -> list[str]:
    problems = []
    emails = {u.email.lower() for u in state.tenant.directory.ksat_users}
    if str(body.get("target_user", "")).lower() not in emails:
        problems.append("target_user: no KSAT user with this email")
    with state.user_events.lock:
        if body.get("event_type") not in {t["name"] for t in state.user_events.event_types}:
            problems.append("event_type: no such event type")
    return problems


def _validate_event(body) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "Bad Request", "expected a JSON object")
    for name in ("target_user", "event_type"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(400, "Bad Request", f"{name} is required")
    level = body.get("risk_level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool) or level not in RISK_LEVELS):
        raise ApiError(400, "Bad Request", "risk_level must be an integer from -10 to 10")
    if body.get("risk_decay_mode") not in (None, 0, 1):
        raise ApiError(400, "Bad Request", "risk_decay_mode must be 0 or 1")
    return body


@router.api_route("/events", methods=["GET", "POST"])
async def events(state: State, request: Request, page: int = 1, per_page: int = 50):
    entry = await _call(state, request)
    store = state.user_events
    if request.method == "GET":
        q = request.query_params
        with store.lock:
            chosen = [e for e in store.events
                      if (q.get("external_id") is None or e["external_id"] == q["external_id"])
                      and (q.get("target_user") is None or e["user"]["email"].lower() == q["target_user"].lower())
                      and (q.get("event_type") is None or e["event_type"]["name"] == q["event_type"])]
        return _answer(entry, 200, _page(chosen, page, per_page))
    try:
        body = _validate_event(entry["body"])
    except ApiError:
        entry["status"] = 400
        raise
    request_id = store.new_id("request")
    problems = _problems(state, body)
    created = []
    if not problems:
        user = next(u for u in state.tenant.directory.ksat_users if u.email.lower() == body["target_user"].lower())
        with store.lock:
            event_type = next(t for t in store.event_types if t["name"] == body["event_type"])
        event = {"id": store.new_id("event"), "account_id": 1,
                 "user": {"email": user.email, "id": user.id, "archived": user.status == "archived"},
                 "external_id": body.get("external_id"), "source": body.get("source"),
                 "description": body.get("description"), "occurred_date": body.get("occurred_date"),
                 "risk": {"level": body.get("risk_level"), "decay_mode": body.get("risk_decay_mode"),
                          "expire_date": body.get("risk_expire_date")},
                 "metadata": body.get("metadata"),
                 "event_type": {"id": event_type["id"], "name": event_type["name"],
                                "description": event_type["description"]}}
        with store.lock:
            store.events.append(event)
        created.append(event["id"])
    status = {"id": request_id, "details": {"events": created, "failures": problems},
              "processed": iso_ms(state.clock_ms), "api_key": "sandbox"}
    with store.lock:
        store.statuses.append(status)
    with state.lock:
        lose = state.faults.events_fail_after_post_next > 0
        if lose:
            state.faults.events_fail_after_post_next -= 1
    if lose:
        entry["status"] = 504
        raise ApiError(504, "Gateway Timeout", "sandbox fault: events_fail_after_post_next (the event was created)")
    return _answer(entry, 201, {"data": {"id": request_id}})


@router.api_route("/events/{event_id}", methods=["GET", "DELETE"])
async def event(state: State, request: Request, event_id: str):
    entry = await _call(state, request)
    store = state.user_events
    with store.lock:
        found = next((e for e in store.events if e["id"] == event_id), None)
        if found is not None and request.method == "DELETE":
            store.events.remove(found)
            store.deleted.append(found)
    if found is None:
        entry["status"] = 404
        raise ApiError(404, "Not Found", f"no event {event_id}")
    return _answer(entry, 204) if request.method == "DELETE" else _answer(entry, 200, {"data": found})


@router.get("/statuses")
async def statuses(state: State, request: Request, page: int = 1, per_page: int = 50):
    entry = await _call(state, request)
    with state.user_events.lock:
        chosen = list(state.user_events.statuses)
    return _answer(entry, 200, _page(chosen, page, per_page))


@router.get("/statuses/{request_id}")
async def status(state: State, request: Request, request_id: str):
    entry = await _call(state, request)
    with state.user_events.lock:
        found = next((s for s in state.user_events.statuses if s["id"] == request_id), None)
    if found is None:
        entry["status"] = 404
        raise ApiError(404, "Not Found", f"no request {request_id}")
    return _answer(entry, 200, {"data": found})

"""``/_sandbox/*``: health, faults, stats, clock, reset, token revocation, ground truth. No auth, but
only loopback clients (or clients on the server's own address) are answered unless the server was
started with ``--admin-any-host``."""

from __future__ import annotations

import ipaddress
import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from incydr_sandbox.config import DEFAULT_CLIENT_ID, parse_anchor
from incydr_sandbox.errors import ApiError
from incydr_sandbox.identities import truth_text
from incydr_sandbox.rand import iso_ms
from incydr_sandbox.routes import State
from incydr_sandbox.state import SandboxState


def local_only(request: Request) -> None:
    state: SandboxState = request.app.state.sandbox
    if state.config.admin_any_host:
        return
    client = request.client.host if request.client else ""
    server = (request.scope.get("server") or ("",))[0]
    try:
        loopback = ipaddress.ip_address(client).is_loopback
    except ValueError:
        loopback = client in ("testclient", "localhost")
    if not (loopback or client == server):
        raise ApiError(403, "Forbidden", "the sandbox admin API answers local clients only")


router = APIRouter(prefix="/_sandbox", dependencies=[Depends(local_only)])


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "Bad Request", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Bad Request", "expected a JSON object")
    return body


@router.get("/health")
def health(state: State) -> dict:
    cfg, tenant, clock = state.config.tenant, state.tenant, state.clock_ms
    return {"ok": True, "tenantId": tenant.tenant_id, "seed": cfg.seed, "anchor_ms": cfg.anchor_ms,
            "anchor": iso_ms(cfg.anchor_ms), "clock_ms": clock, "clock": iso_ms(clock),
            "span_start_ms": cfg.span_start_ms, "days": cfg.days, "sessions": cfg.sessions, "actors": cfg.actors,
            "sessions_begun": tenant.visible_end(clock), "ksat_users": len(tenant.directory.ksat_users),
            "client_id": DEFAULT_CLIENT_ID, "smtp_port": state.sinks.smtp_port}


@router.get("/faults")
def get_faults(state: State) -> dict:
    return state.faults.as_dict()


@router.post("/faults")
async def set_faults(state: State, request: Request) -> dict:
    values = await _json(request)
    with state.lock:
        try:
            state.faults.update(values)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "Bad Request", str(exc)) from None
        return state.faults.as_dict()


@router.get("/stats")
def stats(state: State) -> dict:
    return state.snapshot()


@router.post("/reset")
def reset(state: State) -> dict:
    state.reset()
    return {"ok": True, "clock_ms": state.clock_ms, "faults": state.faults.as_dict()}


@router.post("/warm")
def warm(state: State) -> dict:
    """Plan every session begun by the clock now, so later listings plan none (benchmarks call it
    before they measure)."""
    started = time.monotonic()
    sessions = state.tenant.warm(state.clock_ms)
    return {"sessions": sessions, "seconds": round(time.monotonic() - started, 3)}


@router.post("/advance")
async def advance(state: State, request: Request) -> dict:
    """Move the clock forward: ``{"minutes": N}`` or ``{"to": "<ISO-8601 or epoch ms>"}``."""
    body = await _json(request)
    try:
        if "to" in body:
            minutes = (parse_anchor(body["to"]) - state.clock_ms) / 60_000
        else:
            minutes = float(body.get("minutes", 0))
        clock = state.advance(minutes)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "Bad Request", str(exc)) from None
    state.queries.clear()
    return {"clock_ms": clock, "clock": iso_ms(clock)}


@router.post("/revoke-tokens")
def revoke_tokens(state: State) -> dict:
    """Invalidate every issued token: the next request with one gets a 401."""
    return {"revoked": state.tokens.revoke_all()}


@router.get("/truth")
def truth(state: State, format: str = "json"):
    """Actor -> KSAT user ground truth, as ``--write-truth`` writes it."""
    if format == "csv":
        return PlainTextResponse(truth_text(state.tenant.directory, "csv"), media_type="text/csv")
    if format != "json":
        raise ApiError(400, "Bad Request", "format must be json or csv")
    return state.tenant.directory.truth_json()


@router.get("/sinks")
def get_sinks(state: State) -> dict:
    """What the webhook, SMTP and Slack sinks received, oldest first."""
    return state.sinks.as_dict()


@router.delete("/sinks")
def clear_sinks(state: State) -> dict:
    state.sinks.clear()
    return state.sinks.as_dict()


@router.get("/slack")
def slack_workspace(state: State) -> dict:
    """The Slack workspace: ``users`` (KSAT email -> Slack user and direct conversation ids) and
    ``without_account`` (KSAT emails with no Slack account: ``users_not_found``)."""
    return state.slack.as_dict()


@router.post("/sinks/fail-next")
async def webhook_fail_next(state: State, request: Request) -> dict:
    """``{"statuses": [503, 503]}``: the webhook sink answers its next requests with these."""
    statuses = (await _json(request)).get("statuses")
    if not isinstance(statuses, list) or not all(isinstance(s, int) and 200 <= s <= 599 for s in statuses):
        raise ApiError(400, "Bad Request", "statuses must be a list of HTTP status codes")
    with state.sinks.lock:
        state.sinks.webhook_fail_next[:] = statuses
    return state.sinks.as_dict()


@router.get("/user-events")
def user_events(state: State) -> dict:
    """The KnowBe4 User Event API as it stands: ``event_types``, ``events`` (live), ``deleted``,
    ``statuses``, ``calls`` (every call: method, path, query, body, sandbox clock, status), ``quota``
    and ``used_today`` (calls of the sandbox clock's UTC day), ``day``. Cleared by reset."""
    return state.user_events.as_dict(state.clock_ms, state.events_quota)

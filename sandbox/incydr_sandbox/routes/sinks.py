"""``/sinks/webhook/{path}``: a chat incoming webhook (Slack/Teams style) that records what it gets."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from incydr_sandbox.routes import State

router = APIRouter(prefix="/sinks")


@router.post("/webhook/{path:path}")
async def webhook(path: str, state: State, request: Request) -> PlainTextResponse:
    status = state.sinks.next_webhook_status()
    if status != 200:
        return PlainTextResponse("invalid_payload" if status < 500 else "server_error", status_code=status)
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except ValueError:
        return PlainTextResponse("invalid_payload", status_code=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        return PlainTextResponse("no_text", status_code=400)
    state.sinks.record_webhook({"received_at": time.time(), "path": path, "payload": payload,
                                "idempotency_key": request.headers.get("Idempotency-Key")})
    return PlainTextResponse("ok")

"""``/slack/api/{method}``: the Slack Web API methods the SecurityTip direct messages use.

``auth.test``, ``users.lookupByEmail``, ``conversations.open`` (one user: the direct conversation)
and ``chat.postMessage`` (to a direct conversation opened before; anything else is
``channel_not_found``). Arguments come as query parameters, a form or a JSON body, as slack_sdk
sends them. Like Slack, errors are HTTP 200 with ``{"ok": false, "error": ...}``: ``not_authed`` /
``invalid_auth`` unless the bearer token is ``SLACK_BOT_TOKEN``, ``users_not_found`` for an email
without a Slack account; the ``slack_ratelimited_next`` fault knob answers HTTP 429 ``ratelimited``
with ``Retry-After: slack_retry_after``. Every call and every message is recorded in the sinks.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from incydr_sandbox.config import SLACK_BOT_TOKEN
from incydr_sandbox.routes import State
from incydr_sandbox.slack import BOT_USER_ID, TEAM_ID

router = APIRouter(prefix="/slack/api")


async def _arguments(request: Request) -> dict[str, str]:
    args = dict(request.query_params)
    raw = await request.body()
    if raw:
        if "json" in request.headers.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return {"_invalid": "invalid_json"}
            args.update({k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v)
                         for k, v in body.items()})
        else:
            args.update(parse_qsl(raw.decode("utf-8", "replace")))
    return args


def _token(request: Request, args: dict[str, str]) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return args.get("token")


@router.api_route("/{method}", methods=["GET", "POST"])
async def slack_api(method: str, state: State, request: Request) -> JSONResponse:
    args = await _arguments(request)
    with state.lock:
        limited = state.faults.slack_ratelimited_next > 0
        if limited:
            state.faults.slack_ratelimited_next -= 1
        retry_after = state.faults.slack_retry_after
    if limited:
        state.sinks.record_slack_call(method, "ratelimited")
        return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                            headers={"Retry-After": str(max(0, retry_after))})
    token = _token(request, args)
    if not token:
        answer = {"ok": False, "error": "not_authed"}
    elif token != SLACK_BOT_TOKEN:
        answer = {"ok": False, "error": "invalid_auth"}
    elif "_invalid" in args:
        answer = {"ok": False, "error": args["_invalid"]}
    else:
        answer = _call(state, method, args)
    state.sinks.record_slack_call(method, None if answer.get("ok") else answer.get("error"))
    return JSONResponse(answer)


def _metadata_key(metadata: str | None) -> str | None:
    """``metadata.event_payload.idempotency_key`` of a message, if it carries one."""
    try:
        payload = json.loads(metadata or "null")
        return payload["event_payload"]["idempotency_key"] if isinstance(payload, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def _call(state, method: str, args: dict[str, str]) -> dict:
    workspace = state.slack
    if method == "auth.test":
        return {"ok": True, "url": "https://sandbox.slack.invalid/", "team": "SecurityCoach sandbox",
                "user": "securitycoach", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0SECCOACH"}
    if method == "users.lookupByEmail":
        if not args.get("email"):
            return {"ok": False, "error": "invalid_arguments"}
        user = workspace.lookup(args["email"])
        return {"ok": True, "user": user.api()} if user else {"ok": False, "error": "users_not_found"}
    if method == "conversations.open":
        users = [u.strip() for u in args.get("users", "").strip("[]").replace('"', "").split(",") if u.strip()]
        if len(users) != 1:
            return {"ok": False, "error": "invalid_arguments" if not users else "sandbox_direct_conversations_only"}
        user = workspace.by_id.get(users[0])
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": user.dm_channel, "is_im": True, "user": user.id}}
    if method == "chat.postMessage":
        user = workspace.by_channel.get(args.get("channel", ""))
        if user is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = f"{time.time():.6f}"
        state.sinks.record_slack_message({"received_at": time.time(), "channel": user.dm_channel, "user_id": user.id,
                                          "email": user.email, "text": args.get("text", ""), "ts": ts,
                                          "idempotency_key": _metadata_key(args.get("metadata"))})
        return {"ok": True, "channel": user.dm_channel, "ts": ts,
                "message": {"type": "message", "text": args.get("text", ""), "user": BOT_USER_ID, "ts": ts}}
    return {"ok": False, "error": "unknown_method"}

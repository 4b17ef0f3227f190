"""``POST /v1/oauth``: client credentials (HTTP Basic) for a bearer JWT."""

from __future__ import annotations

from fastapi import APIRouter, Request

from incydr_sandbox.auth import basic_credentials
from incydr_sandbox.errors import ApiError
from incydr_sandbox.routes import State

router = APIRouter()


@router.post("/v1/oauth")
def oauth(state: State, request: Request) -> dict:
    credentials = basic_credentials(request.headers.get("authorization", ""))
    if credentials is None or not state.tokens.check_client(*credentials):
        state.count("oauth_refused")
        raise ApiError(401, "Unauthorized", "invalid client credentials")
    ttl = int(state.faults.token_ttl)
    token = state.tokens.issue(credentials[0], ttl)
    state.count("tokens_issued")
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

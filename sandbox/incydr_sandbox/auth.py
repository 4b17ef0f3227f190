"""OAuth clients, bearer tokens, permissions and the KnowBe4 API key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping

from fastapi import Request

from incydr_sandbox import jwt
from incydr_sandbox.config import CLIENT_SECRET, CLIENTS, KSAT_API_KEY
from incydr_sandbox.errors import ApiError


class TokenStore:
    """Issued access tokens (JWTs) and their expiry; expiry is wall-clock time, not the sandbox clock."""

    def __init__(self, seed: int, tenant_id: str) -> None:
        self._key = hashlib.sha256(f"incydr-sandbox-jwt/{seed}".encode()).digest()
        self._tenant_id = tenant_id
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def check_client(client_id: str, secret: str) -> bool:
        return client_id in CLIENTS and hmac.compare_digest(secret.encode(), CLIENT_SECRET.encode())

    def issue(self, client_id: str, ttl: int) -> str:
        now = time.time()
        claims = {"sub": client_id, "tenantUid": self._tenant_id, "iss": "incydr-sandbox", "iat": int(now),
                  "exp": int(now + ttl), "jti": secrets.token_hex(8), "permissions": sorted(CLIENTS[client_id])}
        token = jwt.encode(claims, self._key)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}  # forget expired ones
            self._tokens[token] = (client_id, now + ttl)
        return token

    def client_of(self, token: str) -> str | None:
        """The API client a live token belongs to; None if unknown, forged, expired or revoked."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        try:
            jwt.decode(token, self._key)
        except jwt.InvalidToken:
            return None
        return entry[0]

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count


def basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        client_id, sep, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (client_id, secret) if sep else None


def bearer_token(headers: Mapping[str, str]) -> str:
    header = headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def code42_client(request: Request) -> str:
    """Dependency: the API client of a valid bearer token, else 401."""
    client = request.app.state.sandbox.tokens.client_of(bearer_token(request.headers))
    if client is None:
        raise ApiError(401, "Unauthorized", "missing, invalid, expired or revoked bearer token")
    return client


def permission(name: str):
    """Dependency factory: a valid token whose client holds ``name``, else 401 / 403."""

    def check(request: Request) -> str:
        client = code42_client(request)
        if name not in CLIENTS[client]:
            raise ApiError(403, "Forbidden", f'API client {client} lacks the "{name}" permission')
        return client

    return check


def knowbe4_key(request: Request) -> None:
    """Dependency: the KnowBe4 Reporting API key as a bearer token, else 401."""
    if not hmac.compare_digest(bearer_token(request.headers).encode(), KSAT_API_KEY.encode()):
        raise ApiError(401, "Unauthorized", "invalid KnowBe4 API key")

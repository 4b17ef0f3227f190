"""Minimal HS256 JSON Web Tokens: enough for ``tenantUid`` to be read the way Code42 clients do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


class InvalidToken(ValueError):
    pass


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict, key: bytes) -> str:
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64encode(signature)}"


def decode(token: str, key: bytes) -> dict:
    """The claims of a token signed with ``key``; InvalidToken if it is malformed or forged."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64decode(signature)):
            raise InvalidToken("bad signature")
        claims = json.loads(_b64decode(payload))
    except (ValueError, UnicodeError) as exc:
        raise InvalidToken(str(exc)) from None
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    return claims

"""Code42 OAuth as a requests auth object: token fetched, cached, refreshed, retried once on 401."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from apiclient.masking import mask
from code42_hook.errors import Code42ApiError, Code42PayloadError

TOKEN_ENDPOINT = "/v1/oauth"


def jwt_claims(token: str) -> dict:
    """The JWT's payload (no signature check: the token came straight from Code42 over TLS)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise Code42PayloadError(TOKEN_ENDPOINT, None, f"access token is not a JWT ({exc.__class__.__name__})") from None


class Code42TokenAuth(AuthBase):
    """``Authorization: Bearer`` with a token from ``POST /v1/oauth`` (HTTP Basic client id/secret).

    The token is cached and refreshed shortly before it expires (60 s early, or a tenth of its
    lifetime for short tokens); a 401 on a request drops it and resends that request once with a
    fresh token. Thread-safe.
    """

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.base_url = ""
        self.timeout: tuple[float, float] = (10.0, 60.0)
        self.session: requests.Session | None = None
        self.on_fetch: Callable[[], None] | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        mask(client_secret)

    def __eq__(self, other) -> bool:  # requests compares auth objects when merging settings
        return isinstance(other, Code42TokenAuth) and other.client_id == self.client_id

    def __hash__(self) -> int:
        return hash(self.client_id)

    # --- token -------------------------------------------------------------------------------
    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def claims(self) -> dict:
        return jwt_claims(self.token())

    def _fetch(self) -> None:
        post = (self.session or requests).post
        response = post(
            self.base_url + TOKEN_ENDPOINT,
            auth=HTTPBasicAuth(self.client_id, self._client_secret),
            timeout=self.timeout,
        )
        if self.on_fetch:
            self.on_fetch()
        if response.status_code in (401, 403):
            raise Code42ApiError(
                "POST", TOKEN_ENDPOINT, response.status_code,
                "bad credentials: Code42 refused the Client ID / Client Secret",
            )
        if response.status_code == 429 or response.status_code >= 500:
            response.raise_for_status()  # the hook's retry policy retries HTTPError of these statuses
        if response.status_code != 200:
            raise Code42ApiError("POST", TOKEN_ENDPOINT, response.status_code, "token request failed")
        try:
            body = response.json()
            token, lifetime = body["access_token"], float(body.get("expires_in", 900))
        except (ValueError, KeyError, TypeError):
            raise Code42PayloadError(TOKEN_ENDPOINT, None, "no access_token in the answer: is this a Code42 API?") \
                from None
        mask(token)
        self._token = token
        self._refresh_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)

    # --- requests hook -------------------------------------------------------------------------
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        request.register_hook("response", self._resend_once_on_401)
        return request

    def _resend_once_on_401(self, response: requests.Response, **kwargs) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, "code42_resent", False):
            return response
        self.invalidate()
        response.content  # noqa: B018 - drain so the connection can be reused
        response.close()
        retry = response.request.copy()
        retry.code42_resent = True  # type: ignore[attr-defined]
        retry.headers["Authorization"] = f"Bearer {self.token()}"
        resent = response.connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent

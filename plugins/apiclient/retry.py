"""Retry policy (tenacity): back off with jitter on 429 (honouring Retry-After), 5xx, dropped
connections, timeouts and truncated bodies; give up after the connection's ``max_retries``."""

from __future__ import annotations

import requests
import tenacity

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 300.0


class RetryableStatus(Exception):
    """A response whose status says "try again later"."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


class TruncatedBody(Exception):
    """A 2xx response whose body is not valid JSON (cut off in transit, or a broken page)."""


TRANSIENT = (
    RetryableStatus,
    TruncatedBody,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.HTTPError):  # raised by the token fetch for 429/5xx
        return exc.response is not None and exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, TRANSIENT)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


class wait_retry_after_or_backoff(tenacity.wait.wait_base):
    """Wait what the server's Retry-After asks (plus a little jitter), else exponential + jitter."""

    def __init__(self, initial: float, maximum: float = 60.0) -> None:
        self.backoff = tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self.jitter = tenacity.wait_random(0, min(initial, 1.0) / 4)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is None and isinstance(exc, requests.HTTPError) and exc.response is not None:
            retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
        if retry_after is not None:
            return retry_after + self.jitter(retry_state)
        return self.backoff(retry_state)

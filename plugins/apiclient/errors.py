"""Errors an API client raises. Messages name the API, the endpoint (and page) and never hold secrets.

Each API has its own family (``code42_hook.errors``, ``knowbe4_hook.errors``): subclasses of these,
so a caller catches one API's failures by its names, or any API's by these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class ApiClientError(Exception):
    """Base class of an API client's errors; ``api`` names the API in messages."""

    api: ClassVar[str] = "API"


class ConfigError(ApiClientError):
    """The connection is unusable as configured (e.g. a Base URL that is not the API's host)."""


class ApiError(ApiClientError):
    """The API answered with an error status that retrying does not fix (or retries ran out)."""

    def __init__(self, method: str, endpoint: str, status: int | None, detail: str, page: int | None = None,
                 api: str | None = None):
        self.method, self.endpoint, self.status, self.detail, self.page = method, endpoint, status, detail, page
        where = f"{method} {endpoint}" + (f" page {page}" if page is not None else "")
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{api or self.api} {where}: {status_text}: {detail}")


class PayloadError(ApiClientError):
    """A 2xx response whose body is not what the endpoint's contract promises."""

    def __init__(self, endpoint: str, page: int | None, problem: str, api: str | None = None):
        self.endpoint, self.page, self.problem = endpoint, page, problem
        where = endpoint + (f" page {page}" if page is not None else "")
        super().__init__(f"{api or self.api} {where}: unexpected response: {problem}")


class OutcomeUnknown(ApiClientError):
    """A call that creates something may or may not have been processed (5xx, timeout, connection
    lost): it is not retried; the caller looks for what it created before it ever sends it again."""


@dataclass(frozen=True)
class Errors:
    """The error classes one API's hook raises."""

    config: type[ConfigError] = ConfigError
    api: type[ApiError] = ApiError
    payload: type[PayloadError] = PayloadError
    outcome_unknown: type[OutcomeUnknown] = OutcomeUnknown

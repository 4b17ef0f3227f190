"""Errors the Code42 hook raises. Messages name the endpoint (and page) and never hold secrets."""

from __future__ import annotations


class Code42Error(Exception):
    """Base class of the hook's errors."""


class Code42ConfigError(Code42Error):
    """The connection is unusable as configured (e.g. a Base URL that is not a Code42 API host)."""


class Code42ApiError(Code42Error):
    """The API answered with an error status that retrying does not fix (or retries ran out)."""

    def __init__(self, method: str, endpoint: str, status: int | None, detail: str, page: int | None = None,
                 api: str = "Code42"):
        self.method, self.endpoint, self.status, self.detail, self.page = method, endpoint, status, detail, page
        where = f"{method} {endpoint}" + (f" page {page}" if page is not None else "")
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{api} {where}: {status_text}: {detail}")


class Code42PayloadError(Code42Error):
    """A 2xx response whose body is not what the endpoint's contract promises."""

    def __init__(self, endpoint: str, page: int | None, problem: str, api: str = "Code42"):
        self.endpoint, self.page, self.problem = endpoint, page, problem
        where = endpoint + (f" page {page}" if page is not None else "")
        super().__init__(f"{api} {where}: unexpected response: {problem}")


class OutcomeUnknown(Code42Error):
    """A call that creates something may or may not have been processed (5xx, timeout, connection
    lost): it is not retried; the caller looks for what it created before it ever sends it again."""

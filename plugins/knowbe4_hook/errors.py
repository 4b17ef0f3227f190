"""Errors the KnowBe4 hooks raise: the API client's errors (``apiclient.errors``) named KnowBe4."""

from __future__ import annotations

from apiclient import errors


class KnowBe4Error(errors.ApiClientError):
    """Base class of the KnowBe4 hooks' errors."""

    api = "KnowBe4"


class KnowBe4ConfigError(KnowBe4Error, errors.ConfigError):
    """The connection is unusable as configured (e.g. a Base URL that is not a KnowBe4 API host)."""


class KnowBe4ApiError(KnowBe4Error, errors.ApiError):
    """KnowBe4 answered with an error status that retrying does not fix (or retries ran out)."""


class KnowBe4PayloadError(KnowBe4Error, errors.PayloadError):
    """A 2xx response whose body is not what the endpoint's contract promises."""


class OutcomeUnknown(KnowBe4Error, errors.OutcomeUnknown):
    """A KnowBe4 call that creates something may or may not have been processed (see the base)."""


class EventsRateLimited(KnowBe4Error):
    """429 with a wait longer than the hook may sleep (or none): stop, carry the work to a later run."""

    def __init__(self, endpoint: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        wait = f"Retry-After {retry_after:.0f} s" if retry_after is not None else "no Retry-After"
        super().__init__(f"KnowBe4 User Event API {endpoint}: HTTP 429 ({wait}): stopping until a later run")


KNOWBE4_ERRORS = errors.Errors(KnowBe4ConfigError, KnowBe4ApiError, KnowBe4PayloadError, OutcomeUnknown)

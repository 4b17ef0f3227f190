"""Errors the Code42 hook raises: the API client's errors (``apiclient.errors``) named Code42."""

from __future__ import annotations

from apiclient import errors


class Code42Error(errors.ApiClientError):
    """Base class of the hook's errors."""

    api = "Code42"


class Code42ConfigError(Code42Error, errors.ConfigError):
    """The connection is unusable as configured (e.g. a Base URL that is not a Code42 API host)."""


class Code42ApiError(Code42Error, errors.ApiError):
    """The API answered with an error status that retrying does not fix (or retries ran out)."""


class Code42PayloadError(Code42Error, errors.PayloadError):
    """A 2xx response whose body is not what the endpoint's contract promises."""


class OutcomeUnknown(Code42Error, errors.OutcomeUnknown):
    """A Code42 call that creates something may or may not have been processed (see the base)."""


CODE42_ERRORS = errors.Errors(Code42ConfigError, Code42ApiError, Code42PayloadError, OutcomeUnknown)

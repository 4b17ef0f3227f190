"""Code42's Base URL rule: an Incydr API host ``https://api.<region>.code42.com`` (or loopback)."""

from __future__ import annotations

from apiclient.urls import normalize_base_url as _normalize
from code42_hook.errors import Code42ConfigError

CODE42_REGIONS = ("us", "us2", "ie", "gov", "us7", "uk", "au", "ca", "de", "za")
CODE42_API_HOSTS = frozenset(f"api.{region}.code42.com" for region in CODE42_REGIONS)


def normalize_base_url(value: str | None) -> str:
    """``scheme://host[:port]`` of a Code42 API (any loopback host is allowed, for the sandbox)."""
    return _normalize(value, api="Code42", hosts=CODE42_API_HOSTS, example="https://api.us.code42.com",
                      expected="a Code42 API host; expected https://api.<region>.code42.com with region one of "
                               + ", ".join(CODE42_REGIONS),
                      error=Code42ConfigError)

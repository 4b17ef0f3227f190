"""Connection extras every API hook shares (rate, retries, timeouts, TLS, pages in flight), validated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from apiclient.errors import ConfigError
from apiclient.throttle import store_problem


@dataclass(frozen=True)
class ApiSettings:
    """Connection extras, validated. Keys not listed here are refused (typos fail loudly)."""

    rate_limit_per_minute: float = 120.0
    max_retries: int = 6
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_backoff: float = 1.0
    verify: bool = True
    pages_in_flight: int = 4  # once a listing's totalCount is known, fetch up to this many pages at once
    # Where the client's rate limit schedule lives (apiclient.throttle): empty = a file lock on this
    # host; redis://host:port/db = one schedule for every worker on every host.
    rate_limit_store: str = ""

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict[str, Any], *, error: type[ConfigError] = ConfigError,
                   **defaults: Any) -> ApiSettings:
        """The settings of ``extra`` over ``defaults``; ``error`` (the API's config error) refuses them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise error(
                f"connection {conn_id!r}: unknown extra field(s) {unknown}; allowed: {sorted(known)}"
            )
        values = dict(defaults)
        for name, value in extra.items():
            if name == "rate_limit_store":
                values[name] = cls._store(conn_id, value, error)
                continue
            kind = bool if name == "verify" else (int if name in ("max_retries", "pages_in_flight") else float)
            try:
                values[name] = value if kind is bool and isinstance(value, bool) else kind(value)
            except (TypeError, ValueError):
                raise error(f"connection {conn_id!r}: extra {name}={value!r} is not a {kind.__name__}") \
                    from None
            if kind is not bool and values[name] < (0 if name == "max_retries" else 0.001):
                raise error(f"connection {conn_id!r}: extra {name}={value!r} must be positive")
        return cls(**values)

    @staticmethod
    def _store(conn_id: str, value: Any, error: type[ConfigError]) -> str:
        url = (value or "").strip() if isinstance(value, str | None) else value
        problem = store_problem(url) if isinstance(url, str) else f"{type(url).__name__} is not a URL"
        if problem:
            raise error(f"connection {conn_id!r}: extra rate_limit_store: {problem}")
        return url

"""Time at the API edge is UTC epoch-ms or ISO-8601; inside it is timezone-aware UTC.

The one copy of these conversions: the hooks write times into requests with them and the core's
field maps read the APIs' times with them. It lives here, below both, because it is about the APIs'
wire formats and imports nothing but the standard library (the Airflow-free core may use it; the
hooks need not import the core).
"""

from __future__ import annotations

from datetime import UTC, datetime


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """``value`` as a plain ``datetime`` in UTC (a pendulum ``DateTime`` from an Airflow context too:
    its arithmetic could drop the stdlib zone); a naive datetime (or no datetime) is refused, naming ``what``."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} {value!r} has no timezone; pass a timezone-aware UTC datetime")
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
                    tzinfo=UTC)


def to_epoch_ms(value: datetime, what: str = "datetime") -> int:
    return int(require_aware(value, what).timestamp() * 1000)


def to_iso_ms(value: datetime, what: str = "datetime") -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (``2026-11-01T00:00:00.000Z``), as Code42 queries take it."""
    value = require_aware(value, what)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def from_epoch_ms(value: float | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""Time at the API edge is UTC epoch-ms or ISO-8601; inside it is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def from_epoch_ms(value: float | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Values read back from SQLite are naive (stored as UTC text): make them aware again."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} {value!r} has no timezone; pass a timezone-aware UTC datetime")
    return value.astimezone(UTC)

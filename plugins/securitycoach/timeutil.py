"""Time in the warehouse is timezone-aware UTC. The API edge's conversions (epoch-ms, ISO-8601, the
aware-UTC check) are ``apiclient.timeutil``'s, re-exported here for the core; ``as_utc`` is the
core's own (values read back from SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime

from apiclient.timeutil import from_epoch_ms, from_iso, require_aware

__all__ = ["as_utc", "from_epoch_ms", "from_iso", "require_aware"]


def as_utc(value: datetime | None) -> datetime | None:
    """Values read back from SQLite are naive (stored as UTC text): make them aware again."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

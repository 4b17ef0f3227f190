"""Sandbox settings: the synthetic tenant's shape and the fault knobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

DAY_MS = 86_400_000

# Documented credentials (sandbox/README.md).
CLIENTS = {
    "sandbox-client": {"alert_rules", "alerts_sessions"},
    "sandbox-no-rules": {"alerts_sessions"},
    "sandbox-no-sessions": {"alert_rules"},
}
CLIENT_SECRET = "sandbox-secret"
KSAT_API_KEY = "sandbox-ksat-key"


@dataclass(frozen=True)
class TenantConfig:
    seed: int = 42
    anchor_ms: int = 0  # data covers [anchor - days, anchor]
    days: int = 30
    sessions: int = 1440
    actors: int = 40

    @property
    def span_start_ms(self) -> int:
        return self.anchor_ms - self.days * DAY_MS


@dataclass
class Faults:
    """Runtime-adjustable faults (flags at start, ``POST /_sandbox/faults`` later)."""

    fail_429_every: int = 0
    retry_after: int = 1
    rate_limit_per_min: int = 0
    fail_5xx_rate: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    drop_next: int = 0
    latency_ms: int = 0
    token_ttl: int = 900
    malformed_every: int = 0
    missing_key_every: int = 0

    def update(self, values: dict) -> None:
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        for name, value in values.items():
            current = getattr(self, name)
            if isinstance(current, list):
                setattr(self, name, [int(v) for v in value])
            else:
                setattr(self, name, type(current)(value))

    def as_dict(self) -> dict:
        return asdict(self)


def parse_anchor(value: str | None) -> int:
    """Epoch ms of an ISO-8601 UTC time or an epoch-ms number; default: now, to the minute."""
    if not value:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return int(now.timestamp() * 1000)
    if value.isdigit():
        return int(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)

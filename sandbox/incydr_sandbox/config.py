"""Sandbox settings: the synthetic tenant's shape, the fault knobs and the documented credentials."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# --- credentials (documented in sandbox/README.md) ----------------------------------------------
ALERT_RULES_READ = "Alert Rules read"
ALERTS_SESSIONS_READ = "Alerts and Sessions read"
WATCHLISTS_READ = "Watchlists read"
# Beyond the seed's Read permissions: adding a note to a session (the optional Code42 write-back)
ALERTS_SESSIONS_UPDATE = "Alerts and Sessions update"
CLIENT_SECRET = "sandbox-secret"
DEFAULT_CLIENT_ID = "sandbox-client"
CLIENTS: dict[str, frozenset[str]] = {
    DEFAULT_CLIENT_ID: frozenset({ALERT_RULES_READ, ALERTS_SESSIONS_READ, WATCHLISTS_READ}),
    # the seed's two permissions only: Watchlists v2 answers 403
    "sandbox-no-watchlists": frozenset({ALERT_RULES_READ, ALERTS_SESSIONS_READ}),
    # the default client's permissions plus Alerts and Sessions update (session notes)
    "sandbox-writer": frozenset({ALERT_RULES_READ, ALERTS_SESSIONS_READ, WATCHLISTS_READ, ALERTS_SESSIONS_UPDATE}),
    "sandbox-no-rules": frozenset({ALERTS_SESSIONS_READ}),
    "sandbox-no-sessions": frozenset({ALERT_RULES_READ}),
}
KSAT_API_KEY = "sandbox-ksat-key"
KSAT_EVENTS_KEY = "sandbox-events-key"  # the KnowBe4 User Event API key (another key than the Reporting API's)
SLACK_BOT_TOKEN = "xoxb-sandbox-bot-token"  # the Slack Web API emulation accepts this token only


def default_anchor_ms() -> int:
    """Now, rounded down to the minute, in epoch ms."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return int(now.timestamp() * 1000)


def parse_anchor(value: str | int | None) -> int:
    """Epoch ms of an ISO-8601 time (naive means UTC) or an epoch-ms number; None: now, to the minute."""
    if value is None or value == "":
        return default_anchor_ms()
    if isinstance(value, int) or str(value).lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"anchor {value!r} is neither ISO-8601 nor epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class TenantConfig:
    """The synthetic tenant. Everything it serves is a pure function of these values and the clock."""

    seed: int = 42
    anchor_ms: int = field(default_factory=default_anchor_ms)  # data covers [anchor - days, anchor]
    days: int = 30
    sessions: int = 1440  # sessions begun over the whole span (~48/day by default)
    actors: int = 40

    def __post_init__(self) -> None:
        if self.days < 1 or self.sessions < 1 or self.actors < 2:
            raise ValueError("days >= 1, sessions >= 1 and actors >= 2 are required")

    @property
    def span_start_ms(self) -> int:
        return self.anchor_ms - self.days * DAY_MS


def _knob(default, text: str):
    """A fault knob: its default and the help text its CLI flag shows."""
    return field(default=default, metadata={"help": text})


@dataclass
class Faults:
    """Fault knobs: set by CLI flags at start, changed at runtime with ``POST /_sandbox/faults``.

    "Data requests" are every ``/v1/*`` and ``/v2/*`` request except ``POST /v1/oauth`` (KnowBe4's
    ``/v1/users`` and ``/v1/groups`` included); "pages" are the list responses among them.
    """

    fail_429_every: int = _knob(0, "every Nth data request -> 429 with Retry-After")
    retry_after: int = _knob(1, "seconds, for fail_429_every and fail_next 429s")
    rate_limit_per_min: int = _knob(0, "per API client (or KnowBe4 key), sliding 60 s window; 0 = off")
    ksat_rate_limit_per_sec: int = _knob(0, "KnowBe4 endpoints, per key, sliding 1 s window; 0 = off")
    fail_5xx_rate: float = _knob(0.0, "fraction of data requests -> 503/500 (deterministic: seed + counter)")
    fail_next: list[int] = field(default_factory=list,
                                 metadata={"help": "statuses for the next data requests, in order"})
    drop_next: int = _knob(0, "next N data requests: connection closed without a response")
    latency_ms: int = _knob(0, "added to every data request")
    stall_next: int = _knob(0, "next N data requests: answered only after stall_ms (a client read timeout)")
    stall_ms: int = _knob(5000, "how long a stalled request waits, in ms (stall_next)")
    token_ttl: int = _knob(900, "seconds; expires_in of newly issued tokens")
    malformed_every: int = _knob(0, "every Nth data page: 200 with a truncated JSON body")
    missing_key_every: int = _knob(0, "every Nth data page: its first item lacks a required key")
    advance_per_page_min: float = _knob(0.0, "every data page moves the clock on (data changes while paging)")
    hostile_strings: bool = _knob(False, "names, summaries, rule names... carry HTML/JS, formulas, quotes, controls")
    # The Slack Web API emulation (/slack/api/*) is not a data path: only these knobs touch it.
    slack_ratelimited_next: int = _knob(0, "next N Slack API calls -> HTTP 429 \"ratelimited\" with Retry-After")
    slack_retry_after: int = _knob(1, "seconds, for slack_ratelimited_next")
    # The KnowBe4 User Event API (/events, /event_types, /statuses) is not a data path either.
    events_seats: int = _knob(0, "seats of the account (quota 10 per seat per day; /v1/account); 0 = KSAT users")
    events_429_next: int = _knob(0, "next N User Event API calls -> 429 with Retry-After: events_retry_after")
    events_retry_after: int = _knob(1, "seconds, for events_429_next")
    events_fail_after_post_next: int = _knob(0, "next N POST /events: processed, then answered 504 (lost answer)")

    def update(self, values: dict) -> None:
        """Set knobs from a JSON object; unknown names or bad values raise ValueError, nothing is set."""
        if not isinstance(values, dict):
            raise TypeError("expected a JSON object of fault knobs")
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        staged = copy.deepcopy(self)
        for name, value in values.items():
            setattr(staged, name, _coerce(name, getattr(self, name), value))
        if not 0.0 <= staged.fail_5xx_rate <= 1.0:
            raise ValueError("fail_5xx_rate must be between 0 and 1")
        if staged.token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
        for f in fields(self):
            setattr(self, f.name, getattr(staged, f.name))

    def as_dict(self) -> dict:
        return asdict(self)

    def copy(self) -> Faults:
        return copy.deepcopy(self)


def _coerce(name: str, current, value):
    try:
        if isinstance(current, bool):  # true or false, nothing else
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(current, list):
            codes = [int(v) for v in (value if isinstance(value, list) else [value])]
            if any(not 100 <= c <= 599 for c in codes):
                raise ValueError
            return codes
        if isinstance(value, bool):
            raise TypeError
        coerced = type(current)(value)
    except (TypeError, ValueError):
        raise ValueError(f"bad value for {name}: {value!r}") from None
    if coerced < 0:
        raise ValueError(f"{name} must not be negative")
    return coerced


@dataclass
class SandboxConfig:
    """Everything ``build_app`` needs: the tenant, the initial faults, who may call the admin API."""

    tenant: TenantConfig = field(default_factory=TenantConfig)
    faults: Faults = field(default_factory=Faults)
    admin_any_host: bool = False  # by default /_sandbox/* answers loopback clients only
    smtp_host: str = "127.0.0.1"  # the SMTP delivery sink
    smtp_port: int = 0  # 0 picks a free port

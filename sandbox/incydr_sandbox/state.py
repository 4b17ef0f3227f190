"""Mutable server state: the clock, faults, counters, tokens, rate windows. One per running sandbox."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from incydr_sandbox.auth import TokenStore
from incydr_sandbox.config import MINUTE_MS, SandboxConfig
from incydr_sandbox.sinks import Sinks
from incydr_sandbox.slack import SlackWorkspace
from incydr_sandbox.tenant import Tenant
from incydr_sandbox.user_events import CALLS_PER_SEAT_PER_DAY, UserEvents


class QueryCache:
    """The matches of the last few filtered queries, so paging through one is not a rescan per page.

    Keys include the sandbox clock, so moving the clock never serves stale matches.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[], list]) -> list:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tenant = Tenant(config.tenant)
        self.tokens = TokenStore(config.tenant.seed, self.tenant.tenant_id)
        self.queries = QueryCache()
        self.sinks = Sinks()  # what deliveries arrived (webhook, SMTP, Slack); kept across reset()
        self.slack = SlackWorkspace(self.tenant.directory, config.tenant.seed)  # who has a Slack account
        self.user_events = UserEvents(config.tenant.seed)  # KnowBe4 User Event API; cleared by reset()
        self.lock = threading.Lock()
        # Set by the server: finds the live connection of a client address (for the drop_next fault).
        self.find_connection: Callable[[tuple], object | None] = lambda client: None
        self.reset()

    def reset(self) -> None:
        """Faults back to their start values, counters to zero, the clock back to the anchor."""
        with self.lock:
            self.faults = self.config.faults.copy()
            self.clock_ms = self.config.tenant.anchor_ms
            self.stats: Counter = Counter()
            self.by_path: Counter = Counter()
            self.by_status: Counter = Counter()
            self.data_requests = 0
            self.pages_served = 0
            self.windows: dict[str, deque] = {}
        self.queries.clear()
        self.user_events.clear()

    @property
    def seats(self) -> int:
        """Seats of the KnowBe4 account (``/v1/account``): the ``events_seats`` knob, else one per KSAT user."""
        return self.faults.events_seats or len(self.tenant.directory.ksat_users)

    @property
    def events_quota(self) -> int:
        return CALLS_PER_SEAT_PER_DAY * self.seats

    # --- the clock ------------------------------------------------------------------------------
    def advance(self, minutes: float) -> int:
        if minutes < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self.lock:
            self.clock_ms += round(minutes * MINUTE_MS)
            return self.clock_ms

    # --- counters -------------------------------------------------------------------------------
    def next_data_request(self) -> tuple[int, int | None, bool]:
        """Count a data request; (its number, a fail_next status to answer with, drop it?)."""
        with self.lock:
            self.data_requests += 1
            f = self.faults
            status = f.fail_next.pop(0) if f.fail_next else None
            drop = status is None and f.drop_next > 0
            if drop:
                f.drop_next -= 1
            return self.data_requests, status, drop

    def take_stall(self) -> bool:
        """Should this data request stall (``stall_next``)? Counts it down."""
        with self.lock:
            if self.faults.stall_next <= 0:
                return False
            self.faults.stall_next -= 1
            self.stats["stalled"] += 1
            return True

    def page_clock(self) -> int:
        """The clock a listing's page is computed at. With ``advance_per_page_min`` the clock moves on
        in the same locked step, so pages served at once each see a clock of their own and the last
        page computed is the one that saw the latest clock (``page_response(clock_moved=True)``)."""
        with self.lock:
            clock = self.clock_ms
            self._advance_per_page()
            return clock

    def next_page(self, advance: bool = True) -> int:
        with self.lock:
            self.pages_served += 1
            if advance:
                self._advance_per_page()
            return self.pages_served

    def _advance_per_page(self) -> None:
        if self.faults.advance_per_page_min:
            self.clock_ms += round(self.faults.advance_per_page_min * MINUTE_MS)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def snapshot(self) -> dict:
        with self.lock:
            return {**self.stats, "data_requests": self.data_requests, "pages_served": self.pages_served,
                    "clock_ms": self.clock_ms, "by_path": dict(sorted(self.by_path.items())),
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())}}

    # --- rate limits ----------------------------------------------------------------------------
    def over_limit(self, key: str, limit: int, window_s: float) -> float | None:
        """Seconds until ``key`` may send again if it used up ``limit`` requests in the window, else
        None (and the request is counted)."""
        if not limit:
            return None
        now = time.monotonic()
        with self.lock:
            window = self.windows.setdefault(f"{window_s}/{key}", deque())
            while window and window[0] <= now - window_s:
                window.popleft()
            if len(window) >= limit:
                return window[0] + window_s - now
            window.append(now)
        return None

"""KnowBe4 User Event API state: event types, events, request statuses, the per-key daily quota,
and every call that arrived (for tests and the demo to read back with ``GET /_sandbox/user-events``).

Like KnowBe4 (support article "User Event API"): 10 calls per seat per day for a key. The day is the
sandbox clock's UTC day, so ``POST /_sandbox/advance`` moves tests into the next day's quota. Every
call counts, refused ones included; past the quota the answer is 429 with ``Retry-After`` = seconds
to the next UTC day. Seats: the ``events_seats`` fault knob, or (0) the number of KSAT users.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from incydr_sandbox.config import DAY_MS
from incydr_sandbox.rand import iso_ms

CALLS_PER_SEAT_PER_DAY = 10


@dataclass
class UserEvents:
    seed: int
    event_types: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # live events (DELETE removes them)
    deleted: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # every call: method, path, day, status, external_id
    used: dict[int, int] = field(default_factory=dict)  # UTC day number -> calls made that day
    lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: int = 0

    def new_id(self, kind: str) -> str:
        with self.lock:
            self._counter += 1
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"incydr-sandbox/{self.seed}/{kind}/{self._counter}"))

    def next_type_id(self) -> int:
        with self.lock:
            self._counter += 1
            return 2_372_000_000 + self._counter

    def take_call(self, clock_ms: int, quota: int) -> int | None:
        """Count one call of today's quota; seconds until the next UTC day if the quota is used up
        (the call is counted either way, as KnowBe4 counts refused calls)."""
        day = clock_ms // DAY_MS
        with self.lock:
            self.used[day] = self.used.get(day, 0) + 1
            if self.used[day] > quota:
                return max(1, ((day + 1) * DAY_MS - clock_ms) // 1000)
        return None

    def record(self, entry: dict) -> None:
        with self.lock:
            self.calls.append(entry)

    def as_dict(self, clock_ms: int, quota: int) -> dict:
        day = clock_ms // DAY_MS
        with self.lock:
            return {"event_types": list(self.event_types), "events": list(self.events),
                    "deleted": list(self.deleted), "statuses": list(self.statuses), "calls": list(self.calls),
                    "quota": quota, "used_today": self.used.get(day, 0), "day": iso_ms(day * DAY_MS)[:10]}

    def clear(self) -> None:
        with self.lock:
            for items in (self.event_types, self.events, self.deleted, self.statuses, self.calls):
                items.clear()
            self.used.clear()

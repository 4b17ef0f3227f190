"""The few facts of each session that a listing filters and orders on, kept in flat arrays.

``GET /v1/sessions`` always filters on alert status (``has_alerts`` is true or false) and orders by
end time, and both need the session's plan (which rules alert on it decides when its first alert
is created). A plan costs ~0.1 ms, so a listing over a month of a big tenant would plan every
session of it on every request. Instead each session is planned once, in chunks, the first time a
listing covers it, and three numbers are kept: when it is first observed, when its last event is,
when its first alert is created (or never), and which rules alert on it (a bit per rule slot; its
alerts are created a second apart in slot order, so the alert listing needs no plan either). ``warm()`` plans the whole span up front (the bench
does, so its timings exclude it).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable

CHUNK = 1024
NEVER = -1  # no alert, ever


class SessionFacts:
    def __init__(self, plan: Callable, slots: dict[str, int]) -> None:
        self._slot = slots  # rule key -> slot in catalog.RULES
        self._plan = plan  # index -> SessionPlan (uncached: each session is planned here once)
        self.observed = array("q")
        self.end = array("q")
        self.first_alert = array("q")
        self.rules = array("q")  # bit k: catalog.RULES[k] alerts on it
        self._done = bytearray()  # per chunk
        self._lock = threading.Lock()

    def ensure(self, lo: int, hi: int) -> None:
        """Plan, once, every session of chunks that [lo, hi) touches."""
        for chunk in range(lo // CHUNK, (hi + CHUNK - 1) // CHUNK):
            if chunk < len(self._done) and self._done[chunk]:
                continue
            rows = [self._plan(i) for i in range(chunk * CHUNK, (chunk + 1) * CHUNK)]
            with self._lock:
                grow = (chunk + 1) * CHUNK - len(self.observed)
                if grow > 0:
                    for column in (self.observed, self.end, self.first_alert, self.rules):
                        column.extend([0] * grow)
                    self._done.extend(b"\0" * (chunk + 1 - len(self._done)))
                for i, p in enumerate(rows, chunk * CHUNK):
                    times = p.alert_times()
                    self.observed[i], self.end[i] = p.observed, p.end
                    self.first_alert[i] = times[0] if times else NEVER
                    self.rules[i] = sum(1 << self._slot[r.key] for r in p.rules)
                self._done[chunk] = 1

    def visible(self, i: int, clock: int) -> bool:
        return self.observed[i] <= clock

    def alerted(self, i: int, clock: int) -> bool:
        return 0 <= self.first_alert[i] <= clock

    def end_at(self, i: int, clock: int) -> int:
        """endTime shown at ``clock`` (as ``SessionPlan.end_at``)."""
        return min(self.end[i], max(clock, self.observed[i]))

    def alerts(self, i: int) -> list[tuple[int, int]]:
        """(rule slot, createdAt) of every alert session ``i`` ever gets, in time order (as
        ``SessionPlan.alert_times``: one per rule, in slot order, a second apart)."""
        first, mask = self.first_alert[i], self.rules[i]
        if first == NEVER:
            return []
        slots = [k for k in range(mask.bit_length()) if mask >> k & 1]
        return [(slot, first + n * 1000) for n, slot in enumerate(slots)]

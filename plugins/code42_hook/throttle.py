"""Client-side request throttle: keeps the request rate at or under the connection's limit."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Evenly spaced requests: at most ``per_minute`` per minute, thread-safe.

    Each caller reserves the next free slot and sleeps until it. Spacing (rather than bursting a
    minute's budget) keeps a long run under any sliding-window limit on the server side.
    """

    def __init__(self, per_minute: float, clock=time.monotonic, sleep=time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute}")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

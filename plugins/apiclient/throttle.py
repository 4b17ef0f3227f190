"""Client-side request throttle: keeps the request rate at or under the connection's limit.

A limit belongs to the API client, not to one hook: Code42 counts every request of a Client ID,
whichever task or process sends it. With a ``shared_key`` the limiter keeps its schedule in a small
file under a lock (``fcntl.flock``), so every process on the host using the same key (the same
Base URL and Client ID: parallel DAG runs, backfill runs, a CLI) draws from one budget.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

# Pace a little under the limit: the server counts arrivals in a sliding window, and arrival times
# jitter by a few milliseconds, so exact spacing would now and then put limit + 1 in a window.
HEADROOM = 0.99


def throttle_dir() -> Path:
    """Where shared schedules live: ``$CODE42_THROTTLE_DIR`` or ``<tmp>/code42-throttle``."""
    return Path(os.environ.get("CODE42_THROTTLE_DIR") or Path(tempfile.gettempdir()) / "code42-throttle")


class RateLimiter:
    """Evenly spaced requests: at most ``per_minute`` per minute, thread-safe; with ``shared_key``
    also across processes on this host.

    Each caller reserves the next free slot and sleeps until it. Spacing (rather than bursting a
    minute's budget) keeps a long run under any sliding-window limit on the server side.
    """

    def __init__(self, per_minute: float, clock=None, sleep=time.sleep, *, shared_key: str | None = None,
                 headroom: float = HEADROOM) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute}")
        self.per_minute = per_minute
        self.interval = 60.0 / (per_minute * headroom)
        # A shared schedule needs a clock every process reads alike: the wall clock.
        self._clock = clock or (time.time if shared_key else time.monotonic)
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.path: Path | None = None
        if shared_key:
            digest = hashlib.sha256(shared_key.encode()).hexdigest()[:24]
            self.path = throttle_dir() / f"{digest}.slot"

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            if self.path is None:
                slot = max(now, self._next)
                self._next = slot + self.interval
            else:
                slot = self._reserve_shared(now)
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve_shared(self, now: float) -> float:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
            f.seek(0)
            try:
                booked = float(f.read() or 0.0)
            except ValueError:  # a torn or foreign file: start afresh
                booked = 0.0
            if booked > now + 3600:  # the wall clock stepped back: the old schedule means nothing now
                booked = now
            slot = max(now, booked)
            f.seek(0)
            f.truncate()
            f.write(repr(slot + self.interval).encode())
            f.flush()
        return slot

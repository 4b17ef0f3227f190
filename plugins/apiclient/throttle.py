"""Client-side request throttle: keeps the request rate at or under the connection's limit.

A limit belongs to the API client, not to one hook: Code42 counts every request of a Client ID,
whichever task, process or host sends it. Requests are spaced evenly (one "next free slot" per
client, reserved atomically), which keeps a long run under the server's sliding window. Where the
slot lives is the connection's ``rate_limit_store``:

* empty (the default): with a ``shared_key``, a small file under a lock (``fcntl.flock``) in
  ``$CODE42_THROTTLE_DIR`` or ``<tmp>/code42-throttle``: every process on this host using the same
  key (the same Base URL and Client ID: parallel DAG runs, backfill runs, a CLI) draws from one
  budget. One host only.
* ``redis://host:port/db`` (``rediss://``, ``unix://``): one Redis key per client, so every worker
  on every host (Celery workers, Kubernetes pods, the api-server's connection test) shares it. The
  slot is pyrate-limiter's GCRA with a burst of one: a theoretical arrival time per key, advanced by
  one interval per request in one Lua script. It stamps slots with each host's wall clock: keep the
  hosts' clocks synchronised (NTP); a host ahead by d ms shortens one spacing by d.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

# Pace a little under the limit: the server counts arrivals in a sliding window, and arrival times
# jitter by a few milliseconds, so exact spacing would now and then put limit + 1 in a window.
HEADROOM = 0.99
STORE_SCHEMES = ("redis", "rediss", "unix")
REDIS_KEY_PREFIX = "securitycoach:throttle:"


def throttle_dir() -> Path:
    """Where shared schedules live: ``$CODE42_THROTTLE_DIR`` or ``<tmp>/code42-throttle``."""
    return Path(os.environ.get("CODE42_THROTTLE_DIR") or Path(tempfile.gettempdir()) / "code42-throttle")


def redacted(url: str) -> str:
    """``url`` without its user name and password (for messages)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def store_problem(url: str) -> str | None:
    """Why ``url`` is not a rate limit store (None when it is one, or empty: the file lock)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"{redacted(url)!r} is not a URL ({exc})"
    if parts.scheme not in STORE_SCHEMES:
        return (f"{redacted(url)!r} is not a Redis URL: use redis://host:port/db, rediss://... or "
                "unix:///path (empty: a file lock on this host)")
    if parts.scheme == "unix":
        return None if parts.path else f"{redacted(url)!r} names no socket path"
    if not parts.hostname:
        return f"{redacted(url)!r} names no host"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"{redacted(url)!r}: the database must be a number, got {db!r}"
    return None


class StoreUnavailable(RuntimeError):
    """The rate limit store did not answer (the message names it, without credentials)."""


class _RedisSlots:
    """One client's schedule in Redis: pyrate-limiter's GCRA with a burst of 1 (even spacing)."""

    def __init__(self, url: str, key: str, interval: float) -> None:
        from pyrate_limiter import GCRA, Limiter, Rate, RedisStateStore, SingleBucketFactory, StateBucket
        from redis import Redis

        self.url = url
        client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        rate = Rate(1, max(1, math.ceil(interval * 1000)), burst=1)  # one request per interval, no burst
        bucket = StateBucket([rate], GCRA(), RedisStateStore(client, REDIS_KEY_PREFIX + key))
        # No leaker thread (a GCRA state expires by itself), no buffer added to the computed waits.
        self._limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=0)

    def acquire(self) -> None:
        from redis import RedisError

        try:
            self._limiter.try_acquire()
        except RedisError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise StoreUnavailable(f"rate limit store {redacted(self.url)} unreachable "
                                   f"({exc.__class__.__name__}: {first_line})") from None


class RateLimiter:
    """Evenly spaced requests: at most ``per_minute`` per minute, thread-safe; with ``shared_key``
    also across processes on this host, and with a ``store`` URL across hosts.

    Each caller reserves the next free slot and sleeps until it. Spacing (rather than bursting a
    minute's budget) keeps a long run under any sliding-window limit on the server side.
    """

    def __init__(self, per_minute: float, clock=None, sleep=time.sleep, *, shared_key: str | None = None,
                 headroom: float = HEADROOM, store: str = "", owner: str = "",
                 store_error: type[Exception] = StoreUnavailable) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute}")
        problem = store_problem(store)
        if problem:
            raise ValueError(f"rate limit store {problem}")
        if store and not shared_key:
            raise ValueError("a rate limit store needs a shared_key (the client it limits)")
        self.per_minute = per_minute
        self.interval = 60.0 / (per_minute * headroom)
        # A shared schedule needs a clock every process reads alike: the wall clock.
        self._clock = clock or (time.time if shared_key else time.monotonic)
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.path: Path | None = None
        self.redis: _RedisSlots | None = None
        self._owner, self._store_error = owner, store_error  # who to name, what to raise, when the store fails
        if shared_key:
            digest = hashlib.sha256(shared_key.encode()).hexdigest()[:24]
            if store:
                self.redis = _RedisSlots(store, digest, self.interval)
            else:
                self.path = throttle_dir() / f"{digest}.slot"

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited. Raises ``store_error`` (naming the
        ``owner`` and the store) when the store does not answer."""
        if self.redis is not None:  # reserves and waits itself (thread-safe)
            started = time.monotonic()
            try:
                self.redis.acquire()
            except StoreUnavailable as exc:
                raise self._store_error(f"{self._owner}: {exc}" if self._owner else str(exc)) from None
            return time.monotonic() - started
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

"""Progress of one long listing, for the task log: page N of M, items, requests/minute, ETA, throttle.

The paging strategies report each page they read (``page``); the transport makes one ``Progress``
per listing and ends it (``finish``). A line is logged at most every ``EVERY_S`` seconds while the
listing runs, and one when it has ended. Lines hold counts and the listing's label (API, method,
endpoint path): never a record's content.

Requests and throttle waits are the hook's (``HookStats``) since the listing began: a hook runs
its listings one after another, so they are the listing's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

EVERY_S = 10.0  # at most one progress line this often (and one at the end)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """One listing's pages and items so far, logged to ``logger`` at most every ``every`` seconds.

    ``stats`` is the hook's ``HookStats`` (``requests``, ``throttle_wait_s``), read as differences
    from when the listing began; ``unit`` names what a step is (``page``, or ``piece`` for a
    range cut into windows, whose count grows as pieces are cut).
    """

    def __init__(self, label: str, stats: Any = None, *, logger: logging.Logger | None = None,
                 every: float = EVERY_S, clock: Callable[[], float] = time.monotonic, unit: str = "page") -> None:
        self.label, self.unit, self.every = label, unit, every
        self._stats, self._log, self._clock = stats, logger, clock
        self.started = self._last = clock()
        self._requests0, self._waited0 = self._counters()
        self.pages = 0
        self.items = 0
        self.pages_of: int | None = None  # M: the pages (pieces) known in all, where known
        self.items_of: int | None = None  # the items the listing announced (totalCount), where known

    def _counters(self) -> tuple[int, float]:
        if self._stats is None:
            return 0, 0.0
        return self._stats.requests, self._stats.throttle_wait_s

    def page(self, items: int, *, pages_of: int | None = None, items_of: int | None = None) -> None:
        """A page (piece) was read with ``items`` records; ``pages_of``/``items_of``: the listing's
        size in pages (pieces) and items as now known."""
        self.pages += 1
        self.items += items
        if pages_of is not None:
            self.pages_of = max(pages_of, self.pages)
        if items_of is not None:
            self.items_of = items_of
        now = self._clock()
        if self._log is not None and now - self._last >= self.every:
            self._last = now
            self._log.info("%s", self.line(now))

    def finish(self) -> None:
        """The listing has ended: one last line."""
        if self._log is not None:
            self._log.info("%s", self.line(self._clock(), done=True))

    def eta(self, now: float) -> float | None:
        """Seconds still needed at the rate so far: by items where the total is known, else by pages."""
        elapsed = now - self.started
        if self.items_of is not None and self.items:
            return elapsed * max(0, self.items_of - self.items) / self.items
        if self.pages_of is not None and self.pages:
            return elapsed * max(0, self.pages_of - self.pages) / self.pages
        return None

    def line(self, now: float, *, done: bool = False) -> str:
        elapsed = now - self.started
        requests, waited = (a - b for a, b in zip(self._counters(), (self._requests0, self._waited0), strict=True))
        rate = requests / elapsed * 60 if elapsed > 0 else 0.0
        of = "" if self.pages_of is None else f" of {self.pages_of}{' known' if self.unit == 'piece' else ''}"
        items_of = "" if self.items_of is None or done else f" of {self.items_of}"
        if done:
            plural = "" if self.pages == 1 else "s"
            head = f"done: {self.pages} {self.unit}{plural}, {self.items} items in {duration(elapsed)}"
            tail = ""
        else:
            eta = self.eta(now)
            head = f"{self.unit} {self.pages}{of}, {self.items} items{items_of}"
            tail = f", ETA {duration(eta)}" if eta is not None else ""
        per_request = f" ({waited / requests:.2f} s a request)" if requests else ""
        return (f"{self.label}: {head}, {requests} request{'' if requests == 1 else 's'} ({rate:.1f}/min){tail}, "
                f"throttle waits {waited:.1f} s in all{per_request}")

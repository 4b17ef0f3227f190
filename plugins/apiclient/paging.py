"""Paging strategies: which pages of a listing to ask for, how many at once, and when it has ended.

A strategy pages a ``Listing`` (``request(page)`` -> the page's JSON body, through the throttle and
retries; ``read(page, body)`` -> its validated records) and yields the records in listing order:

- ``PageUntilShort``: pages one at a time until one holds fewer than a page of items (KnowBe4);
- ``PageNumberTotal``: page numbers and the ``totalCount`` the answers announce, with up to
  ``in_flight`` pages asked for at once, and the final page read again when the listing grew at its
  end meanwhile (Code42);
- ``SplitWindows``: a range of a key that never changes (a begin time) cut into sub-windows that
  each fit one answer (Code42 sessions).

``InFlight`` is the one thread pool they share: requests answered in the order asked, and those
still in flight abandoned (not retried, not waited for) when the listing ends, fails or is closed.
Each strategy reports every page it reads to the listing's ``Progress`` (``apiclient.progress``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol, Self

from apiclient.progress import Progress

_local = threading.local()  # .abandoned: the Event of the pool this thread fetches a page for


class PagingAbandoned(Exception):
    """A prefetched page no one will read any more (its listing was closed or failed)."""


def abandoned() -> bool:
    """Was the listing this thread fetches a page for closed? (The transport then stops retrying.)"""
    event = getattr(_local, "abandoned", None)
    return event is not None and event.is_set()


def total_count(body: Any) -> int | None:
    """The listing's size as an answer announces it (``totalCount``), if it does."""
    total = body.get("totalCount") if isinstance(body, dict) else None
    return total if isinstance(total, int) else None


class Listing(Protocol):
    def request(self, page: Any) -> Any:
        """The page's JSON body (a page number, or a window for ``SplitWindows``)."""

    def read(self, page: Any, body: Any) -> list:
        """The page's records, validated; raises the API's payload error naming the page."""

    def measure(self, page: Any, body: Any) -> tuple[int, int]:
        """(items in this answer, ``totalCount``), for ``SplitWindows``."""


class InFlight:
    """Up to ``limit`` requests at once on a thread pool, taken back in the order they were asked
    for. Closing it (leaving the ``with``) abandons the requests still in flight."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self._pending: deque[tuple[Any, Future]] = deque()
        self._abandoned = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._pending)

    def has_room(self) -> bool:
        return len(self._pending) < self.limit

    def submit(self, page: Any, request: Callable[[Any], Any]) -> None:
        self._pending.append((page, self._pool.submit(self._run, request, page)))

    def next(self) -> tuple[Any, Any]:
        """The oldest request's page and answer (its exception, raised)."""
        page, future = self._pending.popleft()
        return page, future.result()

    def close(self) -> None:
        self._abandoned.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, request: Callable[[Any], Any], page: Any) -> Any:
        _local.abandoned = self._abandoned
        try:
            return request(page)
        finally:
            _local.abandoned = None


@dataclass(frozen=True)
class PageUntilShort:
    """Pages ``first_page``, the next... one at a time; a page shorter than ``page_size`` (or empty)
    is the last."""

    page_size: int
    first_page: int = 1

    def records(self, listing: Listing, progress: Progress | None = None) -> Iterator:
        progress = progress or Progress("")
        page = self.first_page
        while True:
            records = listing.read(page, listing.request(page))
            progress.page(len(records))
            yield from records
            if len(records) < self.page_size:
                return
            page += 1


class AnswerLog:
    """``request`` that notes when each page was answered and the ``totalCount`` it announced."""

    def __init__(self, request: Callable[[int], Any]) -> None:
        self._request = request
        self.answered: dict[int, tuple[float, int | None]] = {}

    def __call__(self, page: int) -> Any:
        body = self._request(page)
        self.answered[page] = (time.monotonic(), total_count(body))
        return body

    def grew_after(self, final: int) -> bool:
        """Did the listing grow after its final page was served? Another page of it announced a larger
        ``totalCount`` than the final page did (served later, whatever order the answers reached us
        in); without totals: another page was answered after the final one."""
        when, total = self.answered[final]  # the final page was read: its answer is always here
        others = [(w, t) for n, (w, t) in list(self.answered.items()) if n != final]
        if total is not None:
            return any(t is not None and t > total for _, t in others)
        return any(w > when for w, _ in others)


@dataclass(frozen=True)
class PageNumberTotal:
    """Pages by number from ``first_page``; the listing ends on a short page or once ``totalCount``
    items have been seen.

    Once the first page has told ``totalCount``, the pages still needed are asked for up to
    ``in_flight`` at a time and read in page order with the same stop rule; pages beyond the
    announced total (the listing grew while paging) are then read one by one.

    ``grows_at_end`` (a record's key) says new items only ever join the end of this listing
    (ascending by time). With pages in flight the final page may be served before an earlier one;
    items that arrived in between would be missed. When another page announces a larger
    ``totalCount`` than the final page did, the final page is read again and its new items yielded
    (paging on if it filled), so the listing holds everything present when its last page was
    served, as a one-page-at-a-time listing does. A listing that did not grow costs nothing.
    """

    page_size: int
    first_page: int = 0
    in_flight: int = 1
    grows_at_end: Callable[[Any], Any] | None = None
    name: str = "pages"

    def done(self, records: list, body: Any, seen: int) -> bool:
        total = total_count(body)
        return len(records) < self.page_size or (total is not None and seen >= total)

    def read(self, listing: Listing, page: int, body: Any, progress: Progress) -> list:
        """The page's records, reported to ``progress`` (of the pages ``totalCount`` makes)."""
        records = listing.read(page, body)
        total = total_count(body)
        progress.page(len(records), items_of=total,
                      pages_of=None if total is None else max(1, math.ceil(total / self.page_size)))
        return records

    def records(self, listing: Listing, progress: Progress | None = None) -> Iterator:
        progress = progress or Progress("")
        body = listing.request(self.first_page)
        records = self.read(listing, self.first_page, body, progress)
        seen = len(records)
        done, page = self.done(records, body, seen), self.first_page + 1
        yield from records
        total = total_count(body)
        if not done and total is not None and self.in_flight > 1:
            last = self.first_page + math.ceil(total / self.page_size) - 1
            log = AnswerLog(listing.request)
            with InFlight(self.in_flight, self.name) as pool:
                while not done and (pool or page <= last):
                    while page <= last and pool.has_room():
                        pool.submit(page, log)
                        page += 1
                    number, body = pool.next()
                    records = self.read(listing, number, body, progress)
                    seen += len(records)
                    done = self.done(records, body, seen)
                    yield from records
            if self.grows_at_end is not None and log.grew_after(number):
                # The final page was served before items arrived: read it again for them.
                known = {self.grows_at_end(r) for r in records}
                again = self.read(listing, number, listing.request(number), progress)
                yield from (r for r in again if self.grows_at_end(r) not in known)
                done, page = len(again) < self.page_size, number + 1
        while not done:
            body = listing.request(page)
            records = self.read(listing, page, body, progress)
            seen += len(records)
            done = self.done(records, body, seen)
            yield from records
            page += 1


@dataclass(frozen=True)
class SplitWindows:
    """[lo, hi) of a key that never changes, read as windows whose answer each holds all of them.

    A window's answer that holds fewer items than its ``totalCount`` is cut into pieces of about
    ``target`` items (if they are spread evenly), read before the windows after it; the pieces' own
    totals say if one needs cutting again. A window one unit wide cannot be cut: ``too_dense(window,
    total)`` reads it. Up to ``in_flight`` windows are asked for at once; records come in window order.
    Progress counts the pieces answered of the pieces known (asked for or still to ask for).
    """

    target: int
    in_flight: int = 1
    name: str = "windows"

    def records(self, listing: Listing, lo: int, hi: int,
                too_dense: Callable[[tuple[int, int], int], Iterator], progress: Progress | None = None) -> Iterator:
        progress = progress or Progress("")
        todo: deque[tuple[int, int]] = deque([(lo, hi)])  # still to ask for, in key order
        answered, whole = 0, None  # pieces answered; the whole range's totalCount (the first answer's)
        with InFlight(self.in_flight, self.name) as pool:
            while todo or pool:
                while todo and pool.has_room():
                    pool.submit(todo.popleft(), listing.request)
                window, body = pool.next()
                held, total = listing.measure(window, body)
                whole = total if whole is None else whole
                records: list = []
                if held >= total:  # the whole window in one answer
                    records = listing.read(window, body)
                elif window[1] - window[0] <= 1:
                    records = list(too_dense(window, total))  # more than a page begun in one unit: rare
                else:
                    todo.extendleft(reversed(cut(*window, math.ceil(total / self.target))))
                answered += 1
                progress.page(len(records), pages_of=answered + len(pool) + len(todo), items_of=whole)
                yield from records


def cut(lo: int, hi: int, pieces: int) -> list[tuple[int, int]]:
    """[lo, hi) cut into ``pieces`` (at least 2, at most one per unit) of equal length."""
    pieces = max(2, min(pieces, hi - lo))
    bounds = [lo + (hi - lo) * k // pieces for k in range(pieces)] + [hi]
    return list(pairwise(bounds))

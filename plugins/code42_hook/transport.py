"""JSON-over-HTTP transport shared by the project's API hooks (Code42, KnowBe4).

On the providers-http ``HttpHook``: one pooled ``requests`` session per hook (its keep-alive
adapter), an auth object from the connection, a client-side rate limiter, tenacity retries with
backoff and jitter, connect/read timeouts always set, JSON bodies validated into records, and one
paginator for every listing. Subclasses say how to check the Base URL and build the auth object.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from pydantic import ValidationError

from code42_hook.errors import Code42ApiError, Code42ConfigError, Code42PayloadError
from code42_hook.records import Record
from code42_hook.retry import (
    RetryableStatus,
    TruncatedBody,
    is_transient,
    parse_retry_after,
    wait_retry_after_or_backoff,
)
from code42_hook.throttle import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class HookStats:
    """What a hook asked of its API: the audit row's numbers."""

    requests: int = 0
    retries: int = 0
    n_429: int = 0
    n_5xx: int = 0
    pages: int = 0
    items: int = 0
    token_fetches: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        """Count atomically (pages are fetched from several threads)."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ApiSettings:
    """Connection extras, validated. Keys not listed here are refused (typos fail loudly)."""

    rate_limit_per_minute: float = 120.0
    max_retries: int = 6
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_backoff: float = 1.0
    verify: bool = True
    pages_in_flight: int = 4  # once a listing's totalCount is known, fetch up to this many pages at once

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict[str, Any], **defaults: Any) -> ApiSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise Code42ConfigError(
                f"connection {conn_id!r}: unknown extra field(s) {unknown}; allowed: {sorted(known)}"
            )
        values = dict(defaults)
        for name, value in extra.items():
            kind = bool if name == "verify" else (int if name in ("max_retries", "pages_in_flight") else float)
            try:
                values[name] = value if kind is bool and isinstance(value, bool) else kind(value)
            except (TypeError, ValueError):
                raise Code42ConfigError(f"connection {conn_id!r}: extra {name}={value!r} is not a {kind.__name__}") \
                    from None
            if kind is not bool and values[name] < (0 if name == "max_retries" else 0.001):
                raise Code42ConfigError(f"connection {conn_id!r}: extra {name}={value!r} must be positive")
        return cls(**values)


class JsonApiHook(HttpHook):
    """Base of the API hooks: transport, retries, throttle, validation, paging."""

    api_name: ClassVar[str] = "API"
    default_rate_limit_per_minute: ClassVar[float] = 120.0

    def __init__(self, conn_id: str, *, auth_type: Any, limiter: RateLimiter | None = None) -> None:
        super().__init__(method="GET", http_conn_id=conn_id, auth_type=auth_type)
        self.stats = HookStats()
        self._limiter = limiter
        self._thread = threading.local()  # .abandoned: the paginator this prefetch works for was closed

    # --- connection ----------------------------------------------------------------------------
    @cached_property
    def connection(self):
        return self.get_connection(self.http_conn_id)

    @cached_property
    def settings(self) -> ApiSettings:
        return ApiSettings.from_extra(self.http_conn_id, self.connection.extra_dejson,
                                      rate_limit_per_minute=self.default_rate_limit_per_minute)

    @cached_property
    def limiter(self) -> RateLimiter:
        """The connection's throttle, shared by every hook and process on this host that uses the
        same API client (Base URL + client id / key): the limit is the client's, not the task's."""
        if self._limiter is not None:
            return self._limiter
        conn = self.connection
        key = f"{self.api_name}|{(conn.host or '').strip().rstrip('/').lower()}|{conn.login or conn.password or ''}"
        return RateLimiter(self.settings.rate_limit_per_minute, shared_key=key)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def checked_base_url(self) -> str:
        """The connection's Base URL, validated; raise ``Code42ConfigError`` to refuse it."""
        raise NotImplementedError

    def configure_auth(self, session: requests.Session) -> None:
        """Finish the auth object HttpHook attached (it needs the checked Base URL, timeouts...)."""

    @cached_property
    def session(self) -> requests.Session:
        """The pooled session; the Base URL is checked here, before any credential is sent."""
        base_url = self.checked_base_url()
        session = self.get_conn()
        self.base_url = base_url  # HttpHook derived one from host/schema; ours is the checked one
        session.verify = self.settings.verify
        self.configure_auth(session)
        return session

    def _configure_session_from_extra(self, session, connection, extra_options):
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for name in (f.name for f in fields(ApiSettings)):  # our extras are settings, not headers
            session.headers.pop(name, None)
        return session

    # --- transport -----------------------------------------------------------------------------
    def _with_retries(self, method: str, endpoint: str, page: int | None, attempt: Callable[[], Any]) -> Any:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.max_retries + 1),
            wait=wait_retry_after_or_backoff(self.settings.retry_backoff),
            retry=tenacity.retry_if_exception(lambda exc: is_transient(exc) and not self._abandoned()),
            before_sleep=lambda state: self._before_retry(method, endpoint, page, state),
            reraise=True,
        )
        retries = self.settings.max_retries
        try:
            return retrying(attempt)
        except RetryableStatus as exc:
            raise Code42ApiError(method, endpoint, exc.status, f"still failing after {retries} retries", page,
                                 api=self.api_name) from None
        except TruncatedBody as exc:
            raise Code42PayloadError(endpoint, page, f"{exc} (after {retries} retries)", api=self.api_name) from None
        except requests.HTTPError as exc:
            raise Code42ApiError(method, endpoint, exc.response.status_code, f"still failing after {retries} retries",
                                 page, api=self.api_name) from None
        except requests.RequestException as exc:
            what = ("did not answer within the read timeout" if isinstance(exc, requests.ReadTimeout)
                    else "unreachable")
            raise Code42ApiError(
                method, endpoint, None, f"Base URL {self.base_url} {what} ({exc.__class__.__name__}) after {retries} retries",
                page, api=self.api_name,
            ) from None

    def _before_retry(self, method, endpoint, page, state: tenacity.RetryCallState) -> None:
        self.stats.add(retries=1)
        exc = state.outcome.exception()
        log.warning("%s %s %s%s: %s; retry %d in %.1f s", self.api_name, method, endpoint,
                    f" page {page}" if page is not None else "", exc.__class__.__name__ + f" {exc}",
                    state.attempt_number, state.upcoming_sleep)

    def _request_json(self, method: str, endpoint: str, *, page: int | None = None,
                      params: dict | None = None, json: dict | None = None) -> Any:
        """One API call with throttle and retries; returns the parsed JSON body."""
        session = self.session

        def attempt():
            if self._abandoned():
                raise PagingAbandoned(f"{endpoint} page {page}: the listing was closed")
            self.limiter.acquire()
            self.stats.add(requests=1)
            request = requests.Request(method, self.url_from_endpoint(endpoint), params=params, json=json)
            response = self.run_and_check(
                session, session.prepare_request(request), {"timeout": self.timeout, "check_response": False}
            )
            status = response.status_code
            if status == 429 or status >= 500:
                self.stats.add(n_429=int(status == 429), n_5xx=int(status >= 500))
                raise RetryableStatus(status, parse_retry_after(response.headers.get("Retry-After")))
            if status >= 400:
                raise Code42ApiError(method, endpoint, status, _error_text(response), page, api=self.api_name)
            try:
                return response.json()
            except ValueError:
                raise TruncatedBody(f"body is not valid JSON ({len(response.content)} bytes)") from None

        return self._with_retries(method, endpoint, page, attempt)

    def _abandoned(self) -> bool:
        event = getattr(self._thread, "abandoned", None)
        return event is not None and event.is_set()

    def _prefetch(self, abandoned: threading.Event, request: Callable[[int], Any], page: int) -> Any:
        self._thread.abandoned = abandoned
        try:
            return request(page)
        finally:
            self._thread.abandoned = None

    def _records(self, model: type[Record], items: Any, endpoint: str, page: int | None) -> list:
        if not isinstance(items, list):
            raise Code42PayloadError(endpoint, page, f"expected a list of items, got {type(items).__name__}",
                                     api=self.api_name)
        try:
            records = model.from_items(items)
        except ValidationError as exc:
            errors = exc.errors()
            index = errors[0]["loc"][0] if errors[0]["loc"] else 0
            problems = "; ".join([f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}"
                                  for e in errors if e["loc"][:1] == (index,)][:3])
            raise Code42PayloadError(endpoint, page, f"item {index} is not a valid {model.__name__}: {problems}",
                                     api=self.api_name) from None
        self.stats.add(pages=1, items=len(records))
        return records

    def _field(self, body: Any, key: str, endpoint: str, page: int | None) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise Code42PayloadError(endpoint, page, f"missing key {key!r}", api=self.api_name)
        return body[key]

    @staticmethod
    def _arrived_after(answered: dict[int, tuple[float, Any]], final: int) -> bool:
        """Did the listing grow after its final page was served? Another page of it announced a larger
        ``totalCount`` than the final page did (served later, whatever order the answers reached us
        in); without totals: another page was answered after the final one."""
        when, total = answered[final]  # the final page was read: its answer is always here
        others = [(w, t) for n, (w, t) in list(answered.items()) if n != final]
        if isinstance(total, int):
            return any(isinstance(t, int) and t > total for _, t in others)
        return any(w > when for w, _ in others)

    def _page_items(self, body: Any, items_key: str | None, endpoint: str, page: int) -> Any:
        return body if items_key is None else self._field(body, items_key, endpoint, page)

    def _paged(self, model: type[Record], endpoint: str, page_size: int, request, *,
               items_key: str | None, first_page: int = 0,
               grows_at_end: Callable[[Record], str] | None = None) -> Iterator[Record]:
        """The paginator every listing shares: ``request(page)`` returns a page's JSON body; stop on a
        short page or once ``totalCount`` items have been seen.

        Once the first page has told ``totalCount``, the pages still needed are fetched up to
        ``pages_in_flight`` at a time (each through the throttle and retries), and yielded in page
        order with the same stop rule; pages beyond the announced total (the listing grew while
        paging) are then read one by one.

        ``grows_at_end`` (a record's key) says new items only ever join the end of this listing
        (ascending by time). With pages in flight the final page may be served before an earlier
        one; items that arrived in between would be missed. When another page announces a larger
        ``totalCount`` than the final page did, the final page is read again and its new items
        yielded (paging on if it filled), so the listing holds everything present when its last page
        was served, as a one-page-at-a-time listing does. A listing that did not grow costs nothing.
        """
        seen = 0

        def page_records(page: int, body: Any) -> tuple[list, bool]:
            nonlocal seen
            records = self._records(model, self._page_items(body, items_key, endpoint, page), endpoint, page)
            seen += len(records)
            total = body.get("totalCount") if isinstance(body, dict) else None
            return records, len(records) < page_size or (isinstance(total, int) and seen >= total)

        body = request(first_page)
        records, done = page_records(first_page, body)
        yield from records
        page = first_page + 1
        total = body.get("totalCount") if isinstance(body, dict) else None
        in_flight = self.settings.pages_in_flight
        if not done and isinstance(total, int) and in_flight > 1:
            last = first_page + math.ceil(total / page_size) - 1
            pending: deque[tuple[int, Future]] = deque()
            abandoned = threading.Event()
            pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=f"{self.api_name}-pages")
            answered: dict[int, tuple[float, Any]] = {}  # page -> (when answered, its totalCount)

            def fetch(number: int) -> Any:
                body = self._prefetch(abandoned, request, number)
                answered[number] = (time.monotonic(), body.get("totalCount") if isinstance(body, dict) else None)
                return body

            try:
                while not done and (pending or page <= last):
                    while page <= last and len(pending) < in_flight:
                        pending.append((page, pool.submit(fetch, page)))
                        page += 1
                    number, future = pending.popleft()
                    records, done = page_records(number, future.result())
                    yield from records
            finally:  # done, failed or closed early: pages still in flight are not retried or waited for
                abandoned.set()
                pool.shutdown(wait=False, cancel_futures=True)
            if grows_at_end is not None and self._arrived_after(answered, number):
                # The final page was served before items arrived: read it again for them.
                known = {grows_at_end(r) for r in records}
                again = self._records(model, self._page_items(request(number), items_key, endpoint, number),
                                      endpoint, number)
                yield from (r for r in again if grows_at_end(r) not in known)
                done, page = len(again) < page_size, number + 1
        while not done:
            records, done = page_records(page, request(page))
            yield from records
            page += 1


class PagingAbandoned(Exception):
    """A prefetched page no one will read any more (its listing was closed or failed)."""


def _error_text(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] if text else response.reason or "error"

"""JSON-over-HTTP transport shared by the project's API hooks (Code42, KnowBe4).

On the providers-http ``HttpHook``: one pooled ``requests`` session per hook (its keep-alive
adapter), an auth object from the connection, a client-side rate limiter, tenacity retries with
backoff and jitter, connect/read timeouts always set, JSON bodies validated into records, listings
paged by the strategies of ``apiclient.paging``. Subclasses say how to check the Base URL, build
the auth object, and which error classes name their API (``errors``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from pydantic import ValidationError

from apiclient import paging
from apiclient.errors import Errors
from apiclient.paging import PageNumberTotal, PagingAbandoned
from apiclient.progress import Progress
from apiclient.records import Record
from apiclient.retry import (
    RetryableStatus,
    TruncatedBody,
    is_transient,
    parse_retry_after,
    wait_retry_after_or_backoff,
)
from apiclient.settings import ApiSettings
from apiclient.throttle import RateLimiter

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
    throttle_wait_s: float = 0.0  # seconds the throttle held this hook's requests, summed over threads

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: float) -> None:
        """Count atomically (pages are fetched from several threads)."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class JsonApiHook(HttpHook):
    """Base of the API hooks: transport, retries, throttle, validation, paging."""

    api_name: ClassVar[str] = "API"
    errors: ClassVar[Errors] = Errors()  # the error classes that name this API
    default_rate_limit_per_minute: ClassVar[float] = ApiSettings.rate_limit_per_minute  # a type sets its own

    def __init__(self, conn_id: str, *, auth_type: Any, limiter: RateLimiter | None = None) -> None:
        super().__init__(method="GET", http_conn_id=conn_id, auth_type=auth_type)
        self.stats = HookStats()
        self._limiter = limiter

    # --- connection ----------------------------------------------------------------------------
    @cached_property
    def connection(self):
        return self.get_connection(self.http_conn_id)

    @cached_property
    def settings(self) -> ApiSettings:
        return ApiSettings.from_extra(self.http_conn_id, self.connection.extra_dejson, error=self.errors.config,
                                      rate_limit_per_minute=self.default_rate_limit_per_minute)

    @cached_property
    def limiter(self) -> RateLimiter:
        """The connection's throttle, shared by every hook and process that uses the same API client
        (Base URL + client id / key): the limit is the client's, not the task's. The schedule is
        kept where the connection's ``rate_limit_store`` says: this host's file lock (empty) or
        Redis (every host)."""
        if self._limiter is not None:
            return self._limiter
        conn = self.connection
        key = f"{self.api_name}|{(conn.host or '').strip().rstrip('/').lower()}|{conn.login or conn.password or ''}"
        return RateLimiter(self.settings.rate_limit_per_minute, shared_key=key, store=self.settings.rate_limit_store,
                           owner=f"connection {self.http_conn_id!r}", store_error=self.errors.config)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def checked_base_url(self) -> str:
        """The connection's Base URL, validated; raise ``self.errors.config`` to refuse it."""
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
            retry=tenacity.retry_if_exception(lambda exc: is_transient(exc) and not paging.abandoned()),
            before_sleep=lambda state: self._before_retry(method, endpoint, page, state),
            reraise=True,
        )
        retries = self.settings.max_retries
        try:
            return retrying(attempt)
        except RetryableStatus as exc:
            raise self.errors.api(method, endpoint, exc.status, f"still failing after {retries} retries", page,
                                  api=self.api_name) from None
        except TruncatedBody as exc:
            raise self.errors.payload(endpoint, page, f"{exc} (after {retries} retries)", api=self.api_name) from None
        except requests.HTTPError as exc:
            raise self.errors.api(method, endpoint, exc.response.status_code, f"still failing after {retries} retries",
                                  page, api=self.api_name) from None
        except requests.RequestException as exc:
            what = ("did not answer within the read timeout" if isinstance(exc, requests.ReadTimeout)
                    else "unreachable")
            raise self.errors.api(
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
            if paging.abandoned():
                raise PagingAbandoned(f"{endpoint} page {page}: the listing was closed")
            waited = self.limiter.acquire()
            self.stats.add(requests=1, throttle_wait_s=waited)
            request = requests.Request(method, self.url_from_endpoint(endpoint), params=params, json=json)
            response = self.run_and_check(
                session, session.prepare_request(request), {"timeout": self.timeout, "check_response": False}
            )
            status = response.status_code
            if status == 429 or status >= 500:
                self.stats.add(n_429=int(status == 429), n_5xx=int(status >= 500))
                raise RetryableStatus(status, parse_retry_after(response.headers.get("Retry-After")))
            if status >= 400:
                raise self.errors.api(method, endpoint, status, error_text(response), page, api=self.api_name)
            try:
                return response.json()
            except ValueError:
                raise TruncatedBody(f"body is not valid JSON ({len(response.content)} bytes)") from None

        return self._with_retries(method, endpoint, page, attempt)

    def _records(self, model: type[Record], items: Any, endpoint: str, page: int | None) -> list:
        if not isinstance(items, list):
            raise self.errors.payload(endpoint, page, f"expected a list of items, got {type(items).__name__}",
                                      api=self.api_name)
        try:
            records = model.from_items(items)
        except ValidationError as exc:
            errors = exc.errors()
            index = errors[0]["loc"][0] if errors[0]["loc"] else 0
            problems = "; ".join([f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}"
                                  for e in errors if e["loc"][:1] == (index,)][:3])
            raise self.errors.payload(endpoint, page, f"item {index} is not a valid {model.__name__}: {problems}",
                                      api=self.api_name) from None
        self.stats.add(pages=1, items=len(records))
        return records

    def _field(self, body: Any, key: str, endpoint: str, page: int | None) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise self.errors.payload(endpoint, page, f"missing key {key!r}", api=self.api_name)
        return body[key]

    def _page_items(self, body: Any, items_key: str | None, endpoint: str, page: int | None) -> Any:
        return body if items_key is None else self._field(body, items_key, endpoint, page)

    def _paged(self, model: type[Record], endpoint: str, page_size: int, request: Callable[[int], Any], *,
               items_key: str | None, first_page: int = 0,
               grows_at_end: Callable[[Record], Any] | None = None) -> Iterator[Record]:
        """A listing paged by number (``PageNumberTotal``), up to ``pages_in_flight`` pages at once:
        ``request(page)`` returns a page's JSON body, whose items are under ``items_key`` (or are
        the body itself)."""
        pages = PageNumberTotal(page_size, first_page, self.settings.pages_in_flight, grows_at_end,
                                name=f"{self.api_name}-pages")
        listing = JsonListing(self, model, endpoint, request, items_key)
        yield from self._progressed(endpoint, lambda progress: pages.records(listing, progress=progress))

    def _progressed(self, label: str, records: Callable[[Progress], Iterator], unit: str = "page") -> Iterator:
        """``records(progress)``, a listing, with its progress (``apiclient.progress``) in the log of the
        hook's module (standard ``logging``: in a task, the task log): a line at most every 10 s and
        one at its end. ``label``: the endpoint path (and which listing), never data."""
        progress = Progress(f"{self.api_name} {label}", self.stats, logger=logging.getLogger(type(self).__module__),
                            unit=unit)
        yield from records(progress)
        progress.finish()


@dataclass(frozen=True)
class JsonListing:
    """One endpoint's listing as the paging strategies see it (``apiclient.paging.Listing``): its
    pages' JSON bodies hold ``model`` items under ``items_key`` (or are the list themselves).
    ``named_page``: the page errors name when pages are not numbers (a window: page 0)."""

    hook: JsonApiHook
    model: type[Record]
    endpoint: str
    request: Callable[[Any], Any]
    items_key: str | None = None
    named_page: int | None = None

    def _page(self, page: Any) -> int:
        return page if self.named_page is None else self.named_page

    def read(self, page: Any, body: Any) -> list:
        number, hook = self._page(page), self.hook
        return hook._records(self.model, hook._page_items(body, self.items_key, self.endpoint, number),
                             self.endpoint, number)

    def measure(self, page: Any, body: Any) -> tuple[int, int]:
        number, hook = self._page(page), self.hook
        items = hook._page_items(body, self.items_key, self.endpoint, number)
        total = hook._field(body, "totalCount", self.endpoint, number)
        if not isinstance(total, int) or not isinstance(items, list):
            raise hook.errors.payload(self.endpoint, number, f"totalCount {total!r} / items are not a count and a "
                                      "list", api=hook.api_name)
        return len(items), total


def error_text(response: requests.Response) -> str:
    """What an error response says, cut short (for an error message)."""
    text = response.text.strip().replace("\n", " ")
    return text[:300] if text else response.reason or "error"

"""Code42Hook: one hook per ``code42`` connection (Client ID, Client Secret, Base URL).

Transport (pooled session, retries, throttle, timeouts, validation, paging) comes from
``apiclient`` (``JsonApiHook`` on the providers-http HttpHook); here are Code42's OAuth token auth object, its
Base URL rule and its endpoints: generators that hide paging and yield validated records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import requests

from apiclient.paging import SplitWindows, total_count
from apiclient.settings import ApiSettings
from apiclient.throttle import RateLimiter
from apiclient.timeutil import require_aware, to_epoch_ms, to_iso_ms
from apiclient.transport import HookStats, JsonApiHook, JsonListing, error_text
from code42_hook.auth import Code42TokenAuth
from code42_hook.errors import (
    CODE42_ERRORS,
    Code42ApiError,
    Code42ConfigError,
    Code42Error,
    Code42PayloadError,
    OutcomeUnknown,
)
from code42_hook.provider_info import RATE_LIMITS
from code42_hook.records import Actor, Alert, AlertRule, FileEvent, Session, Watchlist, WatchlistMember
from code42_hook.urls import normalize_base_url

Code42Settings = ApiSettings  # the connection extras (see ApiSettings)
__all__ = ["Code42Hook", "Code42Settings", "HookStats", "connect"]
log = logging.getLogger(__name__)


class Code42Hook(JsonApiHook):
    """Code42 Incydr API client for one connection (Client ID, Client Secret, Base URL).

    ``totals``: per stream (``sessions``, ``alerts``), what the API said the window of the latest
    complete ``iter_sessions`` / ``iter_alerts`` read holds (its ``totalCount``; None until a read
    ends or when an answer had none). What the iterators yield is not changed by it.
    """

    conn_name_attr = "code42_conn_id"
    default_conn_name = "code42_default"
    conn_type = "code42"
    hook_name = "Code42 Incydr"
    api_name = "Code42"
    errors = CODE42_ERRORS
    default_rate_limit_per_minute = RATE_LIMITS[conn_type]

    SESSIONS_PAGE_SIZE = 50  # the API's maximum
    # A begin-time sub-window is cut to hold about this share of a page, so most fit one page.
    SESSIONS_WINDOW_FILL = 0.85
    ALERTS_PAGE_SIZE = 500
    ALERT_RULES_PAGE_SIZE = 100
    ACTORS_PAGE_SIZE = 500
    WATCHLISTS_PAGE_SIZE = 100

    def __init__(self, code42_conn_id: str = default_conn_name, *, limiter: RateLimiter | None = None) -> None:
        super().__init__(code42_conn_id, auth_type=Code42TokenAuth, limiter=limiter)
        self.code42_conn_id = code42_conn_id
        self.totals: dict[str, int | None] = {}

    def checked_base_url(self) -> str:
        conn = self.connection
        base_url = normalize_base_url(conn.host)
        if not conn.login or not conn.password:
            raise Code42ConfigError(f"connection {self.code42_conn_id!r}: Client ID and Client Secret are required")
        return base_url

    def configure_auth(self, session: requests.Session) -> None:
        auth: Code42TokenAuth = session.auth
        auth.base_url = self.base_url
        auth.timeout = self.timeout
        auth.session = requests.Session()
        auth.session.verify = self.settings.verify
        auth.on_fetch = self._count_token_fetch

    @property
    def tenant_id(self) -> str:
        """The tenant of this connection: the ``tenantUid`` claim of the access token."""
        tenant = self._with_retries("POST", "/v1/oauth", None, lambda: self.session.auth.claims()).get("tenantUid")
        if not tenant:
            raise Code42PayloadError("/v1/oauth", None, "access token has no tenantUid claim")
        return tenant

    def _count_token_fetch(self) -> None:
        self.stats.token_fetches += 1

    # --- endpoints -----------------------------------------------------------------------------
    def iter_sessions(self, start: datetime, end: datetime, *, has_alerts: bool | None = None,
                      **filters: Any) -> Iterator[Session]:
        """Sessions that began in [start, end).

        ``GET /v1/sessions`` splits them into two listings: ``has_alerts=true`` (the API's default)
        holds only sessions with an alert, ``has_alerts=false`` only those without. With
        ``has_alerts`` None (the default here) both are read, the ``false`` listing first: a session
        that gains its first alert while the window is read moves from the listing read first into
        the one read next, so it is read once or twice (the later copy the newer), never missed.
        Alerts are never taken back, so nothing moves the other way.

        The listing is ordered by end time (or score), and both move while it is read (an open
        session's end time grows; sessions gain alerts and leave the ``false`` listing), so paging it
        by page number skips some sessions and reads others twice. It is never paged: the window is
        cut by begin time, which never changes, into sub-windows that each fit in one page (one
        answer is one consistent snapshot). The first answer's ``totalCount`` says how many pieces to
        cut; a piece that still holds more than a page is cut again. Up to ``pages_in_flight`` pieces
        are read at once, all through the throttle.

        ``filters`` are the API's other query parameters (``actor_id``, ``states``, ``severities``,
        ``rule_id``, ``watchlist_id``, ``risk_indicators``, ``content_inspection_status``). With
        ``order_by`` (``end_time`` | ``score``) and/or ``sort_direction`` (``ASC`` | ``DESC``) the
        caller asks for a ranking: each listing is then paged by page number in that order, with
        the caveat above.

        ``totals["sessions"]`` is then what the API says the window holds: the ``totalCount`` of each
        listing's whole window. With both listings, the ``true`` one is counted (one request of page
        size 1) before the ``false`` one is read and the ``false`` total is its first answer's: a
        session that gains its first alert while the listings are read is counted in one listing at
        most, never in both (a complete read is never taken for a short one).
        """
        lo, hi = to_epoch_ms(start, "start"), to_epoch_ms(end, "end")
        params = _session_filters(filters)
        listings = (False, True) if has_alerts is None else (bool(has_alerts),)
        read = (self._ranked_sessions if "order_by" in params or "sort_direction" in params
                else self._sessions_by_begin_time)
        self.totals["sessions"] = None
        totals = {True: self._sessions_count(lo, hi, {**params, "has_alerts": "true"})} if len(listings) == 2 else {}
        for alerted in listings:
            listing = {**params, "has_alerts": str(alerted).lower()}
            yield from read(lo, hi, listing, on_total=None if alerted in totals else partial(totals.__setitem__, alerted))
        self.totals["sessions"] = None if None in totals.values() else sum(totals.values())

    def count_sessions(self, start: datetime, end: datetime, *, has_alerts: bool | None = None) -> int:
        """How many sessions began in [start, end), as the API's ``totalCount`` says: one request of
        page size 1 per listing (both, ``true`` first, when ``has_alerts`` is None: a session that
        gains its first alert between the two requests is counted in neither, never twice)."""
        lo, hi = to_epoch_ms(start, "start"), to_epoch_ms(end, "end")
        listings = (True, False) if has_alerts is None else (bool(has_alerts),)
        return sum(self._sessions_count(lo, hi, {"has_alerts": str(a).lower()}) for a in listings)

    def _sessions_count(self, lo: int, hi: int, params: dict[str, Any]) -> int:
        endpoint = "/v1/sessions"
        body = self._request_json("GET", endpoint, page=0, params={
            **params, "on_or_after": lo, "before": hi, "page_size": 1, "page_number": 0})
        total = total_count(body)
        if total is None:
            raise Code42PayloadError(endpoint, 0, "missing key 'totalCount'")
        return total

    def _ranked_sessions(self, lo: int, hi: int, params: dict[str, Any], *,
                         on_total: Callable[[int | None], None] | None = None) -> Iterator[Session]:
        endpoint, size = "/v1/sessions", self.SESSIONS_PAGE_SIZE
        params = {**params, "on_or_after": lo, "before": hi, "page_size": size}
        yield from self._paged(Session, endpoint, size, items_key="items", request=_noting_total(
            lambda page: self._request_json("GET", endpoint, page=page, params={**params, "page_number": page}),
            0, on_total))

    def _sessions_by_begin_time(self, lo: int, hi: int, params: dict[str, Any], *,
                                on_total: Callable[[int | None], None] | None = None) -> Iterator[Session]:
        """One listing of [lo, hi), read as begin-time sub-windows of one page each (see
        ``iter_sessions``); yields each sub-window's sessions as its answer arrives, in window order.
        ``on_total`` gets the ``totalCount`` of the whole window's answer."""
        size = self.SESSIONS_PAGE_SIZE
        windows = SplitWindows(target=max(1, int(size * self.SESSIONS_WINDOW_FILL)),
                               in_flight=max(1, self.settings.pages_in_flight), name=f"{self.api_name}-sessions")
        request = _noting_total(partial(self._sessions_window, params), (lo, hi), on_total)
        listing = JsonListing(self, Session, "/v1/sessions", request, "items", named_page=0)
        yield from self._progressed(f"/v1/sessions has_alerts={params['has_alerts']}", lambda progress: windows.records(
            listing, lo, hi, too_dense=partial(self._sessions_in_one_ms, params), progress=progress), unit="piece")

    def _sessions_window(self, params: dict[str, Any], window: tuple[int, int]) -> Any:
        """One begin-time sub-window [a, b) of a listing, asked for as one page."""
        a, b = window
        return self._request_json("GET", "/v1/sessions", page=0, params={
            **params, "on_or_after": a, "before": b, "page_size": self.SESSIONS_PAGE_SIZE, "page_number": 0})

    def _sessions_in_one_ms(self, params: dict[str, Any], window: tuple[int, int], total: int) -> Iterator[Session]:
        """More than a page of sessions began in one millisecond: rank them by end time."""
        a, b = window
        log.warning("Code42 sessions: %d began at %d ms; paging them by end time", total, a)
        return self._ranked_sessions(a, b, {**params, "order_by": "end_time", "sort_direction": "ASC"})

    def iter_alerts(self, start: datetime, end: datetime) -> Iterator[Alert]:
        """Alerts created in [start, end) (the API's range is inclusive: the end is trimmed here).

        ``totals["alerts"]``: the first page's ``totalCount`` less the alerts served outside
        [start, end) (those created at ``end`` exactly), i.e. what the API says [start, end) holds."""
        endpoint, size = "/v1/alerts/query-alerts", self.ALERTS_PAGE_SIZE
        start, end = require_aware(start, "start"), require_aware(end, "end")
        query = self._alerts_query(start, end, size)
        self.totals["alerts"] = None
        said: list[int | None] = []

        def request(page: int) -> Any:
            return self._alerts_page(endpoint, query, page)

        alerts = self._paged(Alert, endpoint, size, items_key="alerts", request=_noting_total(request, 0, said.append),
                             grows_at_end=lambda a: a.id)
        outside = 0
        for alert in alerts:
            if start <= alert.created_at < end:
                yield alert
            else:
                outside += 1
        self.totals["alerts"] = None if said[0] is None else said[0] - outside

    def count_alerts(self, start: datetime, end: datetime) -> int:
        """How many alerts were created in [start, end), as the API's ``totalCount`` says: one
        request of page size 1 (its range is inclusive: it is asked up to ``end`` less 1 ms)."""
        endpoint = "/v1/alerts/query-alerts"
        start, end = require_aware(start, "start"), require_aware(end, "end")
        body = self._alerts_page(endpoint, self._alerts_query(start, end - timedelta(milliseconds=1), 1), 0)
        total = total_count(body)
        if total is None:
            raise Code42PayloadError(endpoint, 0, "missing key 'totalCount'")
        return total

    def _alerts_query(self, start: datetime, last: datetime, size: int) -> dict[str, Any]:
        """The query of the alerts created from ``start`` up to ``last`` (both included)."""
        return {
            "tenantId": self.tenant_id,
            "groupClause": "AND",
            "groups": [{"filterClause": "AND", "filters": [
                {"term": "CreatedAt", "operator": "ON_OR_AFTER", "value": to_iso_ms(start)},
                {"term": "CreatedAt", "operator": "ON_OR_BEFORE", "value": to_iso_ms(last)},
            ]}],
            "pgSize": size, "srtDirection": "ASC", "srtKey": "CreatedAt",
        }

    def _alerts_page(self, endpoint: str, query: dict[str, Any], page: int) -> Any:
        body = self._request_json("POST", endpoint, page=page, json={**query, "pgNum": page})
        problems = body.get("problems") if isinstance(body, dict) else None
        if problems:  # a 200 that says the query could not run as asked: never "no alerts"
            raise Code42PayloadError(endpoint, page, f"the query has problems: {_problems_text(problems)}")
        return body

    def iter_alert_rules(self) -> Iterator[AlertRule]:
        endpoint, size = "/v2/alert-rules", self.ALERT_RULES_PAGE_SIZE
        yield from self._paged(AlertRule, endpoint, size, items_key=None, request=lambda page: self._request_json(
            "GET", endpoint, page=page, params={"PageNumber": page, "PageSize": size}))

    def iter_actors(self) -> Iterator[Actor]:
        endpoint, size = "/v1/actors/actor/search", self.ACTORS_PAGE_SIZE
        yield from self._paged(Actor, endpoint, size, items_key="actors", first_page=1,  # 1-based here
                               request=lambda page: self._request_json(
                                   "GET", endpoint, page=page, params={"page": page, "pageSize": size}))

    def iter_watchlists(self) -> Iterator[Watchlist]:
        """Every watchlist (``GET /v2/watchlists``, pages numbered from 1). Needs Read on Watchlists:
        without it Code42 answers 403 (``Code42ApiError`` with ``status`` 403)."""
        endpoint, size = "/v2/watchlists", self.WATCHLISTS_PAGE_SIZE
        yield from self._paged(Watchlist, endpoint, size, items_key="watchlists", first_page=1,
                               request=lambda page: self._request_json(
                                   "GET", endpoint, page=page, params={"page": page, "page_size": size}))

    def iter_watchlist_members(self, watchlist_id: str) -> Iterator[WatchlistMember]:
        """The actors on one watchlist, however they got there (included actors, departments,
        directory groups): ``GET /v2/watchlists/{id}/members``, pages numbered from 1."""
        endpoint, size = f"/v2/watchlists/{watchlist_id}/members", self.WATCHLISTS_PAGE_SIZE
        yield from self._paged(WatchlistMember, endpoint, size, items_key="watchlistMembers", first_page=1,
                               request=lambda page: self._request_json(
                                   "GET", endpoint, page=page, params={"page": page, "page_size": size}))

    def iter_session_events(self, session_id: str) -> Iterator[FileEvent]:
        """The file events of one session (the endpoint answers with all of them at once)."""
        endpoint = f"/v1/sessions/{session_id}/events"
        body = self._request_json("GET", endpoint)
        result = self._field(body, "queryResult", endpoint, None)
        yield from self._records(FileEvent, self._field(result, "fileEvents", endpoint, None), endpoint, None)

    def get_session(self, session_id: str) -> Session:
        endpoint = f"/v1/sessions/{session_id}"
        return self._records(Session, [self._request_json("GET", endpoint)], endpoint, None)[0]

    def add_session_note(self, session_id: str, content: str) -> None:
        """``POST /v1/sessions/{id}/add-note`` (``noteContent``, at most 2000 characters; needs the
        "Alerts and Sessions" update permission). Sent once, never retried: after a 5xx or a lost
        answer it raises ``OutcomeUnknown`` (the note may be there: ``get_session(id).notes`` tells)."""
        if len(content) > 2000:
            raise ValueError("a Code42 session note has at most 2000 characters")
        endpoint = f"/v1/sessions/{session_id}/add-note"
        session = self.session
        self.limiter.acquire()
        self.stats.add(requests=1)
        request = requests.Request("POST", self.url_from_endpoint(endpoint), json={"noteContent": content})
        try:
            response = self.run_and_check(session, session.prepare_request(request),
                                          {"timeout": self.timeout, "check_response": False})
        except requests.RequestException as exc:
            raise OutcomeUnknown(f"Code42 POST {endpoint}: no answer ({exc.__class__.__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            if response.status_code == 429:
                raise Code42ApiError("POST", endpoint, 429, "rate limited; the note is added on a later run")
            raise OutcomeUnknown(f"Code42 POST {endpoint}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise Code42ApiError("POST", endpoint, response.status_code, error_text(response))

    def get_actor(self, actor_id: str) -> Actor:
        endpoint = f"/v1/actors/actor/id/{actor_id}"
        return self._records(Actor, [self._request_json("GET", endpoint)], endpoint, None)[0]

    # --- "Authorize" ---------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read one item per permission the integration needs (through the
        connection's throttle: the test draws from the same rate limit as the tasks)."""
        try:
            self.settings  # noqa: B018 - the extras first (rate limit, its store...): their error named as theirs
        except Code42ConfigError as exc:
            return False, f"Invalid connection settings: {exc}"
        try:
            self.session  # noqa: B018 - validates the Base URL and credentials' presence
        except Code42ConfigError as exc:
            return False, f"Unreachable or non-Code42 Base URL: {exc}"
        try:
            tenant = self.tenant_id
        except Code42ApiError as exc:
            if exc.status in (401, 403):
                return False, "Bad credentials: Code42 refused the Client ID / Client Secret."
            return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
        except Code42Error as exc:
            return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
        checks = (
            ('"Alert Rules"', lambda: self._request_json("GET", "/v2/alert-rules",
                                                          params={"PageNumber": 0, "PageSize": 1})),
            ('"Alerts and Sessions"', lambda: self._request_json("GET", "/v1/sessions", params={
                "on_or_after": 0, "before": to_epoch_ms(datetime.now(UTC), "now"), "page_size": 1, "page_number": 0})),
            ('"Alerts and Sessions"', lambda: self._request_json("POST", "/v1/alerts/query-alerts", json={
                "tenantId": tenant, "groupClause": "AND", "groups": [], "pgNum": 0, "pgSize": 1,
                "srtDirection": "ASC", "srtKey": "CreatedAt"})),
        )
        for permission, check in checks:
            try:
                check()
            except Code42ApiError as exc:
                if exc.status == 403:
                    return False, f"Missing permission: the API client needs Read on {permission}."
                return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
            except Code42ConfigError as exc:  # the rate limit store did not answer
                return False, str(exc)
            except Code42Error as exc:
                return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
        return True, f"Authorized: tenant {tenant}; Alert Rules and Alerts and Sessions are readable."


def connect(code42_conn_id: str) -> Code42Hook:
    """The Code42 hook of ``code42_conn_id`` for a command outside a task (``securitycoach verify``):
    the connection is looked up at once (the Airflow connection, an ``AIRFLOW_CONN_*`` variable or a
    secrets backend), and a missing one is a ``Code42ConfigError`` that names it."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    hook = Code42Hook(code42_conn_id)
    try:
        hook.connection  # noqa: B018 - looked up now, so a missing connection is one clear error
    except AirflowNotFoundException:
        raise Code42ConfigError(f"connection {code42_conn_id!r} is not defined (an Airflow connection, "
                                f"AIRFLOW_CONN_{code42_conn_id.upper()} or a secrets backend)") from None
    return hook


def _noting_total(request: Callable[[Any], Any], first: Any,
                  on_total: Callable[[int | None], None] | None) -> Callable[[Any], Any]:
    """``request`` that hands the ``totalCount`` of the answer for ``first`` (the page or window
    that is the whole listing's first) to ``on_total``."""
    if on_total is None:
        return request

    def noted(page: Any) -> Any:
        body = request(page)
        if page == first:
            on_total(total_count(body))
        return body

    return noted


def _problems_text(problems: Any) -> str:
    if not isinstance(problems, list):
        return str(problems)[:200]
    return "; ".join(str(p.get("description") or p.get("type") or p) if isinstance(p, dict) else str(p)
                     for p in problems[:3])[:300]


_FILTER_PARAMS = {
    "actor_id": "actor_id", "states": "state", "severities": "severity",
    "rule_id": "rule_id", "watchlist_id": "watchlist_id", "risk_indicators": "risk_indicators",
    "content_inspection_status": "content_inspection_status", "order_by": "order_by",
    "sort_direction": "sort_direction",
}


def _session_filters(filters: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(_FILTER_PARAMS))
    if unknown:
        raise ValueError(f"iter_sessions: unknown filter(s) {unknown}; allowed: {sorted(_FILTER_PARAMS)}")
    params = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name == "sort_direction":
            value = str(value).upper()  # the API's enum is ASC / DESC
            if value not in ("ASC", "DESC"):
                raise ValueError(f"iter_sessions: sort_direction must be ASC or DESC, got {filters[name]!r}")
        params[_FILTER_PARAMS[name]] = value
    return params

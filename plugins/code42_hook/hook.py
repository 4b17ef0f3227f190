"""Code42Hook: one hook per ``code42`` connection, on the providers-http HttpHook.

Transport: one pooled ``requests`` session (HttpHook's keep-alive adapter), the OAuth token as an
auth object, a client-side rate limiter, tenacity retries, connect/read timeouts always set.
Endpoints: generators that hide paging and yield validated records (``code42_hook.records``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from pydantic import ValidationError

from code42_hook.auth import Code42TokenAuth
from code42_hook.errors import Code42ApiError, Code42ConfigError, Code42Error, Code42PayloadError
from code42_hook.records import Actor, Alert, AlertRule, FileEvent, Record, Session
from code42_hook.retry import (
    RetryableStatus,
    TruncatedBody,
    is_transient,
    parse_retry_after,
    wait_retry_after_or_backoff,
)
from code42_hook.throttle import RateLimiter
from code42_hook.urls import normalize_base_url

log = logging.getLogger(__name__)


@dataclass
class HookStats:
    """What this hook asked of the API: the audit row's numbers."""

    requests: int = 0
    retries: int = 0
    n_429: int = 0
    n_5xx: int = 0
    pages: int = 0
    items: int = 0
    token_fetches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Code42Settings:
    """Connection extras, validated. Keys not listed here are refused (typos fail loudly)."""

    rate_limit_per_minute: float = 120.0
    max_retries: int = 6
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_backoff: float = 1.0
    verify: bool = True

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict[str, Any]) -> Code42Settings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise Code42ConfigError(
                f"connection {conn_id!r}: unknown extra field(s) {unknown}; allowed: {sorted(known)}"
            )
        values = {}
        for name, value in extra.items():
            kind = bool if name == "verify" else (int if name == "max_retries" else float)
            try:
                values[name] = value if kind is bool and isinstance(value, bool) else kind(value)
            except (TypeError, ValueError):
                raise Code42ConfigError(f"connection {conn_id!r}: extra {name}={value!r} is not a {kind.__name__}") \
                    from None
            if kind is not bool and values[name] < (0 if name == "max_retries" else 0.001):
                raise Code42ConfigError(f"connection {conn_id!r}: extra {name}={value!r} must be positive")
        return cls(**values)


class Code42Hook(HttpHook):
    """Code42 Incydr API client for one connection (Client ID, Client Secret, Base URL)."""

    conn_name_attr = "code42_conn_id"
    default_conn_name = "code42_default"
    conn_type = "code42"
    hook_name = "Code42 Incydr"

    SESSIONS_PAGE_SIZE = 50
    ALERTS_PAGE_SIZE = 500
    ALERT_RULES_PAGE_SIZE = 100
    ACTORS_PAGE_SIZE = 500

    def __init__(self, code42_conn_id: str = default_conn_name, *, limiter: RateLimiter | None = None) -> None:
        super().__init__(method="GET", http_conn_id=code42_conn_id, auth_type=Code42TokenAuth)
        self.code42_conn_id = code42_conn_id
        self.stats = HookStats()
        self._limiter = limiter

    # --- connection ----------------------------------------------------------------------------
    @cached_property
    def connection(self):
        return self.get_connection(self.code42_conn_id)

    @cached_property
    def settings(self) -> Code42Settings:
        return Code42Settings.from_extra(self.code42_conn_id, self.connection.extra_dejson)

    @cached_property
    def limiter(self) -> RateLimiter:
        return self._limiter or RateLimiter(self.settings.rate_limit_per_minute)

    @cached_property
    def session(self) -> requests.Session:
        """The pooled session; the Base URL is checked here, before any credential is sent."""
        conn = self.connection
        base_url = normalize_base_url(conn.host)
        if not conn.login or not conn.password:
            raise Code42ConfigError(f"connection {self.code42_conn_id!r}: Client ID and Client Secret are required")
        session = self.get_conn()
        self.base_url = base_url  # HttpHook derived one from host/schema; ours is the checked one
        session.verify = self.settings.verify
        auth: Code42TokenAuth = session.auth
        auth.base_url = base_url
        auth.timeout = self.timeout
        auth.session = requests.Session()
        auth.session.verify = self.settings.verify
        auth.on_fetch = self._count_token_fetch
        return session

    def _configure_session_from_extra(self, session, connection, extra_options):
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for name in (f.name for f in fields(Code42Settings)):  # our extras are settings, not headers
            session.headers.pop(name, None)
        return session

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    @property
    def tenant_id(self) -> str:
        """The tenant of this connection: the ``tenantUid`` claim of the access token."""
        tenant = self._with_retries("POST", "/v1/oauth", None, lambda: self.session.auth.claims()).get("tenantUid")
        if not tenant:
            raise Code42PayloadError("/v1/oauth", None, "access token has no tenantUid claim")
        return tenant

    def _count_token_fetch(self) -> None:
        self.stats.token_fetches += 1

    # --- transport -----------------------------------------------------------------------------
    def _with_retries(self, method: str, endpoint: str, page: int | None, attempt):
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.max_retries + 1),
            wait=wait_retry_after_or_backoff(self.settings.retry_backoff),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=lambda state: self._before_retry(method, endpoint, page, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RetryableStatus as exc:
            raise Code42ApiError(method, endpoint, exc.status,
                                 f"still failing after {self.settings.max_retries} retries", page) from None
        except TruncatedBody as exc:
            raise Code42PayloadError(endpoint, page, f"{exc} (after {self.settings.max_retries} retries)") from None
        except requests.HTTPError as exc:
            raise Code42ApiError(method, endpoint, exc.response.status_code,
                                 f"still failing after {self.settings.max_retries} retries", page) from None
        except requests.RequestException as exc:
            raise Code42ApiError(
                method, endpoint, None,
                f"Base URL {self.base_url} unreachable ({exc.__class__.__name__}) after "
                f"{self.settings.max_retries} retries", page,
            ) from None

    def _before_retry(self, method, endpoint, page, state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception()
        log.warning("Code42 %s %s%s: %s; retry %d in %.1f s", method, endpoint,
                    f" page {page}" if page is not None else "", exc.__class__.__name__ + f" {exc}",
                    state.attempt_number, state.upcoming_sleep)

    def _request_json(self, method: str, endpoint: str, *, page: int | None = None,
                      params: dict | None = None, json: dict | None = None) -> Any:
        """One API call with throttle and retries; returns the parsed JSON body."""
        session = self.session

        def attempt():
            self.limiter.acquire()
            self.stats.requests += 1
            request = requests.Request(method, self.url_from_endpoint(endpoint), params=params, json=json)
            response = self.run_and_check(
                session, session.prepare_request(request), {"timeout": self.timeout, "check_response": False}
            )
            status = response.status_code
            if status == 429 or status >= 500:
                self.stats.n_429 += status == 429
                self.stats.n_5xx += status >= 500
                raise RetryableStatus(status, parse_retry_after(response.headers.get("Retry-After")))
            if status >= 400:
                raise Code42ApiError(method, endpoint, status, _error_text(response), page)
            try:
                return response.json()
            except ValueError:
                raise TruncatedBody(f"body is not valid JSON ({len(response.content)} bytes)") from None

        return self._with_retries(method, endpoint, page, attempt)

    def _records(self, model: type[Record], items: Any, endpoint: str, page: int | None) -> list:
        if not isinstance(items, list):
            raise Code42PayloadError(endpoint, page, f"expected a list of items, got {type(items).__name__}")
        records = []
        for index, item in enumerate(items):
            try:
                records.append(model.from_item(item))
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
                raise Code42PayloadError(endpoint, page, f"item {index} is not a valid {model.__name__}: {problems}") \
                    from None
        self.stats.pages += 1
        self.stats.items += len(records)
        return records

    @staticmethod
    def _field(body: Any, key: str, endpoint: str, page: int | None) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise Code42PayloadError(endpoint, page, f"missing key {key!r}")
        return body[key]

    def _paged(self, model: type[Record], endpoint: str, page_size: int, request, *,
               items_key: str | None, first_page: int = 0) -> Iterator[Record]:
        """The paginator every listing shares: ``request(page)`` returns a page's JSON body; stop on a
        short page or once ``totalCount`` items have been seen."""
        page, seen = first_page, 0
        while True:
            body = request(page)
            items = body if items_key is None else self._field(body, items_key, endpoint, page)
            records = self._records(model, items, endpoint, page)
            yield from records
            seen += len(records)
            total = body.get("totalCount") if isinstance(body, dict) else None
            if len(records) < page_size or (isinstance(total, int) and seen >= total):
                return
            page += 1

    # --- endpoints -----------------------------------------------------------------------------
    def iter_sessions(self, start: datetime, end: datetime, **filters: Any) -> Iterator[Session]:
        """Sessions that began in [start, end); filters are the API's query parameters
        (``actor_id``, ``has_alerts``, ``states``, ``severities``, ``rule_id``, ``watchlist_id``,
        ``risk_indicators``, ``content_inspection_status``, ``order_by``, ``sort_direction``)."""
        endpoint, size = "/v1/sessions", self.SESSIONS_PAGE_SIZE
        params = {"on_or_after": _epoch_ms(start, "start"), "before": _epoch_ms(end, "end"), "page_size": size,
                  **_session_filters(filters)}
        yield from self._paged(Session, endpoint, size, items_key="items", request=lambda page: self._request_json(
            "GET", endpoint, page=page, params={**params, "page_number": page}))

    def iter_alerts(self, start: datetime, end: datetime) -> Iterator[Alert]:
        """Alerts created in [start, end) (the API's range is inclusive: the end is trimmed here)."""
        endpoint, size = "/v1/alerts/query-alerts", self.ALERTS_PAGE_SIZE
        start, end = _aware(start, "start"), _aware(end, "end")
        query = {
            "tenantId": self.tenant_id,
            "groupClause": "AND",
            "groups": [{"filterClause": "AND", "filters": [
                {"term": "CreatedAt", "operator": "ON_OR_AFTER", "value": _iso(start)},
                {"term": "CreatedAt", "operator": "ON_OR_BEFORE", "value": _iso(end)},
            ]}],
            "pgSize": size, "srtDirection": "asc", "srtKey": "CreatedAt",
        }
        alerts = self._paged(Alert, endpoint, size, items_key="alerts", request=lambda page: self._request_json(
            "POST", endpoint, page=page, json={**query, "pgNum": page}))
        yield from (a for a in alerts if start <= a.created_at < end)

    def iter_alert_rules(self) -> Iterator[AlertRule]:
        endpoint, size = "/v2/alert-rules", self.ALERT_RULES_PAGE_SIZE
        yield from self._paged(AlertRule, endpoint, size, items_key=None, request=lambda page: self._request_json(
            "GET", endpoint, page=page, params={"PageNumber": page, "PageSize": size}))

    def iter_actors(self) -> Iterator[Actor]:
        endpoint, size = "/v1/actors/actor/search", self.ACTORS_PAGE_SIZE
        yield from self._paged(Actor, endpoint, size, items_key="actors", first_page=1,  # 1-based here
                               request=lambda page: self._request_json(
                                   "GET", endpoint, page=page, params={"page": page, "pageSize": size}))

    def iter_session_events(self, session_id: str) -> Iterator[FileEvent]:
        """The file events of one session (the endpoint answers with all of them at once)."""
        endpoint = f"/v1/sessions/{session_id}/events"
        body = self._request_json("GET", endpoint)
        result = self._field(body, "queryResult", endpoint, None)
        yield from self._records(FileEvent, self._field(result, "fileEvents", endpoint, None), endpoint, None)

    def get_session(self, session_id: str) -> Session:
        endpoint = f"/v1/sessions/{session_id}"
        return self._records(Session, [self._request_json("GET", endpoint)], endpoint, None)[0]

    def get_actor(self, actor_id: str) -> Actor:
        endpoint = f"/v1/actors/actor/id/{actor_id}"
        return self._records(Actor, [self._request_json("GET", endpoint)], endpoint, None)[0]

    # --- "Authorize" ---------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read one item per permission the integration needs."""
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
                "on_or_after": 0, "before": _epoch_ms(datetime.now(UTC), "now"), "page_size": 1, "page_number": 0})),
            ('"Alerts and Sessions"', lambda: self._request_json("POST", "/v1/alerts/query-alerts", json={
                "tenantId": tenant, "groupClause": "AND", "groups": [], "pgNum": 0, "pgSize": 1,
                "srtDirection": "asc", "srtKey": "CreatedAt"})),
        )
        for permission, check in checks:
            try:
                check()
            except Code42ApiError as exc:
                if exc.status == 403:
                    return False, f"Missing permission: the API client needs Read on {permission}."
                return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
            except Code42Error as exc:
                return False, f"Unreachable or non-Code42 Base URL {self.base_url}: {exc}"
        return True, f"Authorized: tenant {tenant}; Alert Rules and Alerts and Sessions are readable."


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _epoch_ms(value: datetime, what: str) -> int:
    return int(_aware(value, what).timestamp() * 1000)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


_FILTER_PARAMS = {
    "actor_id": "actor_id", "has_alerts": "has_alerts", "states": "state", "severities": "severity",
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
        if isinstance(value, bool):
            value = str(value).lower()
        params[_FILTER_PARAMS[name]] = value
    return params


def _error_text(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] if text else response.reason or "error"

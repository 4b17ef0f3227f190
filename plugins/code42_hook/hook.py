"""Code42Hook: one hook per ``code42`` connection (Client ID, Client Secret, Base URL).

Transport (pooled session, retries, throttle, timeouts, validation, paging) comes from
``JsonApiHook`` on the providers-http HttpHook; here are Code42's OAuth token auth object, its
Base URL rule and its endpoints: generators that hide paging and yield validated records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from code42_hook.auth import Code42TokenAuth
from code42_hook.errors import Code42ApiError, Code42ConfigError, Code42Error, Code42PayloadError
from code42_hook.records import Actor, Alert, AlertRule, FileEvent, Session
from code42_hook.throttle import RateLimiter
from code42_hook.transport import ApiSettings, HookStats, JsonApiHook
from code42_hook.urls import normalize_base_url

Code42Settings = ApiSettings  # the connection extras (see ApiSettings)
__all__ = ["Code42Hook", "Code42Settings", "HookStats"]


class Code42Hook(JsonApiHook):
    """Code42 Incydr API client for one connection (Client ID, Client Secret, Base URL)."""

    conn_name_attr = "code42_conn_id"
    default_conn_name = "code42_default"
    conn_type = "code42"
    hook_name = "Code42 Incydr"
    api_name = "Code42"
    default_rate_limit_per_minute = 120.0  # Code42's documented limit per API client

    SESSIONS_PAGE_SIZE = 50
    ALERTS_PAGE_SIZE = 500
    ALERT_RULES_PAGE_SIZE = 100
    ACTORS_PAGE_SIZE = 500

    def __init__(self, code42_conn_id: str = default_conn_name, *, limiter: RateLimiter | None = None) -> None:
        super().__init__(code42_conn_id, auth_type=Code42TokenAuth, limiter=limiter)
        self.code42_conn_id = code42_conn_id

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
    def iter_sessions(self, start: datetime, end: datetime, **filters: Any) -> Iterator[Session]:
        """Sessions that began in [start, end); filters are the API's query parameters
        (``actor_id``, ``has_alerts``, ``states``, ``severities``, ``rule_id``, ``watchlist_id``,
        ``risk_indicators``, ``content_inspection_status``, ``order_by``, ``sort_direction``)."""
        endpoint, size = "/v1/sessions", self.SESSIONS_PAGE_SIZE
        # Ascending unless the caller says otherwise: the API's default is descending, where every
        # session that arrives while we page lands on page 0 and shifts the rest (read twice).
        params = {"on_or_after": _epoch_ms(start, "start"), "before": _epoch_ms(end, "end"), "page_size": size,
                  "sort_direction": "asc", **_session_filters(filters)}
        yield from self._paged(Session, endpoint, size, items_key="items", request=lambda page: self._request_json(
            "GET", endpoint, page=page, params={**params, "page_number": page}),
            grows_at_end=None if "order_by" in filters else (lambda s: s.session_id))

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
            "POST", endpoint, page=page, json={**query, "pgNum": page}), grows_at_end=lambda a: a.id)
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

"""KnowBe4EventsHook: the KnowBe4 User Event API over a ``knowbe4_events`` connection (API Key,
Base URL ``https://api.events.knowbe4.com`` or a regional ``api-{eu,ca,uk,de}.events.knowbe4.com``).

What an external system uses to put its events on the user's Events Timeline in KSAT and move
their Personal Risk Score: ``GET/POST /event_types``, ``POST /events`` (answered with a request id,
whose outcome is ``GET /statuses/{id}``), ``GET /events?external_id=...``, ``DELETE /events/{id}``.

The transport is the project's API client (``apiclient``: pooled session, throttle, timeouts), with rules
of its own, because KnowBe4 counts every call against a daily quota (10 per seat per key):
- ``gate`` (set by the caller) runs before every call, retries included, and may refuse it
  (``securitycoach.coaching.ksat_events`` counts the quota in the warehouse there);
- retries are tenacity's, as every hook's; 429 is retried only when its ``Retry-After`` is at most
  ``max_retry_wait`` (extra, 60 s; ``knowbe4_hook.settings``); a longer
  wait (the quota is used up until tomorrow) raises ``EventsRateLimited`` at once;
- a call that creates something (``POST``) is never retried after it may have reached KnowBe4: a
  5xx or a broken connection raises ``OutcomeUnknown`` (the caller looks the event up by
  ``external_id`` before it ever sends it again). A 429 did not reach processing, so it is retried.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import requests
import tenacity

from apiclient.retry import RetryableStatus, is_transient, wait_retry_after_or_backoff
from apiclient.settings import ApiSettings
from apiclient.throttle import RateLimiter
from apiclient.transport import JsonApiHook, error_text
from apiclient.urls import normalize_base_url
from code42_hook.provider_info import RATE_LIMITS
from knowbe4_hook.errors import (
    KNOWBE4_ERRORS,
    EventsRateLimited,
    KnowBe4ApiError,
    KnowBe4ConfigError,
    KnowBe4Error,
    KnowBe4PayloadError,
    OutcomeUnknown,
)
from knowbe4_hook.hook import BearerKeyAuth
from knowbe4_hook.settings import EventsSettings

EVENTS_REGIONS = ("", "eu", "ca", "uk", "de")  # "" is the US host api.events.knowbe4.com
EVENTS_API_HOSTS = frozenset(f"api{'-' + r if r else ''}.events.knowbe4.com" for r in EVENTS_REGIONS)
EVENTS_PAGE_SIZE = 100
def normalize_events_url(value: str | None) -> str:
    """``scheme://host[:port]`` of a User Event API host (or loopback, for the sandbox)."""
    return normalize_base_url(value, api="KnowBe4 User Event API", hosts=EVENTS_API_HOSTS,
                              example="https://api.events.knowbe4.com",
                              expected="a User Event API host; expected one of "
                                       + ", ".join("https://" + h for h in sorted(EVENTS_API_HOSTS)),
                              error=KnowBe4ConfigError)


class KnowBe4EventsHook(JsonApiHook):
    """KnowBe4 User Event API client (one ``knowbe4_events`` connection = one API key and its quota)."""

    conn_name_attr = "knowbe4_events_conn_id"
    default_conn_name = "knowbe4_events_default"
    conn_type = "knowbe4_events"
    hook_name = "KnowBe4 User Event API"
    api_name = "KnowBe4 User Event API"
    errors = KNOWBE4_ERRORS
    default_rate_limit_per_minute = RATE_LIMITS[conn_type]

    def __init__(self, knowbe4_events_conn_id: str = default_conn_name, *, limiter: RateLimiter | None = None,
                 gate: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(knowbe4_events_conn_id, auth_type=None, limiter=limiter)
        self.knowbe4_events_conn_id = knowbe4_events_conn_id
        self.gate = gate  # called with "METHOD /endpoint" before every call; raises to refuse it
        self.sleep = sleep

    @cached_property
    def events_settings(self) -> EventsSettings:
        """The connection's ``seats`` and ``max_retry_wait`` (``knowbe4_hook.settings``)."""
        extra = self.connection.extra_dejson
        return EventsSettings.from_extra(self.knowbe4_events_conn_id,
                                         {k: v for k, v in extra.items() if k in EventsSettings.names()},
                                         error=KnowBe4ConfigError)

    @cached_property
    def settings(self) -> ApiSettings:
        return ApiSettings.from_extra(self.knowbe4_events_conn_id, self.connection.extra_dejson,
                                      error=KnowBe4ConfigError, besides=(EventsSettings,),
                                      rate_limit_per_minute=self.default_rate_limit_per_minute)

    def _configure_session_from_extra(self, session, connection, extra_options):
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for name in EventsSettings.names():  # settings, not headers
            session.headers.pop(name, None)
        return session

    @property
    def key_id(self) -> str:
        """Names this connection's API key without revealing it (the quota is the key's)."""
        return hashlib.sha256(f"knowbe4-events\x1f{self.connection.password or ''}".encode()).hexdigest()[:16]

    def checked_base_url(self) -> str:
        base_url = normalize_events_url(self.connection.host)
        if not self.connection.password:
            raise KnowBe4ConfigError(f"connection {self.knowbe4_events_conn_id!r}: the API Key (password) is required")
        return base_url

    def configure_auth(self, session: requests.Session) -> None:
        session.auth = BearerKeyAuth(self.connection.password)

    # --- transport -----------------------------------------------------------------------------
    def _call(self, method: str, endpoint: str, *, params: dict | None = None, json: dict | None = None,
              creates: bool = False) -> Any:
        """One call with its retries (tenacity; each attempt through ``gate``); the JSON body or None."""
        session, retries = self.session, self.settings.max_retries

        def attempt() -> Any:
            if self.gate is not None:
                self.gate(f"{method} {endpoint}")
            self.limiter.acquire()
            self.stats.add(requests=1)
            request = requests.Request(method, self.url_from_endpoint(endpoint), params=params, json=json)
            try:
                response = self.run_and_check(session, session.prepare_request(request),
                                              {"timeout": self.timeout, "check_response": False})
            except requests.RequestException as exc:
                if creates:
                    raise OutcomeUnknown(f"{self.api_name} {method} {endpoint}: no answer "
                                         f"({exc.__class__.__name__}); it may have been processed") from None
                raise
            return self._answer(response, method, endpoint, creates)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retries + 1), wait=wait_retry_after_or_backoff(self.settings.retry_backoff),
            retry=tenacity.retry_if_exception(is_transient), sleep=self.sleep, reraise=True,
            before_sleep=lambda state: self.stats.add(retries=1))
        try:
            return retrying(attempt)
        except RetryableStatus as exc:
            if exc.status == 429:
                raise EventsRateLimited(f"{method} {endpoint}", exc.retry_after) from None
            raise KnowBe4ApiError(method, endpoint, exc.status, f"still failing after {retries} retries",
                                  api=self.api_name) from None
        except requests.RequestException as exc:
            raise KnowBe4ApiError(method, endpoint, None, f"unreachable ({exc.__class__.__name__}) after {retries} "
                                  "retries", api=self.api_name) from None

    def _answer(self, response: requests.Response, method: str, endpoint: str, creates: bool) -> Any:
        """An answer's JSON body (None if empty), or what its status means: a 429 to wait for (or
        too long to wait), a 5xx to retry (unless a create may have been processed), a refusal."""
        status = response.status_code
        if status == 429:
            self.stats.add(n_429=1)
            wait = _seconds(response.headers.get("Retry-After"))
            if wait is None or wait > self.events_settings.max_retry_wait:
                raise EventsRateLimited(f"{method} {endpoint}", wait)
            raise RetryableStatus(429, wait)  # not processed: safe to send again after the wait
        if status >= 500:
            self.stats.add(n_5xx=1)
            if creates:
                raise OutcomeUnknown(f"{self.api_name} {method} {endpoint}: HTTP {status}; it may have been "
                                     "processed")
            raise RetryableStatus(status, None)
        if status >= 400:
            raise KnowBe4ApiError(method, endpoint, status, error_text(response), api=self.api_name)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise KnowBe4PayloadError(endpoint, None, "body is not valid JSON", api=self.api_name) from None

    def _data(self, body: Any, endpoint: str) -> Any:
        return self._field(body, "data", endpoint, None)

    # --- endpoints -----------------------------------------------------------------------------
    def event_types(self, name: str | None = None) -> list[dict]:
        body = self._call("GET", "/event_types", params={"name": name} if name else None)
        items = self._data(body, "/event_types")
        if not isinstance(items, list):
            raise KnowBe4PayloadError("/event_types", None, "data is not a list", api=self.api_name)
        return items

    def create_event_type(self, name: str, description: str | None = None) -> dict:
        body = self._call("POST", "/event_types", json={"name": name, "description": description}, creates=True)
        return self._data(body, "/event_types")

    def create_event(self, event: dict) -> str:
        """``POST /events``; returns the request id (its outcome: ``request_status``)."""
        data = self._data(self._call("POST", "/events", json=event, creates=True), "/events")
        if not isinstance(data, dict) or not data.get("id"):
            raise KnowBe4PayloadError("/events", None, "answer has no data.id (the request id)", api=self.api_name)
        return str(data["id"])

    def find_events(self, external_id: str) -> list[dict]:
        """The events carrying ``external_id`` (one page: an external id names one event)."""
        body = self._call("GET", "/events", params={"external_id": external_id, "per_page": EVENTS_PAGE_SIZE})
        items = self._data(body, "/events")
        if not isinstance(items, list) or not all(isinstance(e, dict) and e.get("id") for e in items):
            raise KnowBe4PayloadError("/events", None, "data is not a list of events with ids", api=self.api_name)
        return [e for e in items if e.get("external_id") == external_id]

    def delete_event(self, event_id: str) -> bool:
        """``DELETE /events/{id}``; False if KnowBe4 has no such event (already deleted)."""
        try:
            self._call("DELETE", f"/events/{event_id}")
        except KnowBe4ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def request_status(self, request_id: str) -> dict:
        return self._data(self._call("GET", f"/statuses/{request_id}"), "/statuses")

    def test_connection(self) -> tuple[bool, str]:
        """Prove the key with one ``GET /event_types`` (it counts against the day's quota)."""
        try:
            types = self.event_types()
        except KnowBe4ConfigError as exc:
            return False, f"Invalid KnowBe4 User Event API connection: {exc}"
        except KnowBe4ApiError as exc:
            if exc.status in (401, 403):
                return False, (f"Bad API key: the KnowBe4 User Event API refused it (HTTP {exc.status}); use a User "
                               "Event API key (Account Settings > Account Integrations > User Event API), not the "
                               "Reporting API key")
            return False, f"KnowBe4 User Event API unreachable or refused: {exc}"
        except KnowBe4Error as exc:
            return False, f"KnowBe4 User Event API unreachable or refused: {exc}"
        return True, f"KnowBe4 User Event API key accepted ({len(types)} event types)."


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None

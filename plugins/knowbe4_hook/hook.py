"""KnowBe4Hook: one hook per ``knowbe4`` connection (API Key, Base URL).

The project's API client (``apiclient``: pooled session, retries with backoff and Retry-After,
client-side throttle, timeouts, validated records, paging until a short page); auth is the
Reporting API key as a bearer token, masked in logs. Failures are ``KnowBe4Error``s.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests
from pydantic import Field
from requests.auth import AuthBase

from apiclient.masking import mask
from apiclient.paging import PageUntilShort
from apiclient.records import Record
from apiclient.throttle import RateLimiter
from apiclient.transport import JsonApiHook, JsonListing
from apiclient.urls import normalize_base_url
from code42_hook.provider_info import RATE_LIMITS
from knowbe4_hook.errors import KNOWBE4_ERRORS, KnowBe4ConfigError, KnowBe4PayloadError

KNOWBE4_REGIONS = ("us", "eu", "ca", "uk", "de")
KNOWBE4_API_HOSTS = frozenset(f"{region}.api.knowbe4.com" for region in KNOWBE4_REGIONS)


class KsatUser(Record):
    id: int
    email: str
    status: str
    employee_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    location: str | None = None
    division: str | None = None
    department: str | None = None
    manager_name: str | None = None
    manager_email: str | None = None
    groups: list[int] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    joined_on: str | None = None
    archived_at: str | None = None
    custom_field_1: str | None = None
    custom_field_2: str | None = None
    custom_field_3: str | None = None
    custom_field_4: str | None = None


class KsatGroup(Record):
    id: int
    name: str
    group_type: str | None = None
    member_count: int | None = None
    status: str | None = None


class BearerKeyAuth(AuthBase):
    """``Authorization: Bearer <Reporting API key>``; the key is registered with the log masker."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        mask(api_key)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request


def normalize_knowbe4_url(value: str | None) -> str:
    """``scheme://host[:port]`` of a KnowBe4 Reporting API host (or loopback, for the sandbox)."""
    return normalize_base_url(value, api="KnowBe4", hosts=KNOWBE4_API_HOSTS, example="https://us.api.knowbe4.com",
                              expected="a KnowBe4 Reporting API host; expected https://<region>.api.knowbe4.com "
                                       f"with region one of {', '.join(KNOWBE4_REGIONS)}",
                              error=KnowBe4ConfigError)


class KnowBe4Hook(JsonApiHook):
    """KnowBe4 Reporting API client: the KSAT user directory and groups."""

    conn_name_attr = "knowbe4_conn_id"
    default_conn_name = "knowbe4_default"
    conn_type = "knowbe4"
    hook_name = "KnowBe4 Reporting API"
    api_name = "KnowBe4"
    errors = KNOWBE4_ERRORS
    default_rate_limit_per_minute = RATE_LIMITS[conn_type]

    USERS_PAGE_SIZE = 500
    GROUPS_PAGE_SIZE = 500  # KnowBe4 pages every listing: 100 per page by default, 500 at most

    def __init__(self, knowbe4_conn_id: str = default_conn_name, *, limiter: RateLimiter | None = None) -> None:
        super().__init__(knowbe4_conn_id, auth_type=None, limiter=limiter)
        self.knowbe4_conn_id = knowbe4_conn_id

    def checked_base_url(self) -> str:
        base_url = normalize_knowbe4_url(self.connection.host)
        if not self.connection.password:
            raise KnowBe4ConfigError(f"connection {self.knowbe4_conn_id!r}: the API Key (password) is required")
        return base_url

    def configure_auth(self, session: requests.Session) -> None:
        session.auth = BearerKeyAuth(self.connection.password)

    def iter_users(self, status: str | None = None) -> Iterator[KsatUser]:
        """Every user (``status`` active|archived to filter); an empty page ends the listing."""
        if status not in (None, "active", "archived"):
            raise ValueError(f"iter_users: status must be active, archived or None, got {status!r}")
        endpoint, size = "/v1/users", self.USERS_PAGE_SIZE
        params = {"per_page": size, **({"status": status} if status else {})}
        listing = JsonListing(self, KsatUser, endpoint, lambda page: self._request_json(
            "GET", endpoint, page=page, params={**params, "page": page}))
        yield from self._progressed(endpoint, lambda progress: PageUntilShort(size).records(listing, progress))

    def iter_groups(self) -> Iterator[KsatGroup]:
        """Every group, page by page like the users (a single request would stop at the first 100)."""
        endpoint, size = "/v1/groups", self.GROUPS_PAGE_SIZE
        listing = JsonListing(self, KsatGroup, endpoint, lambda page: self._request_json(
            "GET", endpoint, page=page, params={"page": page, "per_page": size}))
        yield from self._progressed(endpoint, lambda progress: PageUntilShort(size).records(listing, progress))

    def account(self) -> dict:
        """``GET /v1/account``: the account, with ``number_of_seats``."""
        body = self._request_json("GET", "/v1/account")
        if not isinstance(body, dict) or not isinstance(body.get("number_of_seats"), int):
            raise KnowBe4PayloadError("/v1/account", None, "no integer number_of_seats", api=self.api_name)
        return body

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.settings  # noqa: B018 - validates the extras first, so their error is named as theirs
        except KnowBe4ConfigError as exc:
            return False, f"Invalid connection settings: {exc}"
        try:
            users = list(self._records(KsatUser, self._request_json(
                "GET", "/v1/users", params={"page": 1, "per_page": 1}), "/v1/users", 1))
        except KnowBe4ConfigError as exc:
            return False, f"Invalid KnowBe4 Base URL: {exc}"
        except Exception as exc:  # noqa: BLE001 - the form shows the reason
            return False, f"KnowBe4 Reporting API refused or unreachable: {exc}"
        return True, f"KnowBe4 Reporting API reachable ({len(users)} user read)."

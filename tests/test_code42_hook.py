"""Code42Hook against the sandbox over real HTTP, including every fault knob."""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import requests
import tenacity
from http_front import HttpFront

from apiclient.retry import (
    RetryableStatus,
    TruncatedBody,
    is_transient,
    parse_retry_after,
    wait_retry_after_or_backoff,
)
from code42_hook import Code42ApiError, Code42ConfigError, Code42Hook, Code42PayloadError
from code42_hook.records import Record
from code42_hook.urls import normalize_base_url

_ids = count()
DAY = timedelta(days=1)


@pytest.fixture
def make_hook(clean_sandbox, monkeypatch):
    def make(client_id="sandbox-client", secret=None, host=None, **extra):
        conn_id = f"code42_test_{next(_ids)}"
        extra = {"rate_limit_per_minute": 6000, "retry_backoff": 0.05, **extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "code42", "login": client_id, "password": secret or clean_sandbox.client_secret,
            "host": host or clean_sandbox.base_url, "extra": extra,
        }))
        return Code42Hook(conn_id)
    return make


@pytest.fixture
def window(sandbox):
    end = sandbox.anchor - timedelta(hours=6)
    return end - 3 * DAY, end


def _ids_of(records, key="session_id"):
    return [getattr(r, key) for r in records]


def test_sessions_are_read_exactly_once_each_from_both_listings(make_hook, window):
    """GET /v1/sessions holds a session in one of two listings, has_alerts=true (the API's default)
    or has_alerts=false (OpenAPI: "Only include sessions that have a matching alert status"); the
    hook reads both, by begin-time sub-windows of one page each."""
    start, end = window
    hook = make_hook()
    sessions = list(hook.iter_sessions(start, end))
    ids = _ids_of(sessions)
    assert len(sessions) > 2 * Code42Hook.SESSIONS_PAGE_SIZE  # several pages
    assert len(set(ids)) == len(ids)
    assert all(start <= s.begin_time < end for s in sessions)
    alerted = _ids_of(make_hook().iter_sessions(start, end, has_alerts=True))
    quiet = _ids_of(make_hook().iter_sessions(start, end, has_alerts=False))
    assert alerted and quiet and not set(alerted) & set(quiet)
    assert sorted(alerted + quiet) == sorted(ids)
    assert {s.session_id for s in sessions if s.triggered_alerts} == set(alerted)
    # Every answer used holds a whole sub-window; the other requests were sub-windows cut again.
    assert hook.stats.items == len(sessions) and hook.stats.pages < hook.stats.requests
    minimum = -(-len(alerted) // Code42Hook.SESSIONS_PAGE_SIZE) + -(-len(quiet) // Code42Hook.SESSIONS_PAGE_SIZE)
    assert hook.stats.requests <= 2 * minimum + 2
    middle = start + (end - start) / 2
    halves = _ids_of(hook.iter_sessions(start, middle)) + _ids_of(hook.iter_sessions(middle, end))
    assert sorted(halves) == sorted(ids)


def test_adjacent_alert_intervals_partition_the_union(make_hook, window):
    start, end = window
    hook = make_hook()
    middle = start + timedelta(hours=17)
    union = _ids_of(hook.iter_alerts(start, end), "id")
    first, second = _ids_of(hook.iter_alerts(start, middle), "id"), _ids_of(hook.iter_alerts(middle, end), "id")
    assert union and first and second
    assert sorted(first + second) == sorted(union)
    assert not set(first) & set(second)
    assert all(start <= a.created_at < end for a in hook.iter_alerts(start, end))


def test_rules_actors_and_events(make_hook, window):
    hook = make_hook()
    hook.ALERT_RULES_PAGE_SIZE, hook.ACTORS_PAGE_SIZE = 3, 7  # force several pages
    rules = list(hook.iter_alert_rules())
    assert len(rules) == 8 and len({r.id for r in rules}) == 8
    assert any(r.is_system_rule for r in rules) and any(not r.is_system_rule for r in rules)
    actors = list(hook.iter_actors())
    assert len(actors) == 40 and len({a.actor_id for a in actors}) == 40
    assert hook.get_actor(actors[5].actor_id).raw == actors[5].raw
    session = next(iter(hook.iter_sessions(*window, has_alerts=True)))
    events = list(hook.iter_session_events(session.session_id))
    assert events and {e.user["actorId"] for e in events} == {session.actor_id}
    assert hook.get_session(session.session_id).session_id == session.session_id
    quiet = next(iter(hook.iter_sessions(*window, has_alerts=False)))
    with pytest.raises(Code42ApiError, match="HTTP 404"):  # OpenAPI: no alerts, no alerted-on events
        list(hook.iter_session_events(quiet.session_id))


def test_429_with_retry_after_is_honoured(make_hook, clean_sandbox, window):
    baseline = _ids_of(make_hook().iter_sessions(*window))
    clean_sandbox.set_faults(fail_429_every=3, retry_after=1)
    hook = make_hook()
    started = time.monotonic()
    assert _ids_of(hook.iter_sessions(*window)) == baseline
    assert hook.stats.n_429 >= 1 and hook.stats.retries == hook.stats.n_429
    assert time.monotonic() - started >= hook.stats.n_429 * 1.0  # waited what Retry-After asked


def test_5xx_burst_dropped_connections_and_truncated_pages_are_survived(make_hook, clean_sandbox, window):
    baseline = _ids_of(make_hook().iter_sessions(*window))
    clean_sandbox.set_faults(fail_next=[503, 500, 502], drop_next=0)
    hook = make_hook()
    assert _ids_of(hook.iter_sessions(*window)) == baseline
    assert hook.stats.n_5xx == 3 and hook.stats.retries == 3
    clean_sandbox.set_faults(drop_next=2)
    hook = make_hook()
    assert _ids_of(hook.iter_sessions(*window)) == baseline
    assert hook.stats.retries == 2
    clean_sandbox.set_faults(malformed_every=2)
    hook = make_hook()
    assert _ids_of(hook.iter_sessions(*window)) == baseline
    assert hook.stats.retries >= 1


def test_permanent_faults_fail_with_endpoint_page_and_cause(make_hook, clean_sandbox, window):
    clean_sandbox.set_faults(malformed_every=1)
    with pytest.raises(Code42PayloadError, match=r"/v1/sessions page 0: .*not valid JSON"):
        list(make_hook(max_retries=2).iter_sessions(*window))
    clean_sandbox.set_faults(malformed_every=0, missing_key_every=2)
    with pytest.raises(Code42PayloadError, match=r"/v1/sessions page \d+: unexpected response: item 0 is not a valid Session: lastUpdated: Field required"):
        list(make_hook().iter_sessions(*window))
    clean_sandbox.set_faults(missing_key_every=0, fail_next=[503] * 4)
    with pytest.raises(Code42ApiError, match=r"GET /v1/sessions page 0: HTTP 503: still failing after 3 retries"):
        list(make_hook(max_retries=3).iter_sessions(*window))


def test_token_refreshes_before_expiry_and_once_on_401(make_hook, clean_sandbox, window):
    baseline = _ids_of(make_hook().iter_sessions(*window))
    clean_sandbox.set_faults(token_ttl=2, latency_ms=120)
    hook = make_hook(pages_in_flight=1)
    hook.SESSIONS_PAGE_SIZE = 10  # ~25 answers of 120 ms one by one: the 2 s token expires while reading
    assert sorted(_ids_of(hook.iter_sessions(*window))) == sorted(baseline)
    assert hook.stats.token_fetches >= 2  # refreshed mid-paging, before the server refused it

    clean_sandbox.set_faults(token_ttl=900, latency_ms=0)
    hook = make_hook()
    pages = hook.iter_sessions(*window)
    got = [next(pages).session_id]
    clean_sandbox.revoke_tokens()  # the cached token is now refused: 401, new token, same request again
    got += [s.session_id for s in pages]
    assert got == baseline
    assert hook.stats.token_fetches == 2 and hook.stats.retries == 0


def test_client_throttle_holds_the_rate(make_hook, clean_sandbox, window):
    clean_sandbox.set_faults(rate_limit_per_min=120)
    hook = make_hook(rate_limit_per_minute=120)
    hook.SESSIONS_PAGE_SIZE = 5
    started = time.monotonic()
    sessions = list(hook.iter_sessions(window[0], window[0] + timedelta(hours=12)))
    elapsed = time.monotonic() - started
    assert hook.stats.requests >= 4
    assert elapsed >= (hook.stats.requests - 1) * 0.5 * 0.95  # 120/min = one request per 0.5 s
    assert hook.stats.n_429 == 0 and clean_sandbox.stats().get("n_429", 0) == 0
    assert len(sessions) > 15


def test_test_connection_says_what_is_wrong(make_hook, clean_sandbox):
    ok, message = make_hook().test_connection()
    assert ok and clean_sandbox.tenant_id in message
    ok, message = make_hook(secret="wrong").test_connection()
    assert not ok and message.startswith("Bad credentials")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    ok, message = make_hook(host=f"http://127.0.0.1:{closed_port}", max_retries=1).test_connection()
    assert not ok and message.startswith("Unreachable or non-Code42 Base URL")
    before = clean_sandbox.stats()["data_requests"]
    for host in ("https://example.com", "http://api.us.code42.com"):
        ok, message = make_hook(host=host).test_connection()
        assert not ok and message.startswith("Unreachable or non-Code42 Base URL")
    assert clean_sandbox.stats()["data_requests"] == before
    ok, message = make_hook(read_timeout=0).test_connection()  # a bad setting is named as one
    assert not ok and message.startswith("Invalid connection settings: connection 'code42_test_")
    assert "extra read_timeout=0 must be at least 0.001" in message
    ok, message = make_hook(client_id="sandbox-no-rules").test_connection()
    assert not ok and message == 'Missing permission: the API client needs Read on "Alert Rules".'
    ok, message = make_hook(client_id="sandbox-no-sessions").test_connection()
    assert not ok and message == 'Missing permission: the API client needs Read on "Alerts and Sessions".'


def test_secrets_and_tokens_never_reach_logs(make_hook, clean_sandbox, window, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    clean_sandbox.set_faults(fail_429_every=4, retry_after=1, fail_next=[503])
    hook = make_hook(secret=None)
    list(hook.iter_sessions(*window))
    clean_sandbox.revoke_tokens()
    list(hook.iter_alerts(*window))
    token = hook.session.auth.token()
    bad = make_hook(secret="sandbox-secret-but-wrong")
    with pytest.raises(Code42ApiError) as refused:
        list(bad.iter_alert_rules())
    out, err = capfd.readouterr()
    logs = caplog.text + out + err + str(refused.value)
    assert hook.stats.retries >= 1 and "retry" in caplog.text  # there was something to log
    for secret in (clean_sandbox.client_secret, "sandbox-secret-but-wrong", token, token.split(".")[1]):
        assert secret not in logs


def test_bad_input_is_refused_clearly(make_hook):
    hook = make_hook()
    with pytest.raises(ValueError, match="timezone-aware"):
        list(hook.iter_sessions(datetime(2026, 10, 1), datetime(2026, 10, 2, tzinfo=UTC)))
    with pytest.raises(ValueError, match="unknown filter"):
        list(hook.iter_sessions(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC), colour="red"))
    with pytest.raises(Code42ConfigError, match="unknown extra field"):
        make_hook(rate_limit=5).settings  # noqa: B018
    with pytest.raises(Code42ConfigError, match=r"rate_limit_per_minute=0 must be at least 0\.001"):
        make_hook(rate_limit_per_minute=0).settings  # noqa: B018


@pytest.mark.parametrize(("given", "expected"), [
    ("api.us.code42.com", "https://api.us.code42.com"),
    ("https://api.ie.code42.com/", "https://api.ie.code42.com"),
    ("HTTPS://API.GOV.CODE42.COM", "https://api.gov.code42.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:9", "http://localhost:9"),
])
def test_base_url_accepted(given, expected):
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(("given", "problem"), [
    ("", "empty"),
    ("http://api.us.code42.com", "plain http"),
    ("https://api.mars.code42.com", "not a Code42 API host"),
    ("https://code42.com.evil.example", "not a Code42 API host"),
    ("ftp://api.us.code42.com", "not an http"),
])
def test_base_url_refused(given, problem):
    with pytest.raises(Code42ConfigError, match=problem):
        normalize_base_url(given)


def test_sandbox_hosts_are_allowed_only_when_the_platform_names_them(monkeypatch):
    with pytest.raises(Code42ConfigError, match="plain http"):
        normalize_base_url("http://sandbox:8042")
    monkeypatch.setenv("SECURITYCOACH_SANDBOX_HOSTS", "sandbox, other")
    assert normalize_base_url("http://sandbox:8042") == "http://sandbox:8042"
    with pytest.raises(Code42ConfigError, match="plain http"):
        normalize_base_url("http://sandbox.evil.example:8042")


class _Item(Record):
    id: str


def test_items_arriving_while_pages_are_in_flight_are_read_once(make_hook):
    """With pages in flight the final page can be answered before an earlier one; items that joined
    the end in between announce a larger totalCount, so the final page is read again for them."""
    listing = [{"id": f"i{n}"} for n in range(5)]  # page size 2: pages 0, 1, 2
    final_answered = threading.Event()
    served: list[int] = []

    def request(page):
        if page == 1:  # slow middle page: answered after the final one, once two items arrived
            assert final_answered.wait(5)
            listing.extend({"id": f"i{n}"} for n in (5, 6))
        body = {"items": listing[2 * page:2 * page + 2], "totalCount": len(listing)}
        served.append(page)
        if page == 2:
            final_answered.set()
        return body

    hook = make_hook(pages_in_flight=4)
    got = [r.id for r in hook._paged(_Item, "/test", 2, request, items_key="items", grows_at_end=lambda r: r.id)]
    assert got == [f"i{n}" for n in range(7)]
    assert served == [0, 2, 1, 2, 3]  # the final page again, then the page the new items filled past


def test_a_listing_that_did_not_grow_is_read_once_per_page(make_hook):
    listing = [{"id": f"i{n}"} for n in range(5)]
    served: list[int] = []

    def request(page):
        served.append(page)
        return {"items": listing[2 * page:2 * page + 2], "totalCount": len(listing)}

    hook = make_hook(pages_in_flight=4)
    got = [r.id for r in hook._paged(_Item, "/test", 2, request, items_key="items", grows_at_end=lambda r: r.id)]
    assert got == [f"i{n}" for n in range(5)] and sorted(served) == [0, 1, 2]


def test_an_alert_created_exactly_at_the_end_belongs_to_the_next_interval_only(make_hook, window):
    start, end = window
    hook = make_hook()
    alerts = list(hook.iter_alerts(start, end))
    edge = alerts[len(alerts) // 2]  # an interval boundary exactly on one alert's createdAt
    assert start < edge.created_at < end
    before = _ids_of(hook.iter_alerts(start, edge.created_at), "id")
    after = _ids_of(hook.iter_alerts(edge.created_at, end), "id")
    assert edge.id not in before and edge.id in after
    assert sorted(before + after) == sorted(a.id for a in alerts)


@pytest.mark.parametrize("in_flight", [1, 4])
def test_a_listing_whose_last_page_is_exactly_full_makes_no_extra_request(make_hook, in_flight):
    listing = [{"id": f"i{n}"} for n in range(6)]  # page size 2: pages 0, 1, 2, all full
    served: list[int] = []

    def request(page):
        served.append(page)
        return {"items": listing[2 * page:2 * page + 2], "totalCount": len(listing)}

    hook = make_hook(pages_in_flight=in_flight)
    got = [r.id for r in hook._paged(_Item, "/test", 2, request, items_key="items")]
    assert got == [f"i{n}" for n in range(6)] and sorted(served) == [0, 1, 2]


def test_an_exactly_full_alerts_page_is_the_last_request(make_hook, clean_sandbox, window):
    hook = make_hook()
    alerts = list(hook.iter_alerts(*window))
    listed = hook.stats.items  # what the API listed for the range (before the end is trimmed)
    assert len(alerts) <= listed <= 500
    hook = make_hook()
    hook.ALERTS_PAGE_SIZE = listed  # one page, exactly full: its totalCount says it is the last
    before = clean_sandbox.stats()["data_requests"]
    assert _ids_of(hook.iter_alerts(*window), "id") == _ids_of(alerts, "id")
    assert clean_sandbox.stats()["data_requests"] - before == 1 and hook.stats.requests == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_transient_status_on_the_token_endpoint_is_retried(make_hook, clean_sandbox, window, status):
    """The sandbox's fault knobs never touch POST /v1/oauth: an HTTP front in between answers there."""
    with HttpFront(clean_sandbox.base_url, fail={"/v1/oauth": [status, status]}) as front:
        hook = make_hook(host=front.base_url)
        assert hook.tenant_id == clean_sandbox.tenant_id
        rules = list(hook.iter_alert_rules())
    assert len(rules) == 8
    assert front.seen[:3] == [("POST", "/v1/oauth", status), ("POST", "/v1/oauth", status),
                              ("POST", "/v1/oauth", 200)]
    assert hook.stats.retries == 2 and hook.stats.token_fetches == 3


@pytest.fixture
def fresh_masker():
    """Airflow's secrets masker with nothing registered: only what this test's code registers counts.
    The patterns registered before are restored afterwards."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    saved = (set(masker.patterns), masker.replacer)
    masker.reset_masker()
    yield masker
    masker.patterns = saved[0] | masker.patterns
    masker.replacer = re.compile("|".join(masker.patterns)) if masker.patterns else saved[1]


def test_a_fetched_token_the_client_secret_and_the_knowbe4_key_are_masked(make_hook, clean_sandbox, fresh_masker,
                                                                          monkeypatch, tmp_path):
    import structlog
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.sdk.log import logging_processors

    from knowbe4_hook import KnowBe4Hook

    hook = make_hook()
    token = hook.session.auth.token()  # the connection is read and a token fetched
    monkeypatch.setenv("AIRFLOW_CONN_KSAT_MASK_TEST", json.dumps(
        {"conn_type": "knowbe4", "password": clean_sandbox.ksat_key, "host": clean_sandbox.base_url}))
    assert list(KnowBe4Hook("ksat_mask_test").iter_groups())  # the KnowBe4 key in use
    raw = {"token": token, "client secret": clean_sandbox.client_secret, "KnowBe4 key": clean_sandbox.ksat_key}
    line = " ".join(f"{name}={value}" for name, value in raw.items())
    redacted = redact(line)
    assert redacted == "token=*** client secret=*** KnowBe4 key=***"
    # a task's log line, written by the processors Airflow's supervisor writes task log files with
    path = tmp_path / "task.log"
    with path.open("ab") as out:
        task_log = structlog.wrap_logger(structlog.BytesLogger(out), processors=logging_processors(json_output=True),
                                         logger_name="task")
        task_log.warning("calling Code42 with %s", line, headers={"Authorization": f"Bearer {token}"})
    written = path.read_text(encoding="utf-8")
    event = json.loads(written)
    # (Airflow's task log processors also cut any JWT down to "eyJ***" on their own)
    assert re.fullmatch(r"calling Code42 with token=(eyJ)?\*\*\* client secret=\*\*\* KnowBe4 key=\*\*\*",
                        event["event"]), event["event"]
    assert event["headers"] == {"Authorization": "***"}
    for name, value in raw.items():
        assert value not in written, name
    assert token.split(".")[1] not in written


def test_the_auth_objects_register_their_secrets_themselves(fresh_masker):
    """Airflow masks a connection's password when it reads it; the auth objects register the client
    secret and the KnowBe4 key themselves too, for credentials that come from anywhere else."""
    from airflow.sdk._shared.secrets_masker import redact

    from code42_hook.auth import Code42TokenAuth
    from knowbe4_hook.hook import BearerKeyAuth

    Code42TokenAuth("client-id", "secret-from-elsewhere-1")
    BearerKeyAuth("ksat-key-from-elsewhere-2")
    assert redact("a=secret-from-elsewhere-1 b=ksat-key-from-elsewhere-2 c=client-id") == "a=*** b=*** c=client-id"


def _retry_state(exc: BaseException, attempt: int = 1) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def _response(status: int, retry_after: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def test_the_retry_policy_says_what_is_transient():
    for status in (429, 500, 502, 503, 504):  # what the token fetch raises as HTTPError
        assert is_transient(requests.HTTPError(response=_response(status))), status
    for status in (400, 401, 403, 404, 409, 501):
        assert not is_transient(requests.HTTPError(response=_response(status))), status
    assert not is_transient(requests.HTTPError("no response"))
    for exc in (RetryableStatus(503, None), TruncatedBody("cut"), requests.ConnectionError(), requests.ReadTimeout(),
                requests.ConnectTimeout(), requests.exceptions.ChunkedEncodingError()):
        assert is_transient(exc), exc
    assert not is_transient(ValueError("a bug")) and not is_transient(Code42PayloadError("/x", None, "bad"))
    exc = RetryableStatus(429, 2.5)
    assert str(exc) == "HTTP 429" and (exc.status, exc.retry_after) == (429, 2.5)


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), ("0.5", 0.5), ("0", 0.0), ("-3", 0.0), ("100000", 300.0), (None, None), ("", None),
    ("Wed, 21 Oct 2026 07:28:00 GMT", None),  # the HTTP-date form is not honoured: back off instead
])
def test_retry_after_is_read_in_seconds_and_bounded(header, seconds):
    assert parse_retry_after(header) == seconds


def test_the_wait_honours_retry_after_else_backs_off_exponentially_with_jitter():
    wait = wait_retry_after_or_backoff(0.4, maximum=5.0)  # jitter on Retry-After: up to 0.4 / 4 = 0.1 s
    told = [wait(_retry_state(RetryableStatus(429, 7.0))) for _ in range(300)]
    assert all(7.0 <= w <= 7.1 for w in told) and max(told) - min(told) > 0.05
    header = [wait(_retry_state(requests.HTTPError(response=_response(429, "3")))) for _ in range(300)]
    assert all(3.0 <= w <= 3.1 for w in header) and max(header) > 3.05
    for attempt, base in ((1, 0.4), (2, 0.8), (3, 1.6)):  # 0.4 * 2**(n-1) + uniform(0, 0.4)
        waits = [wait(_retry_state(RetryableStatus(503, None), attempt)) for _ in range(300)]
        assert all(base <= w <= base + 0.4 for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > 0.2
    assert all(wait(_retry_state(requests.ConnectionError(), 12)) == 5.0 for _ in range(20))  # capped
    no_header = [wait(_retry_state(requests.HTTPError(response=_response(503)), 1)) for _ in range(100)]
    assert all(0.4 <= w <= 0.8 for w in no_header)
    assert all(0.4 <= wait(_retry_state(requests.HTTPError("no response"))) <= 0.8 for _ in range(50))
    big = wait_retry_after_or_backoff(8.0)  # the jitter on Retry-After stays under 1.0 / 4 s
    assert all(2.0 <= big(_retry_state(RetryableStatus(429, 2.0))) <= 2.25 for _ in range(200))
    assert max(big(_retry_state(RetryableStatus(429, 2.0))) for _ in range(200)) > 2.2  # P(not) = 0.8**200
    assert wait_retry_after_or_backoff(1.0)(_retry_state(requests.ConnectionError(), 30)) == 60.0  # default cap


# --- the paginator, seen through an HTTP front that rewrites, holds and counts pages ---------------
ALERTS = "/v1/alerts/query-alerts"


def _alert_pages(make_hook, window, size):
    """The alerts of ``window`` and how many pages of ``size`` they fill."""
    hook = make_hook()
    hook.ALERTS_PAGE_SIZE = size
    listed = list(hook.iter_alerts(*window))
    assert hook.stats.items > 3 * size  # enough pages to page through with pages in flight
    return listed, math.ceil(hook.stats.items / size)


@pytest.mark.parametrize("in_flight", [1, 3])
@pytest.mark.parametrize("page", ["first", "middle"])
@pytest.mark.parametrize("fault", ["bad item", "no alerts key"])
def test_a_bad_page_fails_naming_the_endpoint_and_that_page(make_hook, clean_sandbox, window, in_flight, page,
                                                             fault):
    _, pages = _alert_pages(make_hook, window, 5)
    broken = 0 if page == "first" else pages // 2

    def edit(path, asked, body, n):
        if path != ALERTS or asked["pgNum"] != broken:
            return None
        if fault == "bad item":
            body["alerts"][1] = {"id": 7}  # not an alert: no createdAt, no state
        else:
            del body["alerts"]
        return body

    with HttpFront(clean_sandbox.base_url, edit=edit) as front:
        hook = make_hook(host=front.base_url, pages_in_flight=in_flight)
        hook.ALERTS_PAGE_SIZE = 5
        with pytest.raises(Code42PayloadError) as caught:
            list(hook.iter_alerts(*window))
    assert (caught.value.endpoint, caught.value.page) == (ALERTS, broken)
    problem = "item 1 is not a valid Alert" if fault == "bad item" else "missing key 'alerts'"
    assert str(caught.value).startswith(f"Code42 {ALERTS} page {broken}: unexpected response: {problem}")


@pytest.mark.parametrize(("in_flight", "pages"), [(2, 6), (4, 5)])
def test_pages_in_flight_is_how_many_pages_are_asked_for_at_once(make_hook, clean_sandbox, window, in_flight,
                                                                 pages):
    """Each page's answer is held back 1 s, so the requests sent together are open together. With 5
    pages and 4 in flight, all 4 after the first are asked for at once, the last one included."""
    hook = make_hook()
    expected = _ids_of(hook.iter_alerts(*window), "id")
    size = math.ceil(hook.stats.items / pages)
    assert math.ceil(hook.stats.items / size) == pages
    with HttpFront(clean_sandbox.base_url, hold={ALERTS: 1.0}) as front:
        hook = make_hook(host=front.base_url, pages_in_flight=in_flight)
        hook.ALERTS_PAGE_SIZE = size
        assert _ids_of(hook.iter_alerts(*window), "id") == expected
    assert hook.stats.requests == pages
    assert front.most_open[ALERTS] == in_flight


@pytest.mark.parametrize("case", ["served later, not grown", "grown", "grown, no totals", "grown, bad re-read",
                                  "grown, re-read without alerts"])
def test_the_final_page_is_read_again_only_when_the_listing_grew_after_it_was_served(make_hook, clean_sandbox,
                                                                                  window, case):
    """5 pages, 4 in flight: the final page (4) is answered at once, pages 1-3 half a second later.
    Alerts only join the end of the listing, so what arrived in that half second is on page 4."""
    hook = make_hook()
    expected = _ids_of(hook.iter_alerts(*window), "id")
    size = math.ceil(hook.stats.items / 5)
    final = math.ceil(hook.stats.items / size) - 1
    assert final == 4
    grown = case != "served later, not grown"
    asked_for = Counter()

    def edit(path, asked, body, n):
        if path != ALERTS:
            return None
        asked_for[asked["pgNum"]] += 1
        if asked["pgNum"] in (1, 2, 3):
            time.sleep(0.5)  # answered after the final page
            body["totalCount"] += grown and case != "grown, no totals"
        elif asked["pgNum"] == final:
            if case == "grown, no totals":
                del body["totalCount"]
            if grown and asked_for[final] == 2:  # the second request of page 4: the alert that arrived meanwhile
                body["alerts"].append({**body["alerts"][-1], "id": "alert-arrived-meanwhile"})
                if case == "grown, bad re-read":
                    body["alerts"][0] = {"id": 7}
                if case == "grown, re-read without alerts":
                    del body["alerts"]
        return body

    with HttpFront(clean_sandbox.base_url, edit=edit) as front:
        hook = make_hook(host=front.base_url, pages_in_flight=4)
        hook.ALERTS_PAGE_SIZE = size
        if case.startswith("grown, ") and "re-read" in case:
            with pytest.raises(Code42PayloadError) as caught:
                list(hook.iter_alerts(*window))
            assert (caught.value.endpoint, caught.value.page) == (ALERTS, final)
            problem = "item 0 is not a valid Alert" if "bad" in case else "missing key 'alerts'"
            assert f"{ALERTS} page {final}: unexpected response: {problem}" in str(caught.value)
            return
        got = _ids_of(hook.iter_alerts(*window), "id")
    assert got == expected + (["alert-arrived-meanwhile"] if grown else [])
    assert hook.stats.requests == 5 + grown

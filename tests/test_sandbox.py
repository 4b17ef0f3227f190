"""The sandbox over real HTTP (a child process of the ``incydr-sandbox`` console script): OAuth and
permissions, paging rules, time ranges against the generated begin times, filters, consistency of
sessions / alerts / rules / events, determinism, every fault knob, the clock, and the KnowBe4
directory with its ground truth."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import selectors
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests

from incydr_sandbox.config import Faults, SandboxConfig, TenantConfig, parse_anchor
from incydr_sandbox.process import console_script
from incydr_sandbox.server import RunningSandbox, build_app
from incydr_sandbox.tenant import Tenant
from incydr_sandbox.tenant.catalog import severity_of

ANCHOR = "2026-11-01T00:00:00Z"
ANCHOR_MS = parse_anchor(ANCHOR)
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
SESSION_KEYS = {"sessionId", "tenantId", "actorId", "actorName", "userId", "type", "beginTime", "endTime",
                "firstObserved", "lastUpdated", "noRiskEvents", "lowEvents", "moderateEvents", "highEvents",
                "criticalEvents", "contextSummary", "exfiltrationSummary", "riskIndicators", "scores", "states",
                "triggeredAlerts", "notes", "contentInspectionResults"}
ALERT_KEYS = {"tenantId", "type", "id", "createdAt", "state", "stateLastModifiedBy", "stateLastModifiedAt", "name",
              "description", "actor", "actorId", "target", "severity", "riskSeverity", "ruleId", "watchlists"}
ACTOR_KEYS = {"actorId", "name", "alternateNames", "country", "department", "division", "employeeType", "endDate",
              "firstName", "lastName", "inScope", "locality", "managerActorId", "notes", "parentActorId", "startDate",
              "title"}
RULE_KEYS = {"id", "name", "description", "severity", "isEnabled", "source", "vectors", "filters", "education",
             "notifications", "createdAt", "createdBy", "modifiedAt", "modifiedBy", "isSystemRule"}
KSAT_USER_KEYS = {"id", "employee_number", "first_name", "last_name", "job_title", "email", "location", "division",
                  "manager_name", "manager_email", "groups", "aliases", "status", "department", "joined_on",
                  "archived_at", "custom_field_1", "custom_field_2", "custom_field_3", "custom_field_4"}


# --- helpers ------------------------------------------------------------------------------------
def token(sb, client_id="sandbox-client", secret="sandbox-secret") -> str:
    response = requests.post(f"{sb.base_url}/v1/oauth", auth=(client_id, secret), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def get(sb, path, tok=None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return requests.get(f"{sb.base_url}{path}", params=params, headers=headers, timeout=60)


def post(sb, path, tok, body) -> requests.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return requests.post(f"{sb.base_url}{path}", json=body, headers=headers, timeout=60)


def ksat(sb, path, key="sandbox-ksat-key", **params) -> requests.Response:
    return requests.get(f"{sb.base_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def all_sessions(sb, tok, page_size=50, **params) -> list[dict]:
    items, page = [], 0
    while True:
        body = get(sb, "/v1/sessions", tok, page_number=page, page_size=page_size, **params).json()
        items += body["items"]
        if len(body["items"]) < page_size:
            assert len(items) == body["totalCount"]
            return items
        page += 1


def every_session(sb, tok, **params) -> list[dict]:
    """Both listings of GET /v1/sessions (has_alerts false and true), by beginTime then id."""
    both = all_sessions(sb, tok, has_alerts="false", **params) + all_sessions(sb, tok, has_alerts="true", **params)
    return sorted(both, key=lambda s: (s["beginTime"], s["sessionId"]))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alert_query(sb, *, after=None, before=None, groups=(), clause="AND", page=0, size=500, direction="ASC"):
    filters = []
    if after is not None:
        filters.append({"term": "CreatedAt", "operator": "ON_OR_AFTER", "value": iso(after)})
    if before is not None:
        filters.append({"term": "CreatedAt", "operator": "ON_OR_BEFORE", "value": iso(before)})
    return {"tenantId": sb.tenant_id, "groupClause": clause,
            "groups": ([{"filterClause": "AND", "filters": filters}] if filters else []) + list(groups),
            "pgNum": page, "pgSize": size, "srtDirection": direction, "srtKey": "CreatedAt"}


def all_alerts(sb, tok, **query) -> list[dict]:
    out, page = [], 0
    while True:
        body = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, page=page, size=100, **query)).json()
        out += body["alerts"]
        if len(body["alerts"]) < 100:
            assert len(out) == body["totalCount"]
            return out
        page += 1


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.fixture(scope="module")
def tenant():
    """The same tenant, computed in-process, to check the server against."""
    return Tenant(TenantConfig(seed=42, anchor_ms=ANCHOR_MS))


@pytest.fixture
def tok(clean_sandbox):
    return token(clean_sandbox)


# --- process, CLI, programmatic API -------------------------------------------------------------
def test_console_script_prints_exactly_one_serving_line_and_applies_flags(start_sandbox):
    sb = start_sandbox(fail_429_every=4, retry_after=7, latency_ms=5, token_ttl=120, access_log=True)
    assert sb.args[0].endswith("incydr-sandbox") and sb.args[0] == console_script()[0]
    match = re.fullmatch(r"serving http://127\.0\.0\.1:(\d+) client_id=sandbox-client client_secret=sandbox-secret",
                         sb.serving_line)
    assert match and int(match.group(1)) > 0 and sb.base_url.endswith(f":{match.group(1)}")
    assert sb.health["anchor"] == "2026-11-01T00:00:00.000Z" and sb.health["clock_ms"] == ANCHOR_MS
    faults = sb.faults()
    assert (faults["fail_429_every"], faults["retry_after"], faults["latency_ms"], faults["token_ttl"]) == (4, 7, 5, 120)
    assert requests.post(f"{sb.base_url}/v1/oauth", auth=("sandbox-client", "sandbox-secret"),
                         timeout=10).json()["expires_in"] == 120
    sb.set_faults(fail_429_every=0)
    assert sb.reset()["faults"]["fail_429_every"] == 4  # reset returns to the start-up flags
    # access logging is on, yet stdout stays the single "serving" line (logs go to stderr)
    with selectors.DefaultSelector() as sel:
        sel.register(sb.process.stdout, selectors.EVENT_READ)
        assert not sel.select(0.5)


def test_bad_flags_are_refused_clearly():
    result = subprocess.run([*console_script(), "--anchor", "yesterday"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2 and "anchor 'yesterday'" in result.stderr and result.stdout == ""


def test_build_app_and_background_thread(tmp_path):
    config = SandboxConfig(tenant=TenantConfig(seed=7, anchor_ms=ANCHOR_MS, actors=12, sessions=100),
                           faults=Faults(fail_next=[503]))
    with RunningSandbox(config) as running:
        assert requests.get(f"{running.base_url}/_sandbox/health", timeout=10).json()["actors"] == 12
        assert requests.get(f"{running.base_url}/v2/alert-rules", timeout=10).status_code == 503  # fail_next
        assert requests.get(f"{running.base_url}/v2/alert-rules", timeout=10).status_code == 401
    # The admin API answers local clients only (unless --admin-any-host).
    remote = ("203.0.113.9", 5555)
    assert _asgi_get(build_app(config), "/_sandbox/health", remote)[0] == 403
    assert _asgi_get(build_app(config), "/_sandbox/health", ("127.0.0.1", 5555))[0] == 200
    config.admin_any_host = True
    status, body = _asgi_get(build_app(config), "/_sandbox/health", remote)
    assert status == 200 and json.loads(body)["tenantId"]


def _asgi_get(app, path: str, client: tuple) -> tuple[int, bytes]:
    """One GET straight through the ASGI app, from the given client address."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
             "client": client, "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


# --- OAuth, tokens, permissions -----------------------------------------------------------------
def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_oauth_issues_jwts_with_the_tenant_and_refuses_bad_credentials(clean_sandbox):
    sb = clean_sandbox
    answer = requests.post(f"{sb.base_url}/v1/oauth", auth=("sandbox-client", "sandbox-secret"), timeout=10).json()
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 900
    claims = _claims(answer["access_token"])
    assert claims["tenantUid"] == sb.tenant_id and claims["sub"] == "sandbox-client"
    assert claims["exp"] - claims["iat"] == 900
    for auth in (("sandbox-client", "wrong"), ("nobody", "sandbox-secret"), ("sandbox-client", "")):
        assert requests.post(f"{sb.base_url}/v1/oauth", auth=auth, timeout=10).status_code == 401
    assert requests.post(f"{sb.base_url}/v1/oauth", timeout=10).status_code == 401
    assert requests.post(f"{sb.base_url}/v1/oauth", headers={"Authorization": "Basic !!!"}, timeout=10).status_code == 401
    assert sb.stats()["tokens_issued"] == 1


DATA_ENDPOINTS = [("GET", "/v1/sessions"), ("GET", "/v2/alert-rules"), ("GET", "/v1/actors/actor/search"),
                  ("POST", "/v1/alerts/query-alerts")]


def test_data_endpoints_need_a_live_bearer_token(clean_sandbox):
    sb = clean_sandbox
    good = token(sb)
    header, _, signature = good.split(".")
    forged_claims = {**_claims(good), "sub": "sandbox-client", "exp": 4102444800}
    forged = ".".join((header, base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("="),
                       signature))
    for method, path in DATA_ENDPOINTS:
        for bad in (None, "not-a-token", forged, "sandbox-ksat-key"):
            response = requests.request(method, f"{sb.base_url}{path}", timeout=10, json={},
                                        headers={"Authorization": f"Bearer {bad}"} if bad else {})
            assert response.status_code == 401, (method, path, bad)
    assert get(sb, "/v2/alert-rules", good).status_code == 200
    sb.set_faults(token_ttl=1)
    short = token(sb)
    assert get(sb, "/v2/alert-rules", short).status_code == 200
    time.sleep(1.2)
    assert get(sb, "/v2/alert-rules", short).status_code == 401  # expired
    assert get(sb, "/v2/alert-rules", good).status_code == 200
    assert sb.revoke_tokens()["revoked"] >= 2
    assert get(sb, "/v2/alert-rules", good).status_code == 401  # revoked
    assert ksat(sb, "/v1/users", key=token(sb)).status_code == 401  # a Code42 token is no KnowBe4 key
    assert ksat(sb, "/v1/groups", key="wrong").status_code == 401


def test_permissions_per_endpoint_family(clean_sandbox):
    sb = clean_sandbox
    full, no_rules, no_sessions = token(sb), token(sb, "sandbox-no-rules"), token(sb, "sandbox-no-sessions")
    session = get(sb, "/v1/sessions", full, page_size=1).json()["items"][0]
    rule_id = get(sb, "/v2/alert-rules", full).json()[0]["id"]
    calls = {
        "sessions": lambda t: get(sb, "/v1/sessions", t, page_size=1),
        "session": lambda t: get(sb, f"/v1/sessions/{session['sessionId']}", t),
        "events": lambda t: get(sb, f"/v1/sessions/{session['sessionId']}/events", t),
        "alerts": lambda t: post(sb, "/v1/alerts/query-alerts", t, alert_query(sb, size=1)),
        "rules": lambda t: get(sb, "/v2/alert-rules", t),
        "rule": lambda t: get(sb, f"/v2/alert-rules/{rule_id}", t),
        "actors": lambda t: get(sb, "/v1/actors/actor/search", t, pageSize=1),
        "actor": lambda t: get(sb, f"/v1/actors/actor/id/{session['actorId']}", t),
    }
    expected = {
        full: dict.fromkeys(calls, 200),
        no_rules: {**dict.fromkeys(calls, 200), "rules": 403, "rule": 403},
        no_sessions: {**dict.fromkeys(calls, 200), "sessions": 403, "session": 403, "events": 403, "alerts": 403},
    }
    for tok_, statuses in expected.items():
        assert {name: call(tok_).status_code for name, call in calls.items()} == statuses
    refused = get(sb, "/v2/alert-rules", no_rules).json()
    assert refused["status"] == 403 and "Alert Rules" in refused["detail"]


# --- paging rules -------------------------------------------------------------------------------
def test_page_size_caps_and_page_bases(clean_sandbox, tok):
    sb = clean_sandbox
    everything = {"on_or_after": 0, "before": ANCHOR_MS + 1, "has_alerts": "false"}
    assert len(get(sb, "/v1/sessions", tok, page_size=50, **everything).json()["items"]) == 50
    for bad in ({"page_size": 51}, {"page_size": 0}, {"page_number": -1}, {"sort_direction": "up"},
                {"has_alerts": "maybe"}, {"state": "DONE"}, {"severity": 5}, {"order_by": "name"}):
        response = get(sb, "/v1/sessions", tok, **bad)
        assert response.status_code == 400 and response.json()["detail"], bad
    first = get(sb, "/v1/sessions", tok, page_number=0, page_size=10, **everything).json()["items"]
    second = get(sb, "/v1/sessions", tok, page_number=1, page_size=10, **everything).json()["items"]
    twenty = get(sb, "/v1/sessions", tok, page_number=0, page_size=20, **everything).json()["items"]
    assert first + second == twenty  # page_number counts from 0

    assert len(post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, size=500)).json()["alerts"]) == 500
    too_big = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, size=501))
    assert too_big.status_code == 400 and too_big.json()["problems"][0]["type"] == "InvalidPageSize"
    assert post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, page=-1)).status_code == 400
    a0 = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, page=0, size=5)).json()["alerts"]
    a1 = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, page=1, size=5)).json()["alerts"]
    a10 = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, page=0, size=10)).json()["alerts"]
    assert a0 + a1 == a10  # pgNum counts from 0

    assert get(sb, "/v1/actors/actor/search", tok, pageSize=500).status_code == 200
    assert get(sb, "/v1/actors/actor/search", tok, pageSize=501).status_code == 400
    assert get(sb, "/v1/actors/actor/search", tok, page=0).status_code == 400  # counts from 1
    p1 = get(sb, "/v1/actors/actor/search", tok, page=1, pageSize=30).json()["actors"]
    p2 = get(sb, "/v1/actors/actor/search", tok, page=2, pageSize=30).json()["actors"]
    p3 = get(sb, "/v1/actors/actor/search", tok, page=3, pageSize=30).json()["actors"]
    assert (len(p1), len(p2), p3) == (30, 10, [])
    assert len({a["actorId"] for a in p1 + p2}) == 40

    rules = get(sb, "/v2/alert-rules", tok, PageNumber=0, PageSize=100).json()
    assert get(sb, "/v2/alert-rules", tok, PageNumber=0, PageSize=3).json() == rules[:3]  # counts from 0
    assert get(sb, "/v2/alert-rules", tok, PageNumber=2, PageSize=3).json() == rules[6:]
    assert get(sb, "/v2/alert-rules", tok, PageNumber=-1).status_code == 400
    assert ksat(sb, "/v1/users", page=0).status_code == 400  # counts from 1


# --- sessions -----------------------------------------------------------------------------------
def test_time_ranges_select_exactly_the_generated_begin_times(clean_sandbox, tok, tenant):
    sb = clean_sandbox
    begins = [tenant.begin_time(i) for i in range(1440)]
    assert begins == sorted(begins) and begins[0] >= ANCHOR_MS - 30 * DAY_MS and begins[-1] < ANCHOR_MS
    seen = [tenant.plan(i).observed <= ANCHOR_MS for i in range(1440)]
    for start, end in ((ANCHOR_MS - 2 * DAY_MS, ANCHOR_MS - DAY_MS), (begins[100], begins[160]),
                       (begins[700] + 1, begins[705] + 1), (ANCHOR_MS - HOUR_MS, ANCHOR_MS + DAY_MS)):
        got = every_session(sb, tok, on_or_after=start, before=end)
        expected = [i for i, b in enumerate(begins) if start <= b < end and seen[i]]
        assert [s["beginTime"] for s in got] == [begins[i] for i in expected]
        assert [s["sessionId"] for s in got] == [tenant.plan(i).session_id for i in expected]
    # on_or_after is inclusive, before exclusive, on beginTime ("sessions beginning on or after" /
    # "beginning before this instant", OpenAPI /v1/sessions)
    assert [s["beginTime"] for s in every_session(sb, tok, on_or_after=begins[10], before=begins[12])] == \
        [b for i, b in enumerate(begins[10:12], 10) if seen[i]]
    assert len(every_session(sb, tok, on_or_after=0, before=ANCHOR_MS + 1)) == sum(seen)


def test_has_alerts_filters_both_ways_and_every_filter(clean_sandbox, tok, tenant):
    """OpenAPI /v1/sessions: has_alerts "Only include sessions that have a matching alert status.
    Defaults to 'true'"; the CLI's --no-alerts: "sessions that do NOT have alerts"."""
    sb = clean_sandbox
    window = {"on_or_after": ANCHOR_MS - 10 * DAY_MS, "before": ANCHOR_MS}
    everyone = every_session(sb, tok, **window)
    alerted = all_sessions(sb, tok, **window)  # has_alerts defaults to true
    quiet = all_sessions(sb, tok, has_alerts="false", **window)
    by_id = lambda rows: sorted(rows, key=lambda s: s["sessionId"])
    assert by_id(alerted) == by_id([s for s in everyone if s["triggeredAlerts"]])
    assert by_id(quiet) == by_id([s for s in everyone if not s["triggeredAlerts"]])
    assert 0.55 < len(alerted) / len(everyone) < 0.8  # about two thirds have alerts
    for s in everyone:
        assert set(s) == SESSION_KEYS
        score = sum(r["weight"] for r in s["riskIndicators"])
        assert s["scores"][-1]["score"] == score and s["scores"][-1]["severity"] == severity_of(score)

    def only(**params):
        return every_session(sb, tok, **window, **params)

    actor = Counter(s["actorId"] for s in everyone).most_common(1)[0][0]
    assert only(actor_id=actor) == [s for s in everyone if s["actorId"] == actor]
    closed = only(state=["CLOSED_TP", "CLOSED_FP"])
    assert closed and closed == [s for s in everyone if s["states"][-1]["state"] in ("CLOSED_TP", "CLOSED_FP")]
    assert only(severity=[3, 4]) == [s for s in everyone if s["scores"][-1]["severity"] >= 3]
    rule = alerted[0]["triggeredAlerts"][0]["ruleId"]
    assert only(rule_id=rule) == [s for s in everyone if rule in {a["ruleId"] for a in s["triggeredAlerts"]}]
    indicator = alerted[0]["riskIndicators"][0]["id"]
    assert only(risk_indicators=indicator) == [s for s in everyone
                                               if indicator in {r["id"] for r in s["riskIndicators"]}]
    departing = tenant.watchlist_id("departing")
    on_list = only(watchlist_id=departing)
    assert on_list and all(tenant.plan(tenant.find_session(s["sessionId"], ANCHOR_MS).index).actor.person.departing(
        s["beginTime"]) for s in on_list)
    found = only(content_inspection_status="FOUND")
    assert found and all(s["contentInspectionResults"]["detectedOnAlerts"] for s in found)
    assert not any(s["contentInspectionResults"]["detectedOnAlerts"] for s in only(content_inspection_status="NOT_FOUND"))


def test_sessions_are_ordered_by_end_time_descending_unless_asked(clean_sandbox, tok):
    """OpenAPI /v1/sessions: order_by "If not provided, results are ordered by end time" (enum
    end_time, score); sort_direction "Either 'ASC' or 'DESC'. If not provided, results are sorted
    descending"; page_size default 10, "Max of '50'"."""
    sb = clean_sandbox
    window = {"on_or_after": ANCHOR_MS - 10 * DAY_MS, "before": ANCHOR_MS, "has_alerts": "false"}
    default = all_sessions(sb, tok, **window)
    assert [(s["endTime"], s["sessionId"]) for s in default] == \
        sorted(((s["endTime"], s["sessionId"]) for s in default), reverse=True)
    assert all_sessions(sb, tok, order_by="end_time", sort_direction="ASC", **window) == default[::-1]
    by_score = all_sessions(sb, tok, order_by="score", **window)
    assert [s["scores"][-1]["score"] for s in by_score] == sorted((s["scores"][-1]["score"] for s in default),
                                                                   reverse=True)
    assert len(get(sb, "/v1/sessions", tok, **window).json()["items"]) == 10
    for bad in ("asc", "desc", "Asc", "up"):
        answer = get(sb, "/v1/sessions", tok, sort_direction=bad, **window)
        assert answer.status_code == 400 and "ASC or DESC" in answer.text
    assert get(sb, "/v1/sessions", tok, order_by="begin_time", **window).status_code == 400


def test_open_sessions_end_time_grows_with_the_clock(clean_sandbox, tok, tenant):
    """A session still gaining events: endTime and lastUpdated move on as the clock does, so an
    order by end time moves under a reader that pages it."""
    sb = clean_sandbox
    hour = {"on_or_after": ANCHOR_MS - HOUR_MS, "before": ANCHOR_MS}
    open_now = [tenant.plan(i) for i in tenant.index_range(ANCHOR_MS - HOUR_MS, ANCHOR_MS, ANCHOR_MS)
                if tenant.plan(i).end > ANCHOR_MS + 10 * MINUTE_MS]
    assert open_now, "some sessions of the last hour are still going on at the anchor"
    before = {s["sessionId"]: s for s in every_session(sb, tok, **hour)}
    for plan in open_now:
        assert before[plan.session_id]["endTime"] == ANCHOR_MS
        assert before[plan.session_id]["lastUpdated"] <= ANCHOR_MS
    sb.advance(minutes=10)
    after = {s["sessionId"]: s for s in every_session(sb, tok, **hour)}
    for plan in open_now:
        assert after[plan.session_id]["endTime"] == ANCHOR_MS + 10 * MINUTE_MS
        assert after[plan.session_id]["lastUpdated"] == ANCHOR_MS + 10 * MINUTE_MS


def test_a_session_moves_to_the_true_listing_when_its_first_alert_is_visible(clean_sandbox, tok, tenant):
    """has_alerts filters on the alerts visible now (OpenAPI: "a matching alert status"): a session
    is in the false listing until its first alert's createdAt, in the true one from then on."""
    sb = clean_sandbox
    window = {"on_or_after": ANCHOR_MS - 3 * HOUR_MS, "before": ANCHOR_MS}
    soon = [tenant.plan(i) for i in tenant.index_range(ANCHOR_MS - 3 * HOUR_MS, ANCHOR_MS, ANCHOR_MS)
            if tenant.plan(i).alert_at and ANCHOR_MS < tenant.plan(i).alert_at <= ANCHOR_MS + 3 * HOUR_MS]
    assert soon
    ids = lambda **extra: {s["sessionId"] for s in all_sessions(sb, tok, **window, **extra)}
    quiet, alerted = ids(has_alerts="false"), ids()
    assert all(p.session_id in quiet and p.session_id not in alerted for p in soon)
    sb.advance(minutes=3 * 60 + 1)
    quiet_after, alerted_after = ids(has_alerts="false"), ids()
    assert all(p.session_id in alerted_after and p.session_id not in quiet_after for p in soon)
    assert quiet_after | alerted_after == quiet | alerted and not quiet_after & alerted_after


def test_late_sessions_are_first_observed_days_after_they_began(clean_sandbox, tok, tenant):
    """Sessions carry firstObserved apart from beginTime (the SDK's Session model): a device that was
    offline uploads days later, and the session then appears under its old beginTime."""
    sb = clean_sandbox
    late = [tenant.plan(i) for i in range(1440) if tenant.plan(i).late]
    assert 0.01 < len(late) / 1440 < 0.06
    hidden = next(p for p in late if p.observed > ANCHOR_MS)
    shown = next(p for p in late if p.observed <= ANCHOR_MS)
    assert 30 * HOUR_MS <= hidden.observed - hidden.begin <= 8 * DAY_MS
    window = lambda p: {"on_or_after": p.begin, "before": p.begin + 1}
    assert [s["firstObserved"] for s in every_session(sb, tok, **window(shown))] == [shown.observed]
    assert every_session(sb, tok, **window(hidden)) == []
    assert get(sb, f"/v1/sessions/{hidden.session_id}", tok).status_code == 404
    sb.advance(minutes=(hidden.observed - ANCHOR_MS) / MINUTE_MS)
    found = every_session(sb, tok, **window(hidden))
    assert [(s["sessionId"], s["beginTime"], s["firstObserved"]) for s in found] == \
        [(hidden.session_id, hidden.begin, hidden.observed)]
    assert found[0]["endTime"] < found[0]["firstObserved"] <= found[0]["lastUpdated"]


def test_sessions_alerts_rules_and_events_agree(clean_sandbox, tok):
    sb = clean_sandbox
    window = {"on_or_after": ANCHOR_MS - 3 * DAY_MS, "before": ANCHOR_MS - DAY_MS}
    sessions = all_sessions(sb, tok, **window)
    rules = {r["id"]: r for r in get(sb, "/v2/alert-rules", tok).json()}
    assert len(rules) == 8 and all(set(r) == RULE_KEYS for r in rules.values())
    assert {r["isSystemRule"] for r in rules.values()} == {True, False}
    assert {r["isEnabled"] for r in rules.values()} == {True, False}
    assert all(r["vectors"] for r in rules.values())
    # Instructor lessons only where Instructor itself messages the person (Email / Slack / Teams)
    assert all(bool(r["education"]["lessonId"]) == (r["education"]["messagingMethod"] in ("Email", "Slack", "Teams"))
               for r in rules.values())
    assert {bool(r["education"]["lessonId"]) for r in rules.values()} == {True, False}
    alerts = {a["id"]: a for a in all_alerts(sb, tok, after=window["on_or_after"], before=ANCHOR_MS)}
    for s in sessions:
        assert s == get(sb, f"/v1/sessions/{s['sessionId']}", tok).json()
        for t in s["triggeredAlerts"]:
            alert, rule = alerts[t["alertId"]], rules[t["ruleId"]]
            assert set(alert) == ALERT_KEYS and alert["ruleId"] == t["ruleId"] and alert["actorId"] == s["actorId"]
            assert t["ruleName"] == rule["name"] == alert["name"] and t["lessonId"] == rule["education"]["lessonId"]
            assert rule["isEnabled"] and ms(alert["createdAt"]) >= s["beginTime"] + 15 * MINUTE_MS
            assert ms(alert["createdAt"]) <= s["beginTime"] + 3 * HOUR_MS + 10_000
    s = max(sessions, key=lambda x: x["noRiskEvents"] + x["lowEvents"] + x["moderateEvents"] + x["highEvents"]
            + x["criticalEvents"])
    events = get(sb, f"/v1/sessions/{s['sessionId']}/events", tok).json()["queryResult"]
    counted = sum(s[k] for k in ("noRiskEvents", "lowEvents", "moderateEvents", "highEvents", "criticalEvents"))
    assert events["totalCount"] == len(events["fileEvents"]) == counted > 1 and events["nextPgToken"] == ""
    for e in events["fileEvents"]:
        assert e["user"]["actorId"] == s["actorId"] and e["user"]["email"] == s["actorName"]
        assert s["beginTime"] <= ms(e["@timestamp"]) <= s["endTime"]
        assert {"id", "action", "vector"} <= set(e["event"]) and {"name", "category", "hash", "sizeInBytes", "url"} <= set(e["file"])
        assert e["risk"]["score"] == sum(i["weight"] for i in e["risk"]["indicators"])
    paged, page_token = [], None
    while page_token != "":
        body = get(sb, f"/v1/sessions/{s['sessionId']}/events", tok, pgSize=2,
                   **({"pgToken": page_token} if page_token else {})).json()["queryResult"]
        paged += body["fileEvents"]
        page_token = body["nextPgToken"]
    assert paged == events["fileEvents"]
    assert get(sb, "/v1/sessions/00000000-0000-4000-8000-000000000000", tok).status_code == 404
    assert get(sb, "/v2/alert-rules/nope", tok).status_code == 404


def test_alert_queries_filter_sort_and_partition(clean_sandbox, tok):
    sb = clean_sandbox
    start, end = ANCHOR_MS - 2 * DAY_MS, ANCHOR_MS - DAY_MS
    middle = start + 17 * HOUR_MS
    union = all_alerts(sb, tok, after=start, before=end - 1)
    assert union and all(start <= ms(a["createdAt"]) < end for a in union)
    assert [ms(a["createdAt"]) for a in union] == sorted(ms(a["createdAt"]) for a in union)
    halves = all_alerts(sb, tok, after=start, before=middle - 1) + all_alerts(sb, tok, after=middle, before=end - 1)
    assert halves == union
    newest_first = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, after=start, before=end - 1,
                                                                         direction="DESC")).json()
    assert newest_first["type$"] == "ALERT_QUERY_RESPONSE" and newest_first["problems"] == []
    assert newest_first["alerts"] == union[::-1]
    rule_ids = sorted({a["ruleId"] for a in union})[:2]
    either = {"filterClause": "OR", "filters": [{"term": "RuleId", "operator": "IS", "value": r} for r in rule_ids]}
    picked = all_alerts(sb, tok, after=start, before=end - 1, groups=[either])
    assert picked == [a for a in union if a["ruleId"] in rule_ids]
    resolved = {"filterClause": "AND", "filters": [{"term": "State", "operator": "IS", "value": "RESOLVED"}]}
    assert all_alerts(sb, tok, after=start, before=end - 1, groups=[resolved]) == \
        [a for a in union if a["state"] == "RESOLVED"]
    bad = post(sb, "/v1/alerts/query-alerts", tok, {**alert_query(sb), "groups": [
        {"filterClause": "AND", "filters": [{"term": "CreatedAt", "operator": "IS", "value": "x"}]}]})
    assert bad.status_code == 400 and bad.json()["problems"][0]["type"] == "IllegalOperator"
    assert post(sb, "/v1/alerts/query-alerts", tok, {**alert_query(sb), "tenantId": "other"}).status_code == 400
    details = post(sb, "/v1/alerts/query-details", tok, {"alertIds": [union[0]["id"], "unknown"]}).json()["alerts"]
    assert len(details) == 1 and details[0]["id"] == union[0]["id"] and details[0]["observations"]


# --- determinism --------------------------------------------------------------------------------
def _snapshot(sb) -> list[bytes]:
    t = token(sb)
    sid = get(sb, "/v1/sessions", t, page_size=1, on_or_after=ANCHOR_MS - DAY_MS).json()["items"][0]["sessionId"]
    return [
        get(sb, "/v1/sessions", t, on_or_after=0, before=ANCHOR_MS + 1, has_alerts="false").content,
        get(sb, "/v1/sessions", t, on_or_after=ANCHOR_MS - 5 * DAY_MS, order_by="score", page_number=2).content,
        get(sb, f"/v1/sessions/{sid}", t).content,
        get(sb, f"/v1/sessions/{sid}/events", t).content,
        post(sb, "/v1/alerts/query-alerts", t, alert_query(sb, after=ANCHOR_MS - 3 * DAY_MS, before=ANCHOR_MS)).content,
        get(sb, "/v2/alert-rules", t).content,
        get(sb, "/v1/actors/actor/search", t).content,
        ksat(sb, "/v1/users", per_page=500).content,
        ksat(sb, "/v1/groups").content,
        requests.get(f"{sb.base_url}/_sandbox/truth", timeout=10).content,
    ]


def test_same_seed_and_anchor_give_identical_bytes(clean_sandbox, start_sandbox):
    twin = start_sandbox()
    assert twin.tenant_id == clean_sandbox.tenant_id
    assert _snapshot(twin) == _snapshot(clean_sandbox)
    other = start_sandbox(seed=7)
    assert other.tenant_id != clean_sandbox.tenant_id
    assert all(a != b for a, b in zip(_snapshot(other), _snapshot(clean_sandbox), strict=True))


# --- fault knobs --------------------------------------------------------------------------------
def _codes(sb, tok, n, path="/v2/alert-rules"):
    return [get(sb, path, tok).status_code for _ in range(n)]


def test_fail_next_and_fail_429_every_with_retry_after(clean_sandbox, tok):
    sb = clean_sandbox
    sb.set_faults(fail_next=[503, 429, 500], retry_after=3)
    responses = [get(sb, "/v2/alert-rules", tok) for _ in range(4)]
    assert [r.status_code for r in responses] == [503, 429, 500, 200]
    assert responses[1].headers["Retry-After"] == "3" and "Retry-After" not in responses[0].headers
    sb.reset()
    sb.set_faults(fail_429_every=3, retry_after=2)
    responses = [get(sb, "/v1/sessions", tok) for _ in range(9)]
    assert [r.status_code for r in responses] == [200, 200, 429] * 3
    assert all(r.headers["Retry-After"] == "2" for r in responses if r.status_code == 429)
    stats = sb.stats()
    assert stats["n_429"] == 3 and stats["by_path"]["GET /v1/sessions"] == 9 and stats["by_status"]["429"] == 3


def test_rate_limit_per_client_with_a_correct_retry_after(clean_sandbox):
    sb = clean_sandbox
    a, a2, b = token(sb), token(sb), token(sb, "sandbox-no-rules")
    sb.set_faults(rate_limit_per_min=3)
    assert _codes(sb, a, 2) + _codes(sb, a2, 1) == [200, 200, 200]  # one budget per client, not per token
    limited = get(sb, "/v2/alert-rules", a2)
    assert limited.status_code == 429 and 55 <= int(limited.headers["Retry-After"]) <= 60
    assert get(sb, "/v1/sessions", b).status_code == 200  # other clients are not affected
    sb.set_faults(ksat_rate_limit_per_sec=2)
    assert [ksat(sb, "/v1/groups").status_code for _ in range(3)] == [200, 200, 429]


def test_fail_5xx_rate_is_deterministic(clean_sandbox, tok):
    sb = clean_sandbox
    sb.set_faults(fail_5xx_rate=0.5)
    first = _codes(sb, tok, 40)
    sb.reset()
    sb.set_faults(fail_5xx_rate=0.5)
    assert _codes(sb, tok, 40) == first  # same seed, same request numbers -> same failures
    failed = [c for c in first if c != 200]
    assert 8 <= len(failed) <= 32 and set(failed) <= {500, 503} and sb.stats()["n_5xx"] == len(failed)


def test_drop_next_closes_the_connection_without_an_answer(clean_sandbox, tok):
    sb = clean_sandbox
    sb.set_faults(drop_next=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError, match="without response"):
            get(sb, "/v1/sessions", tok)
    assert get(sb, "/v1/sessions", tok).status_code == 200
    assert sb.stats()["dropped"] == 2


def test_latency_and_token_ttl(clean_sandbox):
    sb = clean_sandbox
    sb.set_faults(latency_ms=300, token_ttl=1)
    answer = requests.post(f"{sb.base_url}/v1/oauth", auth=("sandbox-client", "sandbox-secret"), timeout=10).json()
    assert answer["expires_in"] == 1
    started = time.monotonic()
    assert get(sb, "/v2/alert-rules", answer["access_token"]).status_code == 200
    assert time.monotonic() - started >= 0.3
    time.sleep(0.8)
    assert get(sb, "/v2/alert-rules", answer["access_token"]).status_code == 401


def test_malformed_and_missing_key_pages(clean_sandbox, tok):
    sb = clean_sandbox
    sb.set_faults(malformed_every=2)
    pages = [get(sb, "/v1/sessions", tok) for _ in range(4)]
    assert [p.status_code for p in pages] == [200] * 4
    for k, page in enumerate(pages):
        if k % 2:
            with pytest.raises(ValueError):
                page.json()
        else:
            assert page.json()["items"]
    sb.set_faults(malformed_every=0, missing_key_every=1)
    items = get(sb, "/v1/sessions", tok).json()["items"]
    assert "lastUpdated" not in items[0] and all("lastUpdated" in s for s in items[1:])
    alerts = post(sb, "/v1/alerts/query-alerts", tok, alert_query(sb, size=3)).json()["alerts"]
    assert "createdAt" not in alerts[0] and "createdAt" in alerts[1]
    assert "actorId" not in get(sb, "/v1/actors/actor/search", tok).json()["actors"][0]
    assert sb.stats()["malformed"] == 2 and sb.stats()["missing_key"] == 3


def test_advance_per_page_changes_data_while_paging(clean_sandbox, tok):
    sb = clean_sandbox
    sb.set_faults(advance_per_page_min=60)
    window = {"on_or_after": ANCHOR_MS - 6 * HOUR_MS, "before": ANCHOR_MS, "page_size": 5}
    first = get(sb, "/v1/sessions", tok, **window).json()["totalCount"]
    for _ in range(3):
        get(sb, "/v1/sessions", tok, **window)
    assert sb.admin("GET", "health")["clock_ms"] == ANCHOR_MS + 4 * HOUR_MS
    assert get(sb, "/v1/sessions", tok, **window).json()["totalCount"] > first  # late alerts arrived meanwhile


def test_fault_knobs_are_validated(clean_sandbox):
    sb = clean_sandbox
    before = sb.faults()
    for bad in ({"no_such_knob": 1}, {"fail_5xx_rate": 2}, {"latency_ms": "slow"}, {"fail_next": [42]},
                {"drop_next": -1}, {"token_ttl": 0}, {"hostile_strings": "yes"}):
        response = requests.post(f"{sb.base_url}/_sandbox/faults", json=bad, timeout=10)
        assert response.status_code == 400 and next(iter(bad)) in response.text
    assert sb.faults() == before
    assert set(before) == {"fail_429_every", "retry_after", "rate_limit_per_min", "ksat_rate_limit_per_sec",
                           "fail_5xx_rate", "fail_next", "drop_next", "stall_next", "stall_ms", "latency_ms", "token_ttl", "malformed_every",
                           "missing_key_every", "advance_per_page_min", "hostile_strings", "slack_ratelimited_next",
                           "slack_retry_after", "events_seats", "events_429_next", "events_retry_after",
                           "events_fail_after_post_next"}


# --- the clock ----------------------------------------------------------------------------------
def test_advancing_the_clock_reveals_late_alerts_state_changes_and_new_sessions(clean_sandbox, tok, tenant):
    sb = clean_sandbox
    window = {"on_or_after": ANCHOR_MS - 4 * HOUR_MS, "before": ANCHOR_MS + 1}
    before = {s["sessionId"]: s for s in every_session(sb, tok, **window)}
    alerts_before = {a["id"] for a in all_alerts(sb, tok, after=ANCHOR_MS - DAY_MS)}
    late = [tenant.plan(i) for i in range(1440)
            if tenant.plan(i).alert_at and ANCHOR_MS < tenant.plan(i).alert_at <= ANCHOR_MS + 3 * HOUR_MS]
    assert late, "some sessions of the last 3 h get their alerts after the anchor"
    for plan in late:
        assert before[plan.session_id]["triggeredAlerts"] == []
    assert sb.advance(minutes=3 * 60 + 1)["clock_ms"] == ANCHOR_MS + 181 * MINUTE_MS
    after = {s["sessionId"]: s for s in every_session(sb, tok, **window)}
    assert before.keys() == after.keys()
    for plan in late:
        now = after[plan.session_id]
        assert now["triggeredAlerts"] and now["lastUpdated"] > ANCHOR_MS >= before[plan.session_id]["lastUpdated"]
    new_alerts = [a for a in all_alerts(sb, tok, after=ANCHOR_MS - DAY_MS) if a["id"] not in alerts_before]
    clock = ANCHOR_MS + 181 * MINUTE_MS
    expected = {tenant.alert_id(i, rule) for i in range(tenant.visible_end(clock))  # incl. sessions begun later
                for rule, at in zip(tenant.plan(i).rules, tenant.plan(i).alert_times(), strict=True)
                if ANCHOR_MS < at <= clock}
    assert {a["id"] for a in new_alerts} == expected
    assert {t["alertId"] for p in late for t in after[p.session_id]["triggeredAlerts"]} <= expected
    assert all(ANCHOR_MS < ms(a["createdAt"]) <= clock for a in new_alerts)
    newer = every_session(sb, tok, on_or_after=ANCHOR_MS, before=ANCHOR_MS + DAY_MS)
    assert newer and all(ANCHOR_MS <= s["beginTime"] <= ANCHOR_MS + 3 * HOUR_MS for s in newer)
    sb.advance(minutes=5 * 24 * 60)
    later = {s["sessionId"]: s for s in every_session(sb, tok, **window)}
    assert any(later[k]["states"][-1]["state"] != before[k]["states"][-1]["state"] for k in before)
    assert requests.post(f"{sb.base_url}/_sandbox/advance", json={"minutes": -1}, timeout=10).status_code == 400
    assert sb.reset()["clock_ms"] == ANCHOR_MS
    assert {s["sessionId"]: s for s in every_session(sb, tok, **window)} == before


# --- KnowBe4 directory and ground truth ---------------------------------------------------------
def _ksat_users(sb, per_page=7, **params) -> list[dict]:
    users, page = [], 1
    while True:
        batch = ksat(sb, "/v1/users", page=page, per_page=per_page, **params).json()
        if not batch:
            return users
        users += batch
        page += 1


def test_ksat_users_and_groups_page_until_an_empty_page(clean_sandbox):
    sb = clean_sandbox
    users = _ksat_users(sb)
    assert len(users) == len({u["id"] for u in users}) == sb.health["ksat_users"] > 40
    assert all(set(u) >= KSAT_USER_KEYS for u in users) and [u["id"] for u in users] == sorted(u["id"] for u in users)
    active, archived = _ksat_users(sb, status="active"), _ksat_users(sb, status="archived", per_page=2)
    assert archived and all(u["archived_at"] for u in archived) and not any(u["archived_at"] for u in active)
    assert sorted(u["id"] for u in active + archived) == [u["id"] for u in users]
    groups = ksat(sb, "/v1/groups").json()
    assert {"All Users", "Engineering", "Contractors"} <= {g["name"] for g in groups}
    for g in groups:
        assert {"id", "name", "group_type", "member_count", "status"} <= set(g)
        assert g["member_count"] == sum(g["id"] in u["groups"] for u in active)
        assert g["member_count"] == len(ksat(sb, f"/v1/groups/{g['id']}/members", per_page=500).json())
    assert ksat(sb, "/v1/users", status="gone").status_code == 400


def _emails(u):
    return {u["email"].lower(), *(a.lower() for a in u["aliases"])}


def _domain_rewrite(actor, user, name, truth, users):
    return (name.split("@")[0] == user["email"].split("@")[0] and name != user["email"]
            and {name.split("@")[1], user["email"].split("@")[1]} == {"example.com", "example-corp.com"})


def _duplicate_archived(actor, user, name, truth, users):
    return user["status"] == "active" and user["email"] == name and any(
        u["status"] == "archived" and u["email"].split("@")[0] == name.split("@")[0] for u in users.values())


# What each kind of identity mess the sandbox labels looks like in the two APIs' answers:
# kind -> check(actor, KSAT user or None, actor name, truth, all KSAT users).
IDENTITY_KINDS = {
    "exact": lambda actor, user, name, truth, users: user["email"] == name,
    "case": lambda actor, user, name, truth, users: user["email"] != name and user["email"].lower() == name,
    "plus_tag": lambda actor, user, name, truth, users: re.sub(r"\+[^@]+@", "@", name) == user["email"] != name,
    "domain_rewrite": _domain_rewrite,
    "ksat_alias": lambda actor, user, name, truth, users: name in user["aliases"] and user["email"] != name,
    "c42_alternate": lambda actor, user, name, truth, users: (user["email"] in actor["alternateNames"]
                                                              and user["email"] != name),
    "employee_number": lambda actor, user, name, truth, users: (user["employee_number"] in actor["alternateNames"]
                                                                and name.lower() not in _emails(user)),
    "contractor": lambda actor, user, name, truth, users: (
        name.split("@")[1] in ("gmail.com", "outlook.com", "yahoo.com", "icloud.com")
        and user["custom_field_1"] in actor["alternateNames"] and user["employee_number"] is None),
    "child_actor": lambda actor, user, name, truth, users: bool(
        actor["parentActorId"]) and truth[actor["parentActorId"]]["ksat_user_id"] == user["id"],
    "archived": lambda actor, user, name, truth, users: (user["status"] == "archived" and actor["active"] is False
                                                         and user["email"] == name),
    "duplicate_archived": _duplicate_archived,
    "ambiguous_duplicate": lambda actor, user, name, truth, users: sum(
        u["status"] == "active" and name in _emails(u) for u in users.values()) == 2,
    "ambiguous_name": lambda actor, user, name, truth, users: sum(
        u["status"] == "active" and (u["first_name"], u["last_name"]) == (actor["firstName"], actor["lastName"])
        for u in users.values()) == 2,
    "no_ksat": lambda actor, user, name, truth, users: not any(name.lower() in _emails(u) for u in users.values()),
    "service_account": lambda actor, user, name, truth, users: not any(
        name.lower() in _emails(u) for u in users.values()),
}


def test_ground_truth_labels_the_identity_mess(clean_sandbox, tmp_path):
    sb = clean_sandbox
    truth = sb.truth()
    for suffix in ("json", "csv"):
        out = tmp_path / f"truth.{suffix}"
        subprocess.run([*console_script(), "--seed", "42", "--anchor", ANCHOR, "--write-truth", str(out)],
                       check=True, timeout=60, capture_output=True)
        if suffix == "json":
            assert json.loads(out.read_text()) == truth
        else:
            rows = list(csv.DictReader(io.StringIO(out.read_text())))
            assert {r["actor_id"]: (r["kind"], r["ksat_user_id"]) for r in rows} == \
                {a: (t["kind"], str(t["ksat_user_id"])) for a, t in truth.items()}
    tok_ = token(sb)
    actors = {a["actorId"]: a for a in get(sb, "/v1/actors/actor/search", tok_, pageSize=500).json()["actors"]}
    users = {u["id"]: u for u in _ksat_users(sb, per_page=500)}
    assert set(truth) == set(actors)
    kinds = Counter(t["kind"] for t in truth.values())
    assert set(kinds) == {"exact", "case", "plus_tag", "domain_rewrite", "ksat_alias", "c42_alternate",
                          "employee_number", "contractor", "child_actor", "archived", "duplicate_archived",
                          "ambiguous_duplicate", "ambiguous_name", "no_ksat", "service_account"}

    for actor_id, t in truth.items():
        actor, user = actors[actor_id], users.get(t["ksat_user_id"])
        assert (user is None) == (t["ksat_user_id"] == "none"), actor_id
        assert IDENTITY_KINDS[t["kind"]](actor, user, actor["name"], truth, users), (actor_id, t["kind"])
    ksat_only = set(users) - {t["ksat_user_id"] for t in truth.values()}
    assert ksat_only  # KSAT users with no Code42 actor, including the archived duplicates and namesakes


def test_actor_lookups_and_families(clean_sandbox, tok):
    sb = clean_sandbox
    actors = get(sb, "/v1/actors/actor/search", tok, pageSize=500).json()["actors"]
    assert all(set(a) >= ACTOR_KEYS for a in actors)
    child = next(a for a in actors if a["parentActorId"])
    assert get(sb, f"/v1/actors/actor/id/{child['actorId']}", tok).json() == child
    assert get(sb, f"/v1/actors/actor/name/{child['name'].upper()}", tok).json() == child  # names ignore case
    parent = get(sb, f"/v1/actors/actor/id/{child['actorId']}/parent", tok).json()
    assert parent["actorId"] == child["parentActorId"]
    family = get(sb, f"/v1/actors/actor/name/{parent['name']}/family", tok).json()
    assert family["parent"] == parent and child in family["children"]
    parents = get(sb, "/v1/actors/actor/search/parent", tok, pageSize=500).json()["actors"]
    assert child["actorId"] not in {a["actorId"] for a in parents} and parent in parents
    gmail = get(sb, "/v1/actors/actor/search", tok, nameEndsWith="@GMAIL.com").json()["actors"]
    assert gmail and all(a["name"].endswith("@gmail.com") for a in gmail)
    inactive = get(sb, "/v1/actors/actor/search", tok, active="false").json()["actors"]
    assert inactive and not any(a["active"] for a in inactive)
    assert get(sb, "/v1/actors/actor/id/123", tok).status_code == 404


# --- scale: the tenant is lazy ------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_two_hundred_thousand_sessions_are_served_lazily(start_sandbox):
    started = time.monotonic()
    big = start_sandbox(sessions=200_000, actors=700)
    assert time.monotonic() - started < 15
    t = token(big)
    started = time.monotonic()
    hour = {"on_or_after": ANCHOR_MS - 5 * HOUR_MS, "before": ANCHOR_MS - 4 * HOUR_MS}
    quiet = get(big, "/v1/sessions", t, has_alerts="false", **hour).json()
    alerted = all_sessions(big, t, **hour)
    assert time.monotonic() - started < 5
    total = quiet["totalCount"] + len(alerted)
    assert abs(total - 200_000 / (30 * 24) * 0.97) < 12 and 0.5 < len(alerted) / total < 0.85  # 3 % late
    day = get(big, "/v1/sessions", t, has_alerts="false", on_or_after=ANCHOR_MS - 2 * DAY_MS,
              before=ANCHOR_MS - DAY_MS, page_number=20, page_size=50).json()
    assert day["totalCount"] > 1000 and len(day["items"]) == 50
    last = day["items"][-1]
    assert get(big, f"/v1/sessions/{last['sessionId']}", t).json() == last
    assert _rss_mb(big.process.pid) < 250
    capped = ksat(big, "/v1/users", per_page=1000).json()
    assert len(capped) == 500  # per_page is capped at 500
    assert len(capped) + len(ksat(big, "/v1/users", per_page=1000, page=2).json()) == big.health["ksat_users"]

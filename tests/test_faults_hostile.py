"""Hostile input from the API, and Base URLs that must be refused before any credential is sent.

The sandbox's ``hostile_strings`` knob rewrites one in three names, summaries, rule names,
descriptions and notes with ``<script>alert(1)</script>``, an ``<img onerror>``, CSV formulas
(``=``, ``+``, ``-``, ``@``), SQL quotes, control characters (C0, DEL, ANSI escapes, U+2028/2029,
a right-to-left override) and gives one session's ``exfiltrationSummary`` 1 MiB. The warehouse must
hold every value exactly as served (compared against the JSON fetched independently, column by
column and in the ``raw`` documents), on SQLite and PostgreSQL, and the HTML report must render
them as inert text. The one documented exception: U+0000, which PostgreSQL text and JSON cannot
hold, is stored as U+FFFD on both backends (``securitycoach.warehouse.upsert``).

There is no CSV export in the project yet (``securitycoach`` writes HTML and SQL views only), so
no formula neutralisation is tested here; the CSV *upload* is covered by ``tests/test_mapping.py``.
"""

from __future__ import annotations

import html
import json
import socket
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from fault_helpers import hourly_ends, make_hook, run_sync

from code42_hook import Code42ConfigError, Code42Hook
from code42_hook.urls import normalize_base_url
from incydr_sandbox.faults import BIG_FIELD_CHARS, HOSTILE_PAYLOADS
from knowbe4_hook import KnowBe4ConfigError, KnowBe4Hook
from securitycoach import report, sync
from securitycoach.warehouse import schema as t

pytestmark = pytest.mark.faults

INTERVALS = 4


def stored_form(value):
    """What the warehouse must hold for a served value: the same, NUL as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {stored_form(k): stored_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored_form(v) for v in value]
    return value


@pytest.fixture(scope="module")
def hostile_sandbox(start_sandbox):
    return start_sandbox(hostile_strings=True)


def served(sandbox, first_start, end) -> dict[str, dict]:
    """What the sandbox serves, fetched with plain ``requests`` (not the hook under test)."""
    http = requests.Session()
    token = http.post(f"{sandbox.base_url}/v1/oauth", auth=(sandbox.client_id, sandbox.client_secret),
                      timeout=30).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    ms = lambda d: int(d.timestamp() * 1000)
    out = {"sessions": {}, "alerts": {}, "rules": {}, "actors": {}}
    for has_alerts in ("false", "true"):  # every session is in one of the two listings
        page = 0
        while True:
            body = http.get(f"{sandbox.base_url}/v1/sessions", timeout=60, params={
                "on_or_after": ms(first_start), "before": ms(end), "has_alerts": has_alerts, "page_number": page,
                "page_size": 50}).json()
            out["sessions"].update({s["sessionId"]: s for s in body["items"]})
            if len(body["items"]) < 50:
                break
            page += 1
    for page in range(100):
        body = http.post(f"{sandbox.base_url}/v1/alerts/query-alerts", timeout=60, json={
            "tenantId": sandbox.tenant_id, "groupClause": "AND", "groups": [], "pgNum": page, "pgSize": 500,
            "srtDirection": "ASC", "srtKey": "CreatedAt"}).json()
        out["alerts"].update({a["id"]: a for a in body["alerts"]})
        if len(body["alerts"]) < 500:
            break
    out["rules"] = {r["id"]: r for r in http.get(f"{sandbox.base_url}/v2/alert-rules", timeout=60).json()}
    actors = http.get(f"{sandbox.base_url}/v1/actors/actor/search", params={"pageSize": 500}, timeout=60).json()
    out["actors"] = {a["actorId"]: a for a in actors["actors"]}
    return out


def test_hostile_strings_are_stored_exactly_as_served_and_rendered_inert(hostile_sandbox, warehouse, monkeypatch,
                                                                         tmp_path):
    sb = hostile_sandbox
    sb.reset()
    hook = make_hook(monkeypatch, sb, "code42_hostile")
    ends = hourly_ends(sb, INTERVALS)
    run_sync(warehouse, hook, ends)
    sync.refresh_alert_rules(warehouse, hook, tenant_id=hook.tenant_id)
    api = served(sb, ends[0] - timedelta(hours=25), ends[-1])

    compared, hostile = 0, set()
    checks = (  # table, key column, served collection, {column: API key}
        (t.code42_session, "session_id", "sessions",
         {"actor_name": "actorName", "context_summary": "contextSummary",
          "exfiltration_summary": "exfiltrationSummary"}),
        (t.code42_alert, "alert_id", "alerts", {"name": "name", "description": "description", "actor": "actor"}),
        (t.code42_alert_rule, "rule_id", "rules", {"name": "name", "description": "description"}),
        (t.code42_actor, "actor_id", "actors", {"name": "name", "first_name": "firstName",
                                                "last_name": "lastName", "department": "department",
                                                "title": "title"}),
    )
    with warehouse.connect() as conn:
        for table, key, collection, columns in checks:
            rows = conn.execute(sa.select(table)).mappings().all()
            assert rows, table.name
            for row in rows:
                item = api[collection][row[key]]
                assert row["raw"] == stored_form(item), f"{table.name} {row[key]}: raw document differs from the API's"
                for column, api_key in columns.items():
                    assert row[column] == stored_form(item[api_key]), f"{table.name}.{column} of {row[key]}"
                    compared += 1
                    hostile |= {p for p in HOSTILE_PAYLOADS
                                if isinstance(row[column], str) and stored_form(p) in row[column]}
        for table, column, api_list, api_key in (
            (t.code42_session_alert, "rule_name", "triggeredAlerts", "ruleName"),
            (t.code42_session_risk_indicator, "name", "riskIndicators", "name"),
        ):
            for row in conn.execute(sa.select(table)).mappings():
                child_key = "alertId" if api_list == "triggeredAlerts" else "id"
                row_key = row["alert_id"] if api_list == "triggeredAlerts" else row["indicator_id"]
                children = {c[child_key]: c for c in api["sessions"][row["session_id"]][api_list]}
                assert row[column] == stored_form(children[row_key][api_key])
                compared += 1
        longest = conn.execute(sa.select(sa.func.max(sa.func.length(t.code42_session.c.exfiltration_summary))))
        assert longest.scalar_one() == BIG_FIELD_CHARS  # the 1 MiB field, whole
    assert hostile == set(HOSTILE_PAYLOADS), f"payloads never seen: {set(HOSTILE_PAYLOADS) - hostile}"

    page = report.write_sync_report(warehouse, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "onerror=" not in page.lower()
    # Every hostile value, rendered by the report's own (autoescaping) environment, is inert text
    # that reads back exactly: no markup survives, nothing is lost.
    environment = report.template_environment()
    for payload in HOSTILE_PAYLOADS:
        out = environment.from_string("<td>{{ value }}</td>").render(value=stored_form(payload))
        inner = out[len("<td>"):-len("</td>")]
        assert "<" not in inner and ">" not in inner and html.unescape(inner) == stored_form(payload)
    print(f"\n[hostile strings, {warehouse.dialect.name}] runs={INTERVALS}; values compared={compared}, "
          f"payload kinds stored={len(hostile)}/{len(HOSTILE_PAYLOADS)}, longest field={BIG_FIELD_CHARS} chars")


BAD_BASE_URLS = [
    "http://api.us.code42.com",  # plain http to a real host
    "https://evil.example.com",  # not a Code42 API host
    "https://api.us.code42.com.evil.example.com",  # suffix trick
    "https://api.us.code42.com@evil.example.com",  # userinfo trick
    "https://evil.example.com#@api.us.code42.com",  # fragment trick
    "https://evil.example.com/api.us.code42.com",  # path trick
    "https://api.xx.code42.com",  # no such region
    "https://code42.com",  # not the API host
    "http://0.0.0.0:8080",  # not loopback
    "http://localhost.evil.example.com",  # not loopback either
    "ftp://api.us.code42.com",
    "",
]


@pytest.fixture
def network_attempts(monkeypatch) -> list:
    """Any use of the network fails the test and is recorded in the returned list."""
    sent: list = []

    def no_network(*args, **kwargs):
        sent.append(args)
        raise AssertionError("the network was used before the Base URL was checked")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(requests.Session, "send", no_network)
    return sent


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_bad_base_url_is_refused_before_any_credential_is_sent(base_url, monkeypatch, network_attempts):
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_BADURL", json.dumps({
        "conn_type": "code42", "login": "client-id", "password": "s3cret-value", "host": base_url}))
    with pytest.raises(Code42ConfigError, match="Base URL"):
        Code42Hook("code42_badurl").tenant_id  # noqa: B018 - fetching a token is what would send the secret
    ok, message = Code42Hook("code42_badurl").test_connection()
    assert not ok and "Base URL" in message and "s3cret-value" not in message
    assert network_attempts == []


BAD_KNOWBE4_URLS = ["http://us.api.knowbe4.com", "https://evil.example.com", "https://us.api.knowbe4.com.evil.example.com",
                    "https://us.api.knowbe4.com@evil.example.com", "https://api.us.code42.com", ""]


@pytest.mark.parametrize("base_url", BAD_KNOWBE4_URLS)
def test_bad_knowbe4_base_url_is_refused_before_the_api_key_is_sent(base_url, monkeypatch, network_attempts):
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_BADURL", json.dumps({
        "conn_type": "knowbe4", "password": "k3y-value", "host": base_url}))
    with pytest.raises(KnowBe4ConfigError, match="Base URL"):
        list(KnowBe4Hook("knowbe4_badurl").iter_groups())
    assert network_attempts == []


GOOD_BASE_URLS = {
    "https://api.us.code42.com": "https://api.us.code42.com",
    "https://API.IE.code42.com:443/": "https://api.ie.code42.com:443",
    "api.gov.code42.com": "https://api.gov.code42.com",
    "https://user:pw@api.de.code42.com/x?y#z": "https://api.de.code42.com",  # only scheme, host, port kept
    "http://127.0.0.1:8042": "http://127.0.0.1:8042",
    "http://[::1]:8042": "http://[::1]:8042",
    "http://localhost:8042": "http://localhost:8042",
}


@pytest.mark.parametrize("base_url", sorted(GOOD_BASE_URLS))
def test_code42_and_loopback_base_urls_are_accepted_as_scheme_host_port(base_url):
    assert normalize_base_url(base_url) == GOOD_BASE_URLS[base_url]

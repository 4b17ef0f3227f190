"""The official ``incydr`` SDK (2.12.6) as an independent client of the sandbox: it reads every
endpoint the integration uses, its pydantic response models accept every answer, and the raw
JSON carries every key those models declare (checked explicitly, since the SDK models default
most keys to None and would not notice one missing)."""

from __future__ import annotations

import time
import typing
import warnings
from datetime import timedelta

import pytest
import requests
from pydantic import BaseModel

incydr = pytest.importorskip("incydr")
from _incydr_sdk.actors.models import Actor, ActorFamily, ActorsPage
from _incydr_sdk.alert_rules.models.response import (
    EducationSettings,
    NotificationContact,
    NotificationSettings,
    RuleDetails,
)
from _incydr_sdk.alerts.models.alert import AlertDetails, AlertSummary, Watchlist
from _incydr_sdk.alerts.models.response import AlertQueryPage
from _incydr_sdk.enums.sessions import SessionStates, SortKeys
from _incydr_sdk.file_events.models.response import FileEventsPage
from _incydr_sdk.sessions.models.models import Alert as TriggeredAlert
from _incydr_sdk.sessions.models.models import ContentInspectionResult, Note, RiskIndicator, Score, State
from _incydr_sdk.sessions.models.response import Session, SessionEvents, SessionsPage

# The SDK itself still calls pydantic v1-style .dict(); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The `dict` method is deprecated")

# Records the integration reads: every key their SDK model declares must be in the answer (some
# may be null). Other nested models (file event details, rule vectors/filters) only need the keys
# the SDK itself requires.
COMPLETE = {Session, SessionsPage, Score, State, Note, RiskIndicator, TriggeredAlert, ContentInspectionResult,
            AlertQueryPage, AlertSummary, AlertDetails, Watchlist, RuleDetails, EducationSettings,
            NotificationSettings, NotificationContact, Actor, ActorsPage, ActorFamily, SessionEvents, FileEventsPage}


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _require_keys(model: type[BaseModel], data: dict, path: str) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        if model in COMPLETE or field.is_required():
            assert key in data, f"{path}: {model.__name__} key {key!r} missing"
        value = data.get(key)
        if value is None:
            continue
        for sub in _models_in(field.annotation):
            for k, item in enumerate(value if isinstance(value, list) else [value]):
                _require_keys(sub, item, f"{path}.{key}[{k}]")


def strict(model: type[BaseModel], data) -> BaseModel:
    """Parse with the SDK model, then require every key it declares (recursively)."""
    parsed = model.model_validate(data)
    _require_keys(model, data, "$")
    return parsed


@pytest.fixture(scope="module")
def client(sandbox):
    # The SDK takes the API gateway URL as given (IncydrSettings.url is a plain str and the
    # requests BaseUrlSession joins paths onto it), so the sandbox's http://127.0.0.1:PORT works
    # directly: no TLS, hostname or transport override is needed.
    return incydr.Client(url=sandbox.base_url, api_client_id=sandbox.client_id,
                         api_client_secret=sandbox.client_secret, log_stderr=False, use_rich=False)


@pytest.fixture(scope="module")
def raw(sandbox):
    http = requests.Session()
    token = http.post(f"{sandbox.base_url}/v1/oauth", auth=(sandbox.client_id, sandbox.client_secret),
                      timeout=10).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def call(method: str, path: str, **kwargs):
        response = http.request(method, f"{sandbox.base_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    yield call
    http.close()


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK deprecates its alerts client
        yield


def test_client_authenticates_and_reads_the_tenant_from_the_jwt(client, sandbox):
    assert client.tenant_id == sandbox.tenant_id
    assert client.session.auth.token_response.expires_in == 900


def test_sessions_iter_get_page_details_and_events(client, sandbox):
    start, end = sandbox.anchor - timedelta(days=2), sandbox.anchor
    # has_alerts: "Only include items that have a matching alert status. Defaults to True" (the SDK)
    alerted = list(client.sessions.v1.iter_all(start_time=start, end_time=end))
    quiet = list(client.sessions.v1.iter_all(start_time=start, end_time=end, has_alerts=False))
    assert len(alerted) > 50 and quiet and all(s.triggered_alerts for s in alerted)
    assert not any(s.triggered_alerts for s in quiet)
    # sort_key "Defaults to end time", sort_dir "Defaults to desc" (the SDK's get_page docstring)
    assert [s.end_time for s in alerted] == sorted((s.end_time for s in alerted), reverse=True)
    page = client.sessions.v1.get_page(start_time=start, end_time=end, page_num=1)  # 0-based
    assert page.total_count == len(alerted) and [s.session_id for s in page.items] == \
        [s.session_id for s in alerted[50:100]]
    picked = client.sessions.v1.get_page(start_time=start, end_time=end, has_alerts=False,
                                         states=[SessionStates.CLOSED_TP, SessionStates.OPEN], severities=[2, 3, 4],
                                         sort_key=SortKeys.SCORE)  # descending by default
    # (no sort_dir: the SDK's SortDirection is lower case, "asc"/"desc", where the OpenAPI enum is
    # "ASC"/"DESC" and the Splunk SOAR code42v3 connector notes the lower case value is rejected)
    assert picked.items and all(s.states[-1].state in ("CLOSED_TP", "OPEN") and s.scores[-1].severity >= 2
                                for s in picked.items)
    assert [s.scores[-1].score for s in picked.items] == sorted((s.scores[-1].score for s in picked.items),
                                                                reverse=True)
    one = alerted[0]
    rule_id = one.triggered_alerts[0].rule_id
    by_rule = list(client.sessions.v1.iter_all(start_time=start, end_time=end, rule_ids=[rule_id],
                                               actor_id=one.actor_id))
    assert one.session_id in {s.session_id for s in by_rule}
    assert all(s.actor_id == one.actor_id and rule_id in {a.rule_id for a in s.triggered_alerts} for s in by_rule)
    detail = client.sessions.v1.get_session_details(one.session_id)
    assert detail.model_dump() == one.model_dump()
    events = client.sessions.v1.get_session_events(one.session_id)
    assert isinstance(events, FileEventsPage) and events.total_count == len(events.file_events) > 0
    first = events.file_events[0]
    assert first.user.email == one.actor_name and first.file.hash.sha256 and first.risk.score > 0
    assert first.timestamp.timestamp() * 1000 >= one.begin_time


def test_alerts_search_iter_all_and_details(client, sandbox):
    query = incydr.AlertQuery(start_date=sandbox.anchor - timedelta(days=1), end_date=sandbox.anchor)
    page = client.alerts.v1.search(query)  # SDK defaults: pgSize 100, newest first
    assert page.total_count > 0 and page.alerts == sorted(page.alerts, key=lambda a: a.created_at, reverse=True)
    everything = list(client.alerts.v1.iter_all(
        incydr.AlertQuery(start_date=sandbox.anchor - timedelta(days=3), end_date=sandbox.anchor, pgSize=25)))
    assert len(everything) > 25 and len({a.id for a in everything}) == len(everything)
    assert all(a.tenant_id == sandbox.tenant_id and a.rule_id and a.created_at <= sandbox.anchor for a in everything)
    rule_id = everything[0].rule_id
    same_rule = list(client.alerts.v1.iter_all(
        incydr.AlertQuery(start_date=sandbox.anchor - timedelta(days=3), end_date=sandbox.anchor)
        .equals("RuleId", rule_id).equals("State", ["OPEN", "RESOLVED"])))
    assert same_rule == [a for a in sorted(everything, key=lambda a: (a.created_at, a.id), reverse=True)
                         if a.rule_id == rule_id]
    details = client.alerts.v1.get_details([a.id for a in everything[:3]])
    assert [d.id for d in details] == [a.id for a in everything[:3]] and all(d.observations for d in details)


def test_alert_rules_pages_and_single(client, sandbox):
    rules = list(client.alert_rules.v2.iter_all(page_size=3))  # PageNumber counts from 0: pages of 3, 3, 2
    assert len(rules) == 8 and len({r.id for r in rules}) == 8
    assert client.alert_rules.v2.get_page(page_num=2, page_size=3) == rules[6:]
    rule = client.alert_rules.v2.get_rule(rules[5].id)
    assert rule == rules[5] and rule.education.lesson_id
    departing = [r for r in rules if r.filters.watchlist]
    assert client.alert_rules.v2.get_page(watchlist_id=departing[0].filters.watchlist.watchlists[0].id) == departing


def test_actors_pages_lookups_and_families(client):
    page = client.actors.v1.get_page()  # SDK default pageSize 500
    assert len(page.actors) == 40
    actors = list(client.actors.v1.iter_all(page_size=15))  # page counts from 1
    assert [a.actor_id for a in actors] == [a.actor_id for a in page.actors]
    one = actors[3]
    assert client.actors.v1.get_actor_by_id(one.actor_id) == one
    assert client.actors.v1.get_actor_by_name(one.name, prefer_parent=False) == one
    child = next(a for a in actors if a.parent_actor_id)
    parent = client.actors.v1.get_actor_by_id(child.actor_id, prefer_parent=True)
    assert parent.actor_id == child.parent_actor_id
    assert client.actors.v1.get_actor_by_name(child.name) == parent  # prefer_parent defaults to True here
    family = client.actors.v1.get_family_by_member_id(child.actor_id)
    assert family.parent == parent and child in family.children
    assert client.actors.v1.get_family_by_member_name(parent.name) == family
    parents_only = client.actors.v1.get_page(prefer_parent=True).actors
    assert child.actor_id not in {a.actor_id for a in parents_only}
    assert all(a.name.endswith("@gmail.com") for a in client.actors.v1.get_page(name_ends_with="@gmail.com").actors)
    assert all(not a.active for a in client.actors.v1.get_page(active=False).actors)


def test_sdk_honours_retry_after_on_429(client, clean_sandbox):
    clean_sandbox.set_faults(fail_next=[429], retry_after=1)
    started = time.monotonic()
    assert len(client.alert_rules.v2.get_page(page_size=50)) == 8
    assert time.monotonic() - started >= 1.0  # the SDK waited what Retry-After said, then retried
    assert clean_sandbox.stats()["n_429"] == 1


def test_every_raw_answer_carries_every_key_the_sdk_models_declare(raw, sandbox):
    anchor = sandbox.anchor_ms
    page = raw("GET", "/v1/sessions", params={"on_or_after": anchor - 86_400_000, "before": anchor,
                                              "page_size": 50})  # has_alerts defaults to true
    strict(SessionsPage, page)
    assert 20 < len(page["items"]) < 48  # of the ~48 sessions a day (1440 over 30 days), those with alerts
    with_alerts = next(s for s in page["items"] if s["triggeredAlerts"] and s["notes"])
    strict(Session, raw("GET", f"/v1/sessions/{with_alerts['sessionId']}"))
    strict(SessionEvents, raw("GET", f"/v1/sessions/{with_alerts['sessionId']}/events"))
    alerts = raw("POST", "/v1/alerts/query-alerts", json={
        "tenantId": sandbox.tenant_id, "pgNum": 0, "pgSize": 200, "srtDirection": "ASC", "srtKey": "CreatedAt",
        "groupClause": "AND", "groups": []})
    assert strict(AlertQueryPage, alerts).total_count == alerts["totalCount"] > 200
    assert any(a["watchlists"] for a in alerts["alerts"]) and any(a["stateLastModifiedAt"] for a in alerts["alerts"])
    details = raw("POST", "/v1/alerts/query-details", json={"alertIds": [a["id"] for a in alerts["alerts"][:20]]})
    for detail in details["alerts"]:
        strict(AlertDetails, detail)
    for rule in raw("GET", "/v2/alert-rules", params={"PageNumber": 0, "PageSize": 100}):
        strict(RuleDetails, rule)
        strict(RuleDetails, raw("GET", f"/v2/alert-rules/{rule['id']}"))
    actors = raw("GET", "/v1/actors/actor/search", params={"page": 1, "pageSize": 100})
    strict(ActorsPage, actors)
    child = next(a for a in actors["actors"] if a["parentActorId"])
    strict(Actor, raw("GET", f"/v1/actors/actor/id/{child['actorId']}"))
    strict(ActorFamily, raw("GET", f"/v1/actors/actor/id/{child['actorId']}/family"))


def test_the_key_check_fails_when_a_key_is_missing(raw, clean_sandbox):
    session = raw("GET", "/v1/sessions", params={"page_size": 1})["items"][0]
    strict(Session, session)
    for key in ("lastUpdated", "userId"):
        with pytest.raises(AssertionError, match=key):
            strict(Session, {k: v for k, v in session.items() if k != key})
    with pytest.raises(AssertionError, match="eventCount"):  # nested, and optional for the SDK itself
        strict(Session, {**session, "riskIndicators": [{"id": "x", "name": "y", "weight": 1}]})
    clean_sandbox.set_faults(missing_key_every=1)  # the sandbox's own fault is caught the same way
    with pytest.raises(AssertionError, match="createdAt"):
        strict(AlertQueryPage, raw("POST", "/v1/alerts/query-alerts", json={"tenantId": clean_sandbox.tenant_id}))

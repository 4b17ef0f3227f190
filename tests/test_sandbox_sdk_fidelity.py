"""The official incydr SDK reads every endpoint the integration uses from the sandbox, and its
response models accept every response with no required key missing."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
import requests

incydr = pytest.importorskip("incydr")
from _incydr_sdk.actors.models import Actor, ActorFamily, ActorsPage
from _incydr_sdk.alert_rules.models.response import RuleDetails
from _incydr_sdk.alerts.models.response import AlertQueryPage
from _incydr_sdk.sessions.models.response import Session, SessionEvents, SessionsPage


@pytest.fixture(scope="module")
def client(sandbox):
    # The SDK takes any base URL: the sandbox's loopback http URL works as a Code42 API gateway.
    return incydr.Client(url=sandbox.base_url, api_client_id=sandbox.client_id,
                         api_client_secret=sandbox.client_secret, log_stderr=False, use_rich=False)


@pytest.fixture(scope="module")
def raw(sandbox):
    token = requests.post(f"{sandbox.base_url}/v1/oauth", auth=(sandbox.client_id, sandbox.client_secret),
                          timeout=10).json()["access_token"]

    def get(method: str, path: str, **kwargs):
        response = requests.request(method, f"{sandbox.base_url}{path}",
                                    headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()
    return get


def _strict(model, data):
    """Validate and also require every key the SDK model declares to be present in the data."""
    parsed = model.model_validate(data)
    for name, field in model.model_fields.items():
        assert (field.alias or name) in data, f"{model.__name__}: key {field.alias or name!r} missing"
    return parsed


def test_sdk_reads_sessions_events_and_tenant(client, sandbox):
    assert client.tenant_id == sandbox.tenant_id
    start = sandbox.anchor - timedelta(days=2)
    sessions = list(client.sessions.v1.iter_all(start_time=start, end_time=sandbox.anchor))
    assert len(sessions) > 50 and all(s.triggered_alerts for s in sessions)  # SDK default: has_alerts
    detail = client.sessions.v1.get_session_details(sessions[0].session_id)
    assert detail.session_id == sessions[0].session_id and detail.tenant_id == sandbox.tenant_id
    events = client.sessions.v1.get_session_events(sessions[0].session_id)
    assert events.file_events and events.total_count == len(events.file_events)


def test_sdk_reads_alerts(client, sandbox):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        query = incydr.AlertQuery(start_date=sandbox.anchor - timedelta(days=1), end_date=sandbox.anchor)
        alerts = list(client.alerts.v1.iter_all(query))
    assert alerts and all(a.tenant_id == sandbox.tenant_id and a.rule_id for a in alerts)


def test_sdk_reads_alert_rules_and_actors(client):
    rules = list(client.alert_rules.v2.iter_all())
    assert len(rules) == 8
    assert client.alert_rules.v2.get_rule(rules[0].id).name == rules[0].name
    page = client.actors.v1.get_page(page_num=1, page_size=10)
    assert len(page.actors) == 10
    actors = list(client.actors.v1.iter_all(page_size=15))
    assert len(actors) == 40
    one = client.actors.v1.get_actor_by_id(actors[3].actor_id)
    assert one.name == actors[3].name
    assert client.actors.v1.get_actor_by_name(actors[3].name, prefer_parent=False).actor_id == actors[3].actor_id
    child = next(a for a in actors if a.parent_actor_id)
    assert client.actors.v1.get_actor_by_id(child.actor_id, prefer_parent=True).actor_id == child.parent_actor_id
    family = client.actors.v1.get_family_by_member_id(child.actor_id)
    assert child.actor_id in {c.actor_id for c in family.children}


def test_every_response_carries_every_key_the_sdk_models_declare(raw, sandbox):
    before = int((sandbox.anchor).timestamp() * 1000)
    page = raw("GET", "/v1/sessions", params={"on_or_after": before - 86_400_000, "before": before,
                                              "has_alerts": "false", "page_size": 50})
    _strict(SessionsPage, page)
    assert page["items"]
    for item in page["items"]:
        _strict(Session, item)
    sid = page["items"][0]["sessionId"]
    _strict(Session, raw("GET", f"/v1/sessions/{sid}"))
    events = raw("GET", f"/v1/sessions/{sid}/events")
    _strict(SessionEvents, events)
    alerts = raw("POST", "/v1/alerts/query-alerts", json={"tenantId": sandbox.tenant_id, "pgNum": 0, "pgSize": 50})
    parsed = _strict(AlertQueryPage, alerts)
    assert parsed.total_count == alerts["totalCount"] and parsed.alerts
    for rule in raw("GET", "/v2/alert-rules", params={"PageNumber": 0, "PageSize": 50}):
        _strict(RuleDetails, rule)
    actors = raw("GET", "/v1/actors/actor/search", params={"page": 1, "pageSize": 50})
    _strict(ActorsPage, actors)
    for actor in actors["actors"]:
        _strict(Actor, actor)
    child = next(a for a in actors["actors"] if a["parentActorId"])
    _strict(ActorFamily, raw("GET", f"/v1/actors/actor/id/{child['actorId']}/family"))

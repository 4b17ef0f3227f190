"""Code42 detections on the KSAT user's timeline (KnowBe4 User Event API) and the optional Code42
session notes, against the sandbox over real HTTP and a real warehouse.

The sandbox clock is pinned (2026-11-01T00:00Z); "now" is passed in. The User Event API counts
calls per sandbox-clock UTC day; the push counts them in the warehouse per UTC day of its clock.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pipeline import use_sandbox
from test_coaching import SESSION_RULES, _setup, campaign

from code42_hook import Code42Hook
from knowbe4_hook import KnowBe4EventsHook, KnowBe4Hook
from securitycoach.coaching.code42_notes import write_notes
from securitycoach.coaching.ksat_events import external_id, push_events
from securitycoach.html_report import gather, render_report, resolve_period
from securitycoach.warehouse import schema as t

UNLIMITED = {"minutes_between": 0, "daily_cap": 100}


class Crash(Exception):
    pass


def _events_hook(monkeypatch, sandbox, **extra) -> KnowBe4EventsHook:
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_EVENTS_DEFAULT", json.dumps(
        {"conn_type": "knowbe4_events", "password": sandbox.events_key, "host": sandbox.base_url,
         "extra": {"retry_backoff": 0.05, "rate_limit_per_minute": 6000, **extra}}))
    return KnowBe4EventsHook()


def _rows(engine, **where):
    with engine.connect() as conn:
        query = sa.select(t.ksat_event).order_by(t.ksat_event.c.external_id)
        for name, value in where.items():
            query = query.where(t.ksat_event.c[name] == value)
        return conn.execute(query).all()


@pytest.fixture
def coached(request, sandbox, monkeypatch, tmp_path):
    """Three days synced, detections, one campaign whose fresh tips were sent (Slack). SQLite, or
    PostgreSQL for the tests marked ``@pytest.mark.parametrize("coached", ["postgresql"], indirect=True)``."""
    kind = getattr(request, "param", "sqlite")
    engine = request.getfixturevalue("sqlite_warehouse" if kind == "sqlite" else "pg_warehouse")
    s = _setup(engine, sandbox, monkeypatch, tmp_path)
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit=UNLIMITED))
    s.plan(campaigns)
    s.send(campaigns)
    yield s, campaigns
    sandbox.clear_sinks()


def _push(s, campaigns, hook, *, at=None, quota=10_000, **kwargs):
    at = at or s.now
    return push_events(s.engine, s.tenant, campaigns, hook, daily_quota=quota, clock=lambda: at, **kwargs)


def test_one_event_per_coached_detection_across_reruns_with_fields_and_mapping(coached, sandbox, monkeypatch):
    s, campaigns = coached
    hook = _events_hook(monkeypatch, sandbox)
    first = _push(s, campaigns, hook)
    sent = s.deliveries(status="sent")
    coached_keys = {(d.rule_key, d.subject_type, d.subject_id) for d in sent}
    assert coached_keys and first.outcomes == {"pushed": len(coached_keys)}
    api = sandbox.user_events()
    assert [e["name"] for e in api["event_types"]] == ["Code42 Incydr detection"]
    by_external = {e["external_id"]: e for e in api["events"]}
    assert len(api["events"]) == len(by_external) == len(coached_keys)
    levels = {0: 0, 1: 2, 2: 4, 3: 7, 4: 10}
    with s.engine.connect() as conn:
        detections = {(d.rule_key, d.subject_type, d.subject_id): d for d in conn.execute(sa.select(t.detection))}
        names = dict(conn.execute(sa.select(t.detection_rule.c.rule_key, t.detection_rule.c.name)).all())
    recipients = {(d.rule_key, d.subject_type, d.subject_id): d.recipient for d in sent}
    for key in coached_keys:
        event = by_external[external_id(s.tenant, *key)]
        detection = detections[key]
        assert event["user"]["email"] == recipients[key]
        assert event["risk"]["level"] == levels[detection.severity]
        assert event["description"].startswith(names[key[0]] + ": ")
        assert detection.summary is None or detection.summary not in event["description"]  # no file names
        assert event["source"] == "Code42 Incydr" and event["event_type"]["name"] == "Code42 Incydr detection"
        assert event["occurred_date"].startswith(f"{detection.occurred_at:%Y-%m-%dT%H:%M:%S}"[:19])
    # reruns (and a later hour with an overlapping look-back) create nothing new, look nothing up again
    calls = len(api["calls"])
    for later in (s.now, s.now + timedelta(hours=1)):
        again = _push(s, campaigns, hook, at=later)
        assert again.outcomes == {} and again.planned == {}
    api = sandbox.user_events()
    assert len(api["events"]) == len(coached_keys)
    assert [c["method"] + " " + c["path"] for c in api["calls"][calls:]] == []  # event type known: no call
    assert {r.status for r in _rows(s.engine)} == {"pushed"}


def test_push_all_marks_old_detections_stale_unless_backfill(coached, sandbox, monkeypatch, tmp_path):
    s, _ = coached
    hook = _events_hook(monkeypatch, sandbox)
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit=UNLIMITED))
    everything = campaigns.model_copy(update={"ksat_events": campaigns.ksat_events.model_copy(update={"push": "all"})})
    result = _push(s, everything, hook)
    assert result.planned.get("stale", 0) > 0 and result.outcomes["pushed"] == result.planned["pending"]
    with s.engine.connect() as conn:
        mapped_active = conn.execute(sa.text(
            "SELECT count(*) FROM detection d JOIN user_mapping m ON m.tenant_id = d.tenant_id AND m.actor_id = "
            "d.actor_id JOIN ksat_user u ON u.tenant_id = d.tenant_id AND u.ksat_user_id = m.ksat_user_id "
            "WHERE u.status = 'active'")).scalar()
    assert len(_rows(s.engine)) == mapped_active
    backfill = everything.model_copy(update={"ksat_events": everything.ksat_events.model_copy(
        update={"backfill": True})})
    more = _push(s, backfill, hook)
    assert more.outcomes["pushed"] == result.planned["stale"]
    withdrawn = len(_rows(s.engine, status="withdrawn"))  # cleared by triage: never pushed
    assert withdrawn == result.planned["withdrawn"] > 0
    assert len(sandbox.user_events()["events"]) == mapped_active - withdrawn == len(_rows(s.engine, status="pushed"))


@pytest.mark.parametrize("coached", ["sqlite", "postgresql"], indirect=True)
def test_a_crash_between_post_and_record_creates_no_second_event(coached, sandbox, monkeypatch):
    s, campaigns = coached
    hook = _events_hook(monkeypatch, sandbox)
    crashed = []

    def die(row):
        crashed.append(row.external_id)
        raise Crash("worker killed after the POST, before the record")

    with pytest.raises(Crash):
        _push(s, campaigns, hook, after_post=die)
    assert [r.external_id for r in _rows(s.engine, status="sending")] == crashed
    assert [e["external_id"] for e in sandbox.user_events()["events"]] == crashed  # KnowBe4 has it
    # within the lease nothing touches it; after the lease it is found by external_id, not resent
    inside = _push(s, campaigns, hook, at=s.now + timedelta(minutes=5))
    assert "resolved_pushed" not in inside.outcomes and len(_rows(s.engine, status="sending")) == 1
    after = _push(s, campaigns, hook, at=s.now + timedelta(minutes=11))
    assert after.outcomes == {"resolved_pushed": 1}
    api = sandbox.user_events()
    assert Counter(e["external_id"] for e in api["events"]).most_common(1)[0][1] == 1
    row = _rows(s.engine, external_id=crashed[0])[0]
    assert row.status == "pushed" and row.event_id == next(e["id"] for e in api["events"]
                                                           if e["external_id"] == crashed[0])
    posts = [c for c in api["calls"] if c["method"] == "POST" and c["path"] == "/events"]
    assert len(posts) == len(api["events"]) and sum(c["body"]["external_id"] == crashed[0] for c in posts) == 1


def test_a_lost_post_answer_is_in_doubt_then_found_not_resent(coached, sandbox, monkeypatch):
    s, campaigns = coached
    hook = _events_hook(monkeypatch, sandbox)
    sandbox.set_faults(events_fail_after_post_next=1)
    first = _push(s, campaigns, hook)
    assert first.outcomes["in_doubt"] == 1
    lost = _rows(s.engine, status="in_doubt")[0]
    second = _push(s, campaigns, hook)
    assert second.outcomes == {"resolved_pushed": 1}
    events = sandbox.user_events()["events"]
    assert sum(e["external_id"] == lost.external_id for e in events) == 1
    assert len(events) == len(_rows(s.engine, status="pushed"))


@pytest.mark.parametrize("coached", ["sqlite", "postgresql"], indirect=True)
def test_quota_stops_the_push_carries_the_rest_and_the_next_day_finishes(coached, sandbox, monkeypatch):
    s, campaigns = coached
    sandbox.set_faults(events_seats=1)  # KnowBe4: 10 calls per seat per day
    hook = _events_hook(monkeypatch, sandbox)
    seats = KnowBe4Hook().account()["number_of_seats"]
    assert seats == 1
    total = len({(d.rule_key, d.subject_type, d.subject_id) for d in s.deliveries(status="sent")})
    assert total > 9, "the test needs more coached detections than one day's quota"
    day1 = _push(s, campaigns, hook, quota=10 * seats)
    # 1 call to find the event type, 1 to create it, then 8 POSTs: the client stops at 10, KnowBe4 saw 10
    assert day1.outcomes == {"pushed": 8} and day1.quota_used == 10 and day1.deferred == total - 8
    assert "quota of 10 calls" in day1.stopped
    api = sandbox.user_events()
    assert api["used_today"] == 10 and all(c["status"] != 429 for c in api["calls"])
    assert len(_rows(s.engine, status="pending")) == total - 8
    again = _push(s, campaigns, hook, quota=10)  # same day: nothing goes, nothing is lost
    assert again.outcomes == {} and again.deferred == total - 8 and sandbox.user_events()["used_today"] == 10
    days = 1
    while _rows(s.engine, status="pending"):
        sandbox.advance(24 * 60)
        result = _push(s, campaigns, hook, at=s.now + timedelta(days=days), quota=10)
        days += 1
        assert 0 < result.outcomes["pushed"] <= 10  # the event type is known: every call a POST
    assert days == 1 + -(-(total - 8) // 10)
    events = sandbox.user_events()["events"]
    assert len(events) == total == len({e["external_id"] for e in events})
    # the report's pipeline health panel shows the push and the quota of its latest day
    data = gather(s.engine, s.tenant, resolve_period(s.engine, s.tenant), now=s.now + timedelta(days=days))
    last_day_calls = (total - 8) % 10 or 10
    assert data["ksat_events"]["pushed"] == total
    assert data["ksat_quota"] == [{"day": f"{s.now + timedelta(days=days - 1):%Y-%m-%d}", "used": last_day_calls,
                                   "quota": 10, "left": 10 - last_day_calls}]
    html = render_report(data)
    assert f"{last_day_calls} used, {10 - last_day_calls} left of 10" in html and f"pushed {total}" in html


def test_429_retry_after_is_honoured_and_a_long_one_defers(coached, sandbox, monkeypatch):
    s, campaigns = coached
    slept = []
    hook = _events_hook(monkeypatch, sandbox, max_retry_wait=5)
    hook.sleep = slept.append
    sandbox.set_faults(events_429_next=2, events_retry_after=3)
    result = _push(s, campaigns, hook)
    assert [round(x) for x in slept] == [3, 3] and result.outcomes["pushed"] > 0 and result.deferred == 0
    assert result.quota_used == len(sandbox.user_events()["calls"])  # the refused calls counted too
    # a Retry-After beyond max_retry_wait: no sleep, the run stops and the rest waits
    s.sandbox.reset()
    with s.engine.begin() as conn:
        conn.execute(t.ksat_event.delete())
        conn.execute(t.ksat_event_type.delete())
    sandbox.set_faults(events_429_next=1, events_retry_after=3600)
    slept.clear()
    stopped = _push(s, campaigns, hook)
    assert slept == [] and "HTTP 429 (Retry-After 3600 s)" in stopped.stopped and stopped.outcomes == {}
    with s.engine.connect() as conn:
        assert conn.execute(sa.select(t.ksat_event_quota.c.n_429)).scalar() == 1


def test_withdrawn_detections_are_deleted_or_never_pushed(coached, sandbox, monkeypatch):
    s, campaigns = coached
    hook = _events_hook(monkeypatch, sandbox)
    _push(s, campaigns, hook)
    pushed = [r for r in _rows(s.engine, status="pushed") if r.subject_type == "session"]
    victim = pushed[0]
    with s.engine.begin() as conn:  # an analyst closes the session as a false positive (as a load would record it)
        conn.execute(t.code42_session.update().where(t.code42_session.c.session_id == victim.subject_id)
                     .values(state="CLOSED_FP"))
    same = sorted(r.external_id for r in pushed if r.subject_id == victim.subject_id)  # every rule that matched it
    result = _push(s, campaigns, hook)
    assert result.outcomes == {"deleted": len(same)}
    api = sandbox.user_events()
    assert sorted(e["external_id"] for e in api["deleted"]) == same
    assert not set(same) & {e["external_id"] for e in api["events"]}
    assert len(api["events"]) == len(_rows(s.engine, status="pushed"))  # the other events stay
    row = _rows(s.engine, external_id=victim.external_id)[0]
    assert row.status == "deleted" and "CLOSED_FP" in row.reason
    assert _push(s, campaigns, hook).outcomes == {}  # deleted once
    with s.engine.connect() as conn:
        timeline = conn.execute(sa.text("SELECT status FROM rpt_user_timeline WHERE kind = 'ksat_event' AND "
                                        "subject_id = :s"), {"s": victim.subject_id}).scalars().all()
    assert timeline == ["deleted"] * len(same)


def test_bad_key_test_button_and_the_key_never_in_logs(coached, sandbox, monkeypatch, caplog):
    s, campaigns = coached
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_EVENTS_DEFAULT", json.dumps(
        {"conn_type": "knowbe4_events", "password": "wrong-key-123", "host": sandbox.base_url}))
    ok, message = KnowBe4EventsHook().test_connection()
    assert not ok and message.startswith("Bad API key: the KnowBe4 User Event API refused it (HTTP 401)")
    assert "wrong-key-123" not in message
    refused = _push(s, campaigns, KnowBe4EventsHook())
    assert refused.refused and "refused the API key" in refused.refused and "wrong-key-123" not in refused.refused
    ok, message = _events_hook(monkeypatch, sandbox).test_connection()
    assert ok and message.startswith("KnowBe4 User Event API key accepted")
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_EVENTS_DEFAULT", json.dumps(
        {"conn_type": "knowbe4_events", "password": "k", "host": "https://api.evil.example.com"}))
    ok, message = KnowBe4EventsHook().test_connection()
    assert not ok and "is not a User Event API host" in message
    with caplog.at_level(logging.DEBUG):
        sandbox.set_faults(events_429_next=1, events_retry_after=1)
        hook = _events_hook(monkeypatch, sandbox)
        hook.sleep = lambda s: None
        _push(s, campaigns, hook)
    assert caplog.text and sandbox.events_key not in caplog.text
    emails = {r.target_user for r in _rows(s.engine)}
    assert emails and not any(e in caplog.text for e in emails)


def test_code42_notes_are_off_by_default_and_exactly_once_per_delivery(coached, sandbox, monkeypatch):
    s, campaigns = coached
    assert campaigns.code42_notes.enabled is False
    sent = s.deliveries(status="sent")
    sandbox.clear_sinks()
    # the seed's client has Read permissions only: the write-back is refused, and says what it needs
    refused = write_notes(s.engine, s.tenant, Code42Hook(), clock=lambda: s.now)
    assert refused.refused and "Alerts and Sessions" in refused.refused and sandbox.sinks()["code42_notes"] == []
    use_sandbox(monkeypatch, sandbox)
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_DEFAULT", json.dumps(
        {"conn_type": "code42", "login": "sandbox-writer", "password": sandbox.client_secret,
         "host": sandbox.base_url, "extra": {"rate_limit_per_minute": 6000, "retry_backoff": 0.05}}))
    crashed = []

    def die(row):
        crashed.append(row.idempotency_key)
        raise Crash("worker killed after the note, before the record")

    with pytest.raises(Crash):
        write_notes(s.engine, s.tenant, Code42Hook(), clock=lambda: s.now, after_post=die)
    result = write_notes(s.engine, s.tenant, Code42Hook(), clock=lambda: s.now + timedelta(minutes=11))
    assert result.outcomes.get("resolved_noted") == 1 and result.refused is None
    again = write_notes(s.engine, s.tenant, Code42Hook(), clock=lambda: s.now + timedelta(hours=1))
    assert again.outcomes == {}
    notes = sandbox.sinks()["code42_notes"]
    keys = Counter(n["note"]["content"].rsplit("(delivery key ", 1)[1].rstrip(")") for n in notes)
    noted = {d.idempotency_key for d in s.deliveries() if d.note_status == "noted"}
    assert set(keys) == noted and max(keys.values()) == 1 and crashed[0] in keys
    assert noted == {d.idempotency_key for d in sent if d.subject_type == "session"} | {
        d.idempotency_key for d in s.deliveries() if d.note_status == "noted" and d.subject_type == "alert"}
    one = next(n for n in notes if n["note"]["content"].endswith(f"(delivery key {crashed[0]})"))
    row = next(d for d in sent if d.idempotency_key == crashed[0])
    assert one["note"]["content"].startswith(f"SecurityTip sent by campaign {row.campaign} at ")
    assert one["session_id"] == row.subject_id if row.subject_type == "session" else True
    session = Code42Hook().get_session(one["session_id"])
    assert any(crashed[0] in n.get("content", "") for n in session.notes)

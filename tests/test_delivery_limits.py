"""The delivery limit and the daily cap, decided on outbox rows written by hand.

``send_due`` decides from the ``delivery`` table alone whether a pending tip may go now. These tests
write the table the way earlier runs would have left it (what was sent, claimed or held, when, for
which tenant, campaign and person) and read which tips the channel received. The channel here is
a recorder: what it is asked to send is the outcome under test (the sandbox channels have their own
tests in test_coaching.py and test_slack_dm.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml
from pipeline import default_catalog

from securitycoach.coaching.campaigns import load_campaigns
from securitycoach.coaching.outbox import idempotency_key, send_due, tip_templates
from securitycoach.warehouse import schema as t

TENANT = "tenant-a"
USER = 101
NOW = datetime(2026, 11, 1, 10, 17, 23, 456789, tzinfo=UTC)  # mid-morning: the UTC day began 10 h 17 min ago
SLACK = {"type": "slack_dm", "conn_id": "securitycoach_slack"}


class RecordingChannel:
    """Takes every tip it is given (a channel that always delivers)."""

    def __init__(self):
        self.tips = []

    def send(self, tip):
        self.tips.append(tip)


def campaigns_file(tmp_path, *entries):
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "freshness_hours": 24,
                                    "triage": {"cleared_session_states": []},
                                    "campaigns": [{"rules": ["removable-media"], "channel": SLACK,
                                                   "template": "securitytip_chat.txt.j2", **e} for e in entries]},
                                   sort_keys=False))
    return load_campaigns(path, default_catalog(), tip_templates())


def limit(minutes_between=20, daily_cap=3):
    return {"minutes_between": minutes_between, "daily_cap": daily_cap}


def row(subject, *, status="pending", campaign="Chat", tenant=TENANT, user=USER, sent_at=None, claimed_at=None,
        due_at=None):
    """A delivery row as planning and earlier sends leave it."""
    return {"tenant_id": tenant, "campaign": campaign, "rule_key": "removable-media", "subject_type": "session",
            "subject_id": subject,
            "idempotency_key": idempotency_key(tenant, campaign, "removable-media", "session", subject),
            "actor_id": f"actor-{user}", "ksat_user_id": user, "recipient": f"user{user}@example.com",
            "channel": "slack_dm", "status": status, "reason": None, "attempts": 0 if status == "pending" else 1,
            "occurred_at": NOW - timedelta(hours=1), "created_at": NOW - timedelta(hours=1),
            "due_at": due_at or NOW - timedelta(minutes=1), "claimed_at": claimed_at, "sent_at": sent_at,
            "subject": None, "body": f"tip about {subject}"}


def earlier(subject, status="sent", *, minutes_ago, **kw):
    at = NOW - timedelta(minutes=minutes_ago)
    when = {"sent_at": at, "claimed_at": at} if status == "sent" else {"claimed_at": at}
    return row(subject, status=status, **{**when, **kw})


def outcome(engine, tmp_path, rows, *campaigns, tenant=TENANT):
    """Write ``rows``, run one send at NOW: (subjects sent, {subject: (status, reason)})."""
    with engine.begin() as conn:
        conn.execute(t.delivery.insert(), rows)
    channel = RecordingChannel()
    spec = campaigns_file(tmp_path, *campaigns)
    send_due(engine, tenant, spec, {c.name: channel for c in spec.campaigns}, clock=lambda: NOW)
    with engine.connect() as conn:
        final = {r.subject_id: (r.status, r.reason) for r in conn.execute(
            sa.select(t.delivery).where(t.delivery.c.tenant_id == tenant))}
    return sorted(tip.body.removeprefix("tip about ") for tip in channel.tips), final


def test_a_campaign_disabled_or_removed_after_planning_sends_nothing(sqlite_warehouse, tmp_path):
    rows = [row("s1", campaign="Paused"), row("s2", campaign="Gone"), row("s3", campaign="Chat")]
    sent, final = outcome(sqlite_warehouse, tmp_path, rows,
                          {"name": "Paused", "enabled": False}, {"name": "Chat"})
    assert sent == ["s3"]
    held = ("suppressed", "campaign removed or disabled before sending")
    assert final["s1"] == held and final["s2"] == held and final["s3"][0] == "sent"


@pytest.mark.parametrize("status", ["sent", "sending", "in_doubt"])
def test_a_tip_sent_claimed_or_in_doubt_counts_toward_the_delivery_limit(sqlite_warehouse, tmp_path, status):
    sent, final = outcome(sqlite_warehouse, tmp_path, [earlier("before", status, minutes_ago=5), row("now")],
                          {"name": "Chat", "delivery_limit": limit()})
    assert sent == []
    assert final["now"] == ("suppressed", "delivery limit: at most one SecurityTip per 20 min per user")


@pytest.mark.parametrize("status", ["suppressed", "stale", "test", "failed", "withdrawn", "no_chat_account"])
def test_a_tip_that_never_reached_the_person_does_not_count(sqlite_warehouse, tmp_path, status):
    rows = [earlier(f"before-{n}", status, minutes_ago=minutes) for n, minutes in enumerate((5, 90, 300))]
    sent, final = outcome(sqlite_warehouse, tmp_path, [*rows, row("now")],
                          {"name": "Chat", "delivery_limit": limit(daily_cap=1)})
    assert sent == ["now"] and final["now"][0] == "sent"


def test_an_in_doubt_tip_counts_from_its_claim_and_a_sent_one_from_when_it_went(sqlite_warehouse, tmp_path):
    rows = [row("doubt", status="in_doubt", claimed_at=NOW - timedelta(minutes=5), user=1),
            row("slow", status="sent", claimed_at=NOW - timedelta(minutes=45), sent_at=NOW - timedelta(minutes=5),
                user=2),
            row("old", status="sent", claimed_at=NOW - timedelta(minutes=46), sent_at=NOW - timedelta(minutes=25),
                user=3),
            row("now-1", user=1), row("now-2", user=2), row("now-3", user=3)]
    sent, final = outcome(sqlite_warehouse, tmp_path, rows, {"name": "Chat", "delivery_limit": limit()})
    assert sent == ["now-3"]  # user 3's last tip went 25 min ago; the others' 5 min ago
    assert final["now-1"][0] == final["now-2"][0] == "suppressed"


def test_tips_of_another_campaign_tenant_or_person_do_not_count(sqlite_warehouse, tmp_path):
    rows = [earlier("other-campaign", minutes_ago=5, campaign="Mail"),
            earlier("other-tenant", minutes_ago=5, tenant="tenant-b"),
            earlier("other-person", minutes_ago=5, user=202),
            row("now")]
    sent, final = outcome(sqlite_warehouse, tmp_path, rows,
                          {"name": "Chat", "delivery_limit": limit(daily_cap=1)}, {"name": "Mail"})
    assert sent == ["now"] and final["now"][0] == "sent"


def test_the_daily_cap_counts_from_the_start_of_the_utc_day(sqlite_warehouse, tmp_path):
    midnight = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [row("yesterday-1", status="sent", sent_at=midnight - timedelta(minutes=1)),
            row("yesterday-2", status="sent", sent_at=midnight - timedelta(microseconds=1)),
            row("at-midnight", status="sent", sent_at=midnight),
            row("now")]
    sent, _ = outcome(sqlite_warehouse, tmp_path, rows,
                      {"name": "Chat", "delivery_limit": limit(minutes_between=0, daily_cap=2)})
    assert sent == ["now"]  # one of today's two: yesterday's do not count
    with sqlite_warehouse.begin() as conn:
        conn.execute(t.delivery.insert(), [row("later")])
    channel = RecordingChannel()
    spec = campaigns_file(tmp_path, {"name": "Chat", "delivery_limit": limit(minutes_between=0, daily_cap=2)})
    send_due(sqlite_warehouse, TENANT, spec, {"Chat": channel}, clock=lambda: NOW)
    assert channel.tips == []  # the tip at midnight and "now": the cap of 2 is reached
    with sqlite_warehouse.connect() as conn:
        reason = conn.execute(sa.select(t.delivery.c.reason).where(t.delivery.c.subject_id == "later")).scalar_one()
    assert reason == "daily cap: 2 SecurityTips per user per day reached"

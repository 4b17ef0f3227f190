"""Campaigns and the SecurityTip outbox against the sandbox's Slack Web API, webhook and SMTP sinks.

The sandbox's clock is pinned (2026-11-01T00:00Z), so "now" is passed in: detections of the day
before the anchor are fresh, older ones are not. Every check reads what the sinks received.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import pairwise

import pytest
import sqlalchemy as sa
import yaml
from pipeline import default_catalog, hourly_ends, load_reference, run_detection, sync_interval, use_sandbox

from operators.channels import ChatWebhookSender, senders_for
from securitycoach.coaching.campaigns import CampaignError, load_campaigns
from securitycoach.coaching.outbox import plan_deliveries, send_due, tip_templates
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

SLACK = {"type": "slack_dm", "conn_id": "securitycoach_slack"}
WEBHOOK = {"type": "webhook", "conn_id": "securitycoach_chat_webhook"}
EMAIL = {"type": "email", "conn_id": "securitycoach_smtp", "from": "coach@example.com"}
SESSION_RULES = ["removable-media", "personal-cloud-upload", "public-cloud-share", "source-code-exfiltration",
                 "departing-employee-exfiltration", "high-risk-session", "critical-risk-session"]
COACHING_TABLES = (t.detection, t.detection_rule, t.delivery)


class Setup:
    def __init__(self, engine, tenant, sandbox, tmp_path):
        self.engine, self.tenant, self.sandbox, self.tmp_path = engine, tenant, sandbox, tmp_path
        self.now = sandbox.anchor
        self.templates = tip_templates()
        self.catalog = default_catalog()

    def campaigns(self, *campaigns, freshness_hours=24, triage=None):
        path = self.tmp_path / "campaigns.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "freshness_hours": freshness_hours,
                                        **({"triage": triage} if triage is not None else {}),
                                        "campaigns": list(campaigns)}, sort_keys=False))
        return load_campaigns(path, self.catalog, self.templates)

    def plan(self, campaigns, now=None):
        return plan_deliveries(self.engine, self.tenant, campaigns, self.templates, now=now or self.now)

    def send(self, campaigns, at=None, senders=None, **kwargs):
        at = at or self.now
        return send_due(self.engine, self.tenant, campaigns, senders or senders_for(campaigns), clock=lambda: at,
                        **kwargs)

    def deliveries(self, **where):
        with self.engine.connect() as conn:
            query = sa.select(t.delivery).order_by(t.delivery.c.sent_at, t.delivery.c.idempotency_key)
            for name, value in where.items():
                query = query.where(t.delivery.c[name] == value)
            return conn.execute(query).all()


# The boundary and race tests below are about limits and claims, not triage: their campaigns send
# whatever Code42 says of the subject (no cleared states, Instructor-covered subjects included).
NO_TRIAGE = {"cleared_session_states": []}


def campaign(name="Coaching", rules=("removable-media",), channel=SLACK, **extra):
    template = "securitytip_email.html.j2" if channel["type"] == "email" else "securitytip_chat.txt.j2"
    return {"name": name, "rules": list(rules), "channel": channel, "template": template, **extra}


def _setup(engine, sandbox, monkeypatch, tmp_path, *, days=3, hours=24) -> Setup:
    sandbox.reset()
    sandbox.clear_sinks()
    code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    sync_interval(engine, code42, end, hours=days * hours, lookback=timedelta(0))
    tenant = load_reference(engine, code42, knowbe4)
    run_detection(engine, tenant, now=sandbox.anchor)
    return Setup(engine, tenant, sandbox, tmp_path)


def _empty_setup(engine, sandbox, monkeypatch, tmp_path):
    """Reference data and mapping only (the runs of the test bring sessions), one unlimited campaign."""
    sandbox.reset()
    sandbox.clear_sinks()
    code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
    s = Setup(engine, load_reference(engine, code42, knowbe4), sandbox, tmp_path)
    limit = {"minutes_between": 0, "daily_cap": 100}
    return s, code42, s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit=limit))


def no_slack_account(s: Setup) -> set[int]:
    """KSAT user ids of the people the sandbox's Slack workspace has no account for."""
    emails = {e.lower() for e in s.sandbox.slack_workspace()["without_account"]}
    with s.engine.connect() as conn:
        return {u.ksat_user_id for u in conn.execute(sa.select(t.ksat_user)) if u.email.lower() in emails}


@pytest.fixture
def coaching(sqlite_warehouse, sandbox, monkeypatch, tmp_path):
    yield _setup(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    sandbox.clear_sinks()  # the sandbox is shared: later modules expect empty sinks


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_fresh_detections_are_sent_once_with_their_key_and_the_rest_recorded(kind, request, sandbox, monkeypatch,
                                                                             tmp_path):
    engine = request.getfixturevalue("sqlite_warehouse" if kind == "sqlite" else "pg_warehouse")
    s = _setup(engine, sandbox, monkeypatch, tmp_path)
    campaigns = s.campaigns(
        campaign("Chat", rules=["removable-media", "personal-cloud-upload"]),
        campaign("Mail", rules=["departing-employee-exfiltration"], channel=EMAIL),
        campaign("Alert rules", rules=["code42-alert-rule:*"], test_mode=True),
    )
    planned = s.plan(campaigns).planned
    with engine.connect() as conn:  # the campaigns are mirrored for reports
        mirrored = {r.campaign: (r.channel, r.test_mode, r.rule_keys) for r in conn.execute(sa.select(t.coaching_campaign))}
    assert mirrored == {"Chat": ("slack_dm", False, ["removable-media", "personal-cloud-upload"]),
                        "Mail": ("email", False, ["departing-employee-exfiltration"]),
                        "Alert rules": ("slack_dm", True, ["code42-alert-rule:*"])}
    assert planned["Chat"]["stale"] > 0 and planned["Chat"]["pending"] > 0
    assert planned["Mail"]["pending"] > 0 and set(planned["Alert rules"]) == {"test"}
    result = s.send(campaigns)
    sinks = sandbox.sinks()
    sent = s.deliveries(status="sent")
    assert len(sinks["slack"]) == result.by_status["Chat"]["sent"] == len([d for d in sent if d.campaign == "Chat"])
    assert len(sinks["mail"]) == result.by_status["Mail"]["sent"] == len([d for d in sent if d.campaign == "Mail"])
    assert sinks["webhook"] == []  # nothing about a person goes to the shared channel
    # each tip carries its row's idempotency key, to the row's recipient, and says what happened
    by_key = {d.idempotency_key: d for d in sent}
    assert sorted(m["idempotency_key"] for m in sinks["slack"]) == sorted(
        d.idempotency_key for d in sent if d.campaign == "Chat")
    for message in sinks["slack"]:
        row = by_key[message["idempotency_key"]]
        assert message["email"].lower() == row.recipient.lower() and message["channel"].startswith("D")
        assert message["text"] == row.body and "SecurityTip" in row.body
        assert "https://training.knowbe4.com/securitycoach/lessons/" in row.body
    for mail in sinks["mail"]:
        row = by_key[mail["idempotency_key"]]
        assert mail["rcpt_tos"] == [row.recipient] and mail["subject"] == row.subject
        assert mail["message_id"] == f"<{row.idempotency_key}@securitycoach>"
    # nothing older than the freshness window went out; nothing fresh was marked stale
    window = s.now - timedelta(hours=24)
    assert all(as_utc(d.occurred_at) >= window for d in sent)
    assert all(as_utc(d.occurred_at) < window for d in s.deliveries(status="stale"))
    # a rerun an hour later plans and sends nothing new
    before = table_digests(engine, COACHING_TABLES)
    run_detection(engine, s.tenant, now=s.now + timedelta(hours=1))
    s.plan(campaigns, now=s.now + timedelta(hours=1))
    again = s.send(campaigns, at=s.now + timedelta(hours=1))
    assert again.by_status == {}
    assert table_digests(engine, COACHING_TABLES) == before
    assert len(sandbox.sinks()["slack"]) == len(sinks["slack"])


def test_reruns_and_overlapping_lookback_never_duplicate_detections_or_deliveries(sqlite_warehouse, sandbox,
                                                                                 monkeypatch, tmp_path):
    s, code42, campaigns = _empty_setup(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    engine, tenant = s.engine, s.tenant
    ends = hourly_ends(sandbox.anchor, 6)

    def hourly_runs():
        for end in ends:  # each run re-reads the 24 h before its interval: they overlap
            sync_interval(engine, code42, end)
            run_detection(engine, tenant, now=end)
            s.plan(campaigns, now=end)
            s.send(campaigns, at=end)

    hourly_runs()
    first = table_digests(engine, COACHING_TABLES)
    received = len(sandbox.sinks()["slack"])
    assert first["detection"][0] > 0 and received > 0
    hourly_runs()  # the same six runs again
    assert table_digests(engine, COACHING_TABLES) == first
    assert len(sandbox.sinks()["slack"]) == received
    keys = [w["idempotency_key"] for w in sandbox.sinks()["slack"]]
    assert len(keys) == len(set(keys))


def _sent_times(rows) -> dict[int, list]:
    times = defaultdict(list)
    for row in rows:
        if row.status == "sent":
            times[row.ksat_user_id].append(as_utc(row.sent_at))
    return times


def test_delivery_limit_spaces_tips_per_user(coaching):
    s = coaching
    t0 = s.now
    rules = ["removable-media"]
    steps = ((t0, ["personal-cloud-upload"]), (t0 + timedelta(minutes=10), ["public-cloud-share"]),
             (t0 + timedelta(minutes=30), ["critical-risk-session", "high-risk-session"]))
    got_at: dict[timedelta, set[int]] = {}
    no_account = no_slack_account(s)  # their tips end as no_chat_account, whatever the limit
    for at, more in steps:
        rules += more
        campaigns = s.campaigns(campaign("Chat", rules=rules, delivery_limit={"minutes_between": 20, "daily_cap": 10}))
        s.plan(campaigns, now=t0)
        pending = {d.ksat_user_id for d in s.deliveries(status="pending")}
        s.send(campaigns, at=at)
        got_at[at - t0] = {d.ksat_user_id for d in s.deliveries(status="sent") if as_utc(d.sent_at) == at}
        if at - t0 == timedelta(minutes=10):  # 10 min after the first tips: only users without one
            assert got_at[at - t0] == pending - got_at[timedelta(0)] - no_account
    assert got_at[timedelta(0)] and got_at[timedelta(minutes=30)] & got_at[timedelta(0)]
    rows = s.deliveries()
    for times in _sent_times(rows).values():
        times.sort()
        assert all(b - a >= timedelta(minutes=20) for a, b in pairwise(times))
    limited = [d for d in rows if d.status == "suppressed"]
    assert limited and all(d.reason.startswith("delivery limit: at most one SecurityTip per 20 min") for d in limited)
    assert len(s.sandbox.sinks()["slack"]) == sum(len(v) for v in _sent_times(rows).values())


def test_daily_cap(coaching):
    s = coaching
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit={"minutes_between": 0,
                                                                                  "daily_cap": 2}))
    s.plan(campaigns)
    no_account = no_slack_account(s)
    candidates = Counter(d.ksat_user_id for d in s.deliveries(status="pending") if d.ksat_user_id not in no_account)
    assert max(candidates.values()) > 2  # someone has more fresh detections than the cap
    s.send(campaigns)
    rows = s.deliveries()
    sent = Counter(d.ksat_user_id for d in rows if d.status == "sent")
    assert sent == Counter({user: min(n, 2) for user, n in candidates.items()})
    capped = [d for d in rows if d.status == "suppressed"]
    assert len(capped) == sum(max(0, n - 2) for n in candidates.values())
    assert all(d.reason == "daily cap: 2 SecurityTips per user per day reached" for d in capped)


def test_test_mode_records_what_would_be_sent_and_sends_nothing(coaching):
    s = coaching
    campaigns = s.campaigns(campaign("Dry run", rules=SESSION_RULES, test_mode=True),
                            campaign("Dry mail", rules=["departing-employee-exfiltration"], channel=EMAIL,
                                     test_mode=True))
    planned = s.plan(campaigns).planned
    assert set(planned) == {"Dry run", "Dry mail"} and all(set(p) == {"test"} for p in planned.values())
    assert s.send(campaigns).by_status == {}
    assert s.sandbox.sinks()["slack"] == [] and s.sandbox.sinks()["mail"] == []
    rows = s.deliveries()
    assert rows and all(d.status == "test" and d.sent_at is None and "SecurityTip" in d.body for d in rows)


def test_a_backfill_of_30_days_delivers_nothing_old(sqlite_warehouse, sandbox, monkeypatch, tmp_path):
    s, code42, campaigns = _empty_setup(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    engine, tenant = s.engine, s.tenant
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    for day in range(30, 0, -1):  # 30 daily backfill runs, executed "now" (the anchor)
        sync_interval(engine, code42, last - timedelta(days=day - 1), hours=24, lookback=timedelta(0))
        run_detection(engine, tenant, now=s.now)
        s.plan(campaigns)
        s.send(campaigns)
    rows = s.deliveries()
    window = s.now - timedelta(hours=24)
    old = [d for d in rows if as_utc(d.occurred_at) < window]
    assert len(old) > 10 * len([d for d in rows if as_utc(d.occurred_at) >= window])  # mostly history
    assert {d.status for d in old} == {"stale"}
    sent = [d for d in rows if d.status == "sent"]
    assert sent and all(as_utc(d.occurred_at) >= window for d in sent)
    assert len(sandbox.sinks()["slack"]) == len(sent)


def test_webhook_5xx_is_retried_and_4xx_is_reported(coaching):
    """The shared webhook's sender (the team digest's channel), driven through the outbox."""
    s = coaching
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit={"minutes_between": 0,
                                                                                  "daily_cap": 100}))
    s.plan(campaigns)
    senders = {"Chat": ChatWebhookSender("securitycoach_chat_webhook", attempts=3, backoff=0.01)}
    s.sandbox.webhook_fail_next(503, 502)  # two 5xx, then the sink accepts: one tip arrives
    first = s.send(campaigns, senders=senders, max_rows=1)
    assert first.by_status == {"Chat": {"sent": 1}} and len(s.sandbox.sinks()["webhook"]) == 1
    s.sandbox.webhook_fail_next(400)  # permanent: reported, not retried
    second = s.send(campaigns, senders=senders, max_rows=1)
    assert second.by_status == {"Chat": {"failed": 1}}
    assert len(second.failures) == 1 and "webhook refused the tip: HTTP 400 invalid_payload" in second.failures[0]
    failed = s.deliveries(status="failed")
    assert len(failed) == 1 and failed[0].attempts == 1 and "HTTP 400" in failed[0].reason
    s.sandbox.webhook_fail_next(503, 503, 503)  # still failing after the sender's retries: try later
    third = s.send(campaigns, senders=senders, max_rows=1)
    assert third.by_status == {"Chat": {"retry_later": 1}}
    later = [d for d in s.deliveries(status="pending") if d.attempts == 1]
    assert len(later) == 1 and later[0].reason == "webhook answered HTTP 503"
    assert as_utc(later[0].due_at) == s.now + timedelta(minutes=5)
    assert len(s.sandbox.sinks()["webhook"]) == 1
    assert "sandbox-webhook-token" not in " ".join([*second.failures, later[0].reason])


CRASH = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime
    from securitycoach.coaching.campaigns import load_campaigns
    from securitycoach.coaching.outbox import send_due, tip_templates
    from securitycoach.detection.catalog import load_catalog
    from securitycoach.paths import detection_rules_path
    from securitycoach.warehouse import create_warehouse_engine
    from operators.channels import senders_for
    url, path, tenant, at = sys.argv[1:5]
    campaigns = load_campaigns(path, load_catalog(detection_rules_path()), tip_templates())
    now = datetime.fromisoformat(at)
    send_due(create_warehouse_engine(url), tenant, campaigns, senders_for(campaigns), clock=lambda: now,
             after_send=lambda tip: os.kill(os.getpid(), signal.SIGKILL))
""")


def test_a_crash_between_send_and_record_does_not_resend(coaching):
    s = coaching
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit={"minutes_between": 0,
                                                                                  "daily_cap": 100}))
    s.plan(campaigns)
    pending = len(s.deliveries(status="pending"))
    assert pending > 2
    worker = subprocess.run(
        [sys.executable, "-c", CRASH, str(s.engine.url), str(s.tmp_path / "campaigns.yaml"), s.tenant,
         s.now.isoformat()], check=False, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert worker.returncode == -9, worker.stderr[-2000:]  # killed right after the first send
    arrived = s.sandbox.sinks()["slack"]
    in_flight = s.deliveries(status="sending")
    assert len(arrived) == 1 and len(in_flight) == 1
    assert arrived[0]["idempotency_key"] == in_flight[0].idempotency_key
    # a run within the lease leaves the claim alone (its worker may still be alive) ...
    s.send(campaigns, at=s.now + timedelta(minutes=1), max_rows=0)
    assert len(s.deliveries(status="sending")) == 1
    # ... a later run marks it in doubt and sends everything else, each once
    s.send(campaigns, at=s.now + timedelta(minutes=11))
    doubt = s.deliveries(status="in_doubt")
    assert [d.idempotency_key for d in doubt] == [in_flight[0].idempotency_key]
    assert "not resent" in doubt[0].reason
    keys = [w["idempotency_key"] for w in s.sandbox.sinks()["slack"]]
    no_chat = len(s.deliveries(status="no_chat_account"))
    assert len(keys) == pending - no_chat and len(set(keys)) == len(keys)


def test_tips_escape_what_the_api_said(coaching):
    s = coaching
    with s.engine.begin() as conn:
        conn.execute(t.detection.update().values(summary='<script>alert(1)</script> & "quotes"'))
    campaigns = s.campaigns(campaign("Mail", rules=["departing-employee-exfiltration"], channel=EMAIL))
    s.plan(campaigns)
    s.send(campaigns)
    mails = s.sandbox.sinks()["mail"]
    assert mails
    for mail in mails:
        assert "<script>" not in mail["body"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in mail["body"]


def test_campaign_file_errors_name_file_campaign_and_field(coaching):
    s = coaching
    cases = [
        (campaign(rules=["no-such-rule"]), "campaign 1 ('Coaching'): rules: 'no-such-rule' matches no rule"),
        (campaign(template="missing.j2"), "campaign 1 ('Coaching'): template: 'missing.j2' is not in"),
        (campaign(subject="{{ rule.name "), "campaign 1 ('Coaching'): subject: Jinja syntax error"),
        (campaign(channel={"type": "pager", "conn_id": "x"}), "campaign 1 ('Coaching'): channel"),
        (campaign(channel={**EMAIL, "from": "not-an-address"}), "campaign 1 ('Coaching'): channel.email.from"),
        (campaign(delivery_limit={"daily_cap": 0}), "campaign 1 ('Coaching'): delivery_limit.daily_cap"),
        # a person's tip on the shared team channel
        (campaign(channel=WEBHOOK, template="securitytip_chat.txt.j2"),
         ("campaign 1 ('Coaching'): channel: type 'webhook' is a shared team channel (audience: team), and a "
         "campaign sends one person their own SecurityTip (template 'securitytip_chat.txt.j2' uses detection, user)")),
        (campaign(channel={**WEBHOOK, "audience": "person"}), "campaign 1 ('Coaching'): channel.webhook.audience"),
    ]
    for bad, message in cases:
        with pytest.raises(CampaignError) as err:
            s.campaigns(bad)
        assert str(err.value).startswith(str(s.tmp_path / "campaigns.yaml")) and message in str(err.value), err.value
    with pytest.raises(CampaignError, match=r"campaign names must be unique; repeated: \['Coaching'\]"):
        s.campaigns(campaign(), campaign())
    with pytest.raises(CampaignError, match=r"campaign 'Coaching': groups: \['Nobody'\] are not KSAT groups"):
        s.plan(s.campaigns(campaign(groups=["Nobody"])))
    assert s.deliveries() == []


def test_campaigns_target_ksat_groups(coaching):
    s = coaching
    with s.engine.connect() as conn:
        groups = dict(conn.execute(sa.select(t.ksat_group.c.name, t.ksat_group.c.group_id)).all())
        members = {u.ksat_user_id: set(u.groups or []) for u in conn.execute(sa.select(t.ksat_user))}
    s.plan(s.campaigns(campaign("Everyone", rules=SESSION_RULES)))
    everyone = {d.ksat_user_id for d in s.deliveries(campaign="Everyone")}
    # a group holding some but not all of the users with detections
    name = next(n for n, gid in sorted(groups.items()) if 0 < sum(gid in members[u] for u in everyone) < len(everyone))
    s.plan(s.campaigns(campaign("Everyone", rules=SESSION_RULES), campaign("Group", rules=SESSION_RULES,
                                                                           groups=[name])))
    in_group = {d.ksat_user_id for d in s.deliveries(campaign="Group")}
    assert in_group == {u for u in everyone if groups[name] in members[u]}


def test_the_default_campaign_file_is_valid():
    campaigns = load_campaigns(os.path.join(os.path.dirname(__file__), "..", "include", "config", "campaigns.yaml"),
                               default_catalog(), tip_templates())
    assert any(c.test_mode for c in campaigns.campaigns) and campaigns.freshness_hours == 24
    assert {c.channel.type for c in campaigns.campaigns} == {"slack_dm", "email"}
    assert campaigns.team_digest.channel.type == "webhook" and campaigns.team_digest.channel.audience == "team"



def test_a_tip_exactly_the_delivery_limit_after_the_last_one_is_due(coaching):
    s = coaching
    t0, gap = s.now, timedelta(minutes=20)
    limit = {"minutes_between": 20, "daily_cap": 10}
    first = s.campaigns(campaign("Chat", rules=["removable-media"], delivery_limit=limit,
                                 skip_instructor_covered=False), triage=NO_TRIAGE)
    s.plan(first, now=t0)
    s.send(first, at=t0)
    coached = {d.ksat_user_id for d in s.deliveries(status="sent")}
    assert coached
    more = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit=limit, skip_instructor_covered=False),
                       triage=NO_TRIAGE)
    s.plan(more, now=t0)
    waiting = {d.ksat_user_id for d in s.deliveries(status="pending")}
    assert waiting & coached  # users with a tip at t0 and more to come
    s.send(more, at=t0 + gap)  # exactly 20 minutes after their last tip: due (one each, the rest held)
    got = Counter(d.ksat_user_id for d in s.deliveries(status="sent") if as_utc(d.sent_at) == t0 + gap)
    without_slack = {d.ksat_user_id for d in s.deliveries(status="no_chat_account")}
    assert set(got) == waiting - without_slack and set(got.values()) == {1}


def test_a_detection_exactly_freshness_hours_old_is_not_stale(coaching):
    s = coaching
    probe = s.campaigns(campaign("Probe", rules=SESSION_RULES, test_mode=True))
    s.plan(probe)
    occurred = sorted({as_utc(d.occurred_at) for d in s.deliveries(campaign="Probe")})
    edge = occurred[len(occurred) // 2]  # a detection time with older ones before it
    at = edge + timedelta(hours=24)
    live = s.campaigns(campaign("Chat", rules=SESSION_RULES, skip_instructor_covered=False), freshness_hours=24,
                       triage=NO_TRIAGE)
    s.plan(live, now=at)
    status = {as_utc(d.occurred_at): d.status for d in s.deliveries(campaign="Chat")}
    assert status[edge] == "pending"
    assert {v for k, v in status.items() if k < edge} == {"stale"}
    assert {v for k, v in status.items() if k > edge} == {"pending"}


def test_two_senders_racing_on_one_row_send_it_once(pg_warehouse, sandbox, monkeypatch, tmp_path, request):
    """Two workers read the same due row before either claims it (held at the claim by a barrier):
    the conditional claim lets one of them send it; the other finds it taken. Real PostgreSQL."""
    import threading

    request.addfinalizer(sandbox.clear_sinks)  # the sandbox is shared: later modules expect empty sinks
    s = _setup(pg_warehouse, sandbox, monkeypatch, tmp_path)
    limit = {"minutes_between": 0, "daily_cap": 100}
    campaigns = s.campaigns(campaign("Chat", rules=SESSION_RULES, delivery_limit=limit,
                                     skip_instructor_covered=False), triage=NO_TRIAGE)
    s.plan(campaigns)
    pending = s.deliveries(status="pending")
    assert len(pending) > 1
    with s.engine.begin() as conn:  # leave one due row: the one both workers will go for
        conn.execute(t.delivery.update().where(t.delivery.c.idempotency_key != pending[0].idempotency_key,
                                               t.delivery.c.status == "pending")
                     .values(due_at=s.now + timedelta(days=1)))
    at_claim = threading.Barrier(2, timeout=30)
    held = threading.local()

    @sa.event.listens_for(s.engine, "before_cursor_execute")
    def hold_the_first_claim(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE DELIVERY SET STATUS") and not getattr(held, "done", False):
            held.done = True
            at_claim.wait()

    results, errors = [], []

    def worker():
        try:
            results.append(s.send(campaigns, max_rows=2))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sa.event.remove(s.engine, "before_cursor_execute", hold_the_first_claim)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert sorted(r.by_status.get("Chat", {}).get("sent", 0) for r in results) == [0, 1]
    arrived = [w["idempotency_key"] for w in sandbox.sinks()["slack"]]
    assert arrived == [pending[0].idempotency_key]
    assert [d.idempotency_key for d in s.deliveries(status="sent")] == [pending[0].idempotency_key]


def test_the_tip_and_report_templates_refuse_an_unknown_name_and_end_without_a_newline():
    """A tip never goes out with a blank where a value should be, nor with a stray trailing newline."""
    import jinja2

    from securitycoach.report import template_environment

    for env in (tip_templates(), template_environment()):
        with pytest.raises(jinja2.UndefinedError, match="'name' is undefined"):  # not a blank
            env.from_string("Hello {{ name }}").render()
    assert tip_templates().from_string("SecurityTip\n").render() == "SecurityTip"


def test_a_channel_connection_missing_when_a_tip_is_due_is_one_named_error_and_the_tips_wait(coaching, monkeypatch,
                                                                                           airflow_db):
    """The channels look their connection up only when a tip is due (a stale-only run never does);
    then a missing one stops its campaign with one line naming it and leaves the tips pending."""
    from operators.coaching import DeliverTipsOperator
    from securitycoach.coaching.campaigns import TeamDigest, WebhookChannel

    s = coaching
    monkeypatch.delenv("AIRFLOW_CONN_SECURITYCOACH_SMTP")
    monkeypatch.delenv("AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK")
    campaigns = s.campaigns(campaign("Mail", rules=SESSION_RULES, channel=EMAIL))
    planned = s.plan(campaigns)
    assert planned.planned["Mail"].get("pending", 0) > 0
    sent = s.send(campaigns)
    assert sent.channel_errors == {"Mail": "SMTP connection 'securitycoach_smtp' is not defined"}
    assert sent.failures == [] and s.sandbox.sinks()["mail"] == []
    waiting = s.deliveries(status="pending")
    assert len(waiting) == planned.planned["Mail"]["pending"] and {d.attempts for d in waiting} == {0}
    digest = campaigns.model_copy(update={"team_digest": TeamDigest(
        channel=WebhookChannel(type="webhook", conn_id="securitycoach_chat_webhook"))})
    assert DeliverTipsOperator.post_team_digest(s.engine, s.tenant, digest, s.templates, planned, sent,
                                                run_id="r1") == (
        "failed: connection 'securitycoach_chat_webhook' is not defined")
    assert s.sandbox.sinks()["webhook"] == []

"""SecurityTips as Slack direct messages, and the team digest, against the sandbox's Slack Web API.

Real SlackHook (apache-airflow-providers-slack, slack_sdk) over HTTP to the sandbox; the sandbox
records every message with its addressee. The operator tests run the deliver task's code
(``DeliverTipsOperator.execute``) on a sandbox anchored at the present, so its detections are fresh.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml
from airflow.sdk.exceptions import AirflowFailException
from pipeline import load_reference, run_detection, sync_interval, use_sandbox

from operators.channels import SlackDMSender
from operators.coaching import DeliverTipsOperator
from securitycoach.coaching.campaigns import load_campaigns
from securitycoach.coaching.outbox import DeliveryError, Tip, plan_deliveries, send_due, tip_templates
from securitycoach.detection.catalog import load_catalog
from securitycoach.paths import detection_rules_path
from securitycoach.warehouse import schema as t

SLACK = {"type": "slack_dm", "conn_id": "securitycoach_slack"}
EMAIL = {"type": "email", "conn_id": "securitycoach_smtp", "from": "coach@example.com"}
RULES = ["removable-media", "personal-cloud-upload", "public-cloud-share", "source-code-exfiltration",
         "high-risk-session", "critical-risk-session"]
UNLIMITED = {"minutes_between": 0, "daily_cap": 100}
SLACK_METHODS = {"users.lookupByEmail", "conversations.open", "chat.postMessage"}


def _campaign_file(tmp_path, *, digest=True, email=False):
    spec = {"version": 1, "campaigns": [{"name": "Slack coaching", "rules": RULES, "channel": SLACK,
                                         "delivery_limit": UNLIMITED, "template": "securitytip_chat.txt.j2"}]}
    if email:
        spec["campaigns"].append({"name": "Departing", "rules": ["departing-employee-exfiltration"], "channel": EMAIL,
                                  "delivery_limit": UNLIMITED, "template": "securitytip_email.html.j2"})
    if digest:
        spec["team_digest"] = {"channel": {"type": "webhook", "conn_id": "securitycoach_chat_webhook",
                                           "audience": "team"}}
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def live_sandbox(start_sandbox):
    """A sandbox whose data ends now, so the deliver task (which plans at the real now) sends."""
    return start_sandbox(anchor=datetime.now(UTC).replace(second=0, microsecond=0).isoformat())


def _load(engine, sb, monkeypatch, *, days=2):
    sb.reset()
    sb.clear_sinks()
    code42, knowbe4 = use_sandbox(monkeypatch, sb)
    end = sb.anchor.replace(minute=0, second=0, microsecond=0)
    sync_interval(engine, code42, end, hours=days * 24, lookback=timedelta(0))
    tenant = load_reference(engine, code42, knowbe4)
    run_detection(engine, tenant, now=sb.anchor)
    return tenant


def _rows(engine, **where):
    with engine.connect() as conn:
        query = sa.select(t.delivery)
        for name, value in where.items():
            query = query.where(t.delivery.c[name] == value)
        return conn.execute(query).all()


def test_a_slack_tip_reaches_exactly_its_persons_direct_conversation(sqlite_warehouse, sandbox, monkeypatch,
                                                                     tmp_path):
    engine = sqlite_warehouse
    tenant = _load(engine, sandbox, monkeypatch)
    templates = tip_templates()
    campaigns = load_campaigns(_campaign_file(tmp_path, digest=False), load_catalog(detection_rules_path()),
                               templates)
    plan_deliveries(engine, tenant, campaigns, templates, now=sandbox.anchor)
    sender = SlackDMSender("securitycoach_slack")
    result = send_due(engine, tenant, campaigns, {"Slack coaching": sender}, clock=lambda: sandbox.anchor)
    assert result.failures == [] and result.channel_errors == {}
    sent = _rows(engine, status="sent")
    workspace = sandbox.slack_workspace()["users"]
    sinks = sandbox.sinks()
    assert sent and len(sinks["slack"]) == len(sent)
    by_key = {m["idempotency_key"]: m for m in sinks["slack"]}
    assert len(by_key) == len(sent)  # one message per tip, none twice
    for row in sent:
        message = by_key[row.idempotency_key]
        person = next(v for e, v in workspace.items() if e.lower() == row.recipient.lower())
        # to the recipient's own direct conversation, with the recipient's tip, and nothing else
        assert (message["user_id"], message["channel"]) == (person["id"], person["dm_channel"])
        assert message["email"].lower() == row.recipient.lower() and message["text"] == row.body
    assert sinks["webhook"] == [] and sinks["mail"] == []
    calls = sinks["slack_calls"]
    assert {c["method"] for c in calls} <= SLACK_METHODS
    # the look-ups are cached for the run: one per person, one conversation per person with an account
    people = {r.recipient.lower() for r in _rows(engine) if r.status in ("sent", "no_chat_account")}
    assert sum(c["method"] == "users.lookupByEmail" for c in calls) == len(people)
    assert sum(c["method"] == "conversations.open" for c in calls) == len({r.recipient.lower() for r in sent})
    assert sum(c["method"] == "chat.postMessage" for c in calls) == len(sent)


def test_a_429_with_retry_after_is_honoured(clean_sandbox, monkeypatch):
    sb = clean_sandbox
    sb.clear_sinks()
    use_sandbox(monkeypatch, sb)
    email = next(iter(sb.slack_workspace()["users"]))
    tip = Tip("Slack coaching", email, "s", "Hi, this is a SecurityTip.", "key-429")
    sb.set_faults(slack_ratelimited_next=1, slack_retry_after=2)
    started = time.monotonic()
    SlackDMSender("securitycoach_slack").send(tip)
    assert time.monotonic() - started >= 2  # waited as long as Slack asked
    sinks = sb.sinks()
    assert [(c["method"], c["error"]) for c in sinks["slack_calls"]] == [
        ("users.lookupByEmail", "ratelimited"), ("users.lookupByEmail", None), ("conversations.open", None),
        ("chat.postMessage", None)]
    assert [(m["email"], m["idempotency_key"]) for m in sinks["slack"]] == [(email, "key-429")]
    # still limited after the retries: a transient error, so the outbox tries the tip again later
    sb.set_faults(slack_ratelimited_next=10, slack_retry_after=0)
    with pytest.raises(DeliveryError) as err:
        SlackDMSender("securitycoach_slack", rate_limit_retries=2).send(Tip("c", email, "s", "again", "key-2"))
    assert not err.value.permanent and "still rate limited (HTTP 429)" in str(err.value)
    assert len(sb.sinks()["slack"]) == 1


def _operator(tmp_path, monkeypatch, engine_path, tenant_id, **kwargs):
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE", json.dumps({"conn_type": "sqlite",
                                                                            "host": str(engine_path)}))
    return DeliverTipsOperator(task_id="deliver_tips", tenant_id=tenant_id,
                               campaigns_path=str(_campaign_file(tmp_path, **kwargs)))


def _words(engine, tenant) -> set[str]:
    """Every name, email, file name and summary of the run's data, as the digest must not show them."""
    with engine.connect() as conn:
        found = set()
        for u in conn.execute(sa.select(t.ksat_user).where(t.ksat_user.c.tenant_id == tenant)):
            found |= {u.email, u.first_name, u.last_name, u.email.split("@")[0]}
        for table, columns in ((t.code42_session, ("actor_name", "exfiltration_summary", "context_summary")),
                               (t.detection, ("summary", "actor_id", "subject_id")),
                               (t.delivery, ("recipient", "body"))):
            for row in conn.execute(sa.select(*[table.c[c] for c in columns])):
                found |= {v for v in row if v}
        for summary in conn.execute(sa.select(t.code42_session.c.exfiltration_summary)).scalars():
            # file names inside the summaries ("... report.xlsx ...")
            found |= set(re.findall(r"[\w.-]+\.[A-Za-z0-9]{2,5}\b", summary or ""))
    return {w for w in found if len(w) >= 3}


def test_the_deliver_task_records_no_chat_account_succeeds_and_its_digest_names_nobody(
        sqlite_warehouse, live_sandbox, monkeypatch, tmp_path):
    sb, engine = live_sandbox, sqlite_warehouse
    tenant = _load(engine, sb, monkeypatch)
    operator = _operator(tmp_path, monkeypatch, engine.url.database, sb.tenant_id)
    result = operator.execute({"run_id": "manual__test"})  # no exception: the run succeeds
    outcomes = result["sent"]["Slack coaching"]
    assert outcomes.get("sent", 0) > 0 and outcomes.get("no_chat_account", 0) > 0, result
    without = {e.lower() for e in sb.slack_workspace()["without_account"]}
    no_chat = _rows(engine, status="no_chat_account")
    assert no_chat and all(r.recipient.lower() in without and "users_not_found" in r.reason for r in no_chat)
    assert all(r.recipient.lower() not in without for r in _rows(engine, status="sent"))
    assert {m["email"].lower() for m in sb.sinks()["slack"]}.isdisjoint(without)
    # one team digest: counts per campaign and rule, where the report is, and no person's data
    assert result["team_digest"] == "sent"
    posts = sb.sinks()["webhook"]
    assert len(posts) == 1
    text = posts[0]["payload"]["text"]
    sent = outcomes["sent"]
    assert f"- campaign Slack coaching: {sent} sent, {outcomes['no_chat_account']} no chat account" in text
    assert "- rule Removable Media Exfiltration Detected by Code42: " in text and "Report: " in text
    leaked = sorted(w for w in _words(engine, tenant) if re.search(rf"(?<![\w.@-]){re.escape(w)}(?![\w@-])", text))
    assert leaked == [], text
    # a second run has nothing due: no tip, no digest
    again = operator.execute({"run_id": "manual__again"})
    assert again["team_digest"] == "skipped: no tip was due" and len(sb.sinks()["webhook"]) == 1


def test_invalid_auth_fails_in_one_line_naming_the_connection_without_the_token(
        sqlite_warehouse, live_sandbox, monkeypatch, tmp_path, caplog, capfd):
    sb, engine = live_sandbox, sqlite_warehouse
    _load(engine, sb, monkeypatch)
    token = "xoxb-not-the-sandbox-token-7f3a9c"
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_SLACK", json.dumps(
        {"conn_type": "slack", "password": token, "extra": {"base_url": sb.slack_base_url}}))
    caplog.set_level(logging.DEBUG)
    operator = _operator(tmp_path, monkeypatch, engine.url.database, sb.tenant_id, email=True)
    with pytest.raises(AirflowFailException) as err:
        operator.execute({"run_id": "manual__bad_token"})
    message = str(err.value)
    assert message == ("Slack connection 'securitycoach_slack' refused the bot token (invalid_auth): set a valid "
                       "bot token with scopes users:read.email, im:write, chat:write as the connection's password")
    # the Slack tips wait for a fixed token, untouched; the email campaign was sent all the same
    slack_rows = _rows(engine, campaign="Slack coaching")
    pending = [r for r in slack_rows if r.status == "pending"]
    assert pending and all(r.attempts == 0 for r in pending)
    assert {r.status for r in slack_rows} <= {"pending", "stale", "withdrawn", "covered_by_instructor"}
    assert _rows(engine, campaign="Departing", status="sent") and sb.sinks()["mail"]
    assert sb.sinks()["slack"] == []
    digest = [w["payload"]["text"] for w in sb.sinks()["webhook"]]  # the email tips went: the team hears of it
    assert len(digest) == 1 and "- campaign Slack coaching: 1 channel refused" in digest[0]
    out, errout = capfd.readouterr()
    everything = message + caplog.text + out + errout + digest[0] + " ".join(r.reason or "" for r in slack_rows)
    assert "invalid_auth" in caplog.text and token not in everything

"""Triage-aware coaching against the real sandbox over HTTP: Code42 triage withdraws tips, Instructor
lessons cover them, watchlists leave people under investigation alone (403: fail safe), and a late
triage state reaches the warehouse through the deep re-read.

The sandbox clock is pinned (2026-11-01T00:00Z); which sessions an analyst closes, and when, is read
from the sandbox's own session plans (``incydr_sandbox.tenant``), never from our code.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml
from pipeline import default_catalog, load_reference, run_detection, sync_interval, use_sandbox

from code42_hook import Code42Hook
from operators.channels import senders_for
from securitycoach.coaching.campaigns import load_campaigns
from securitycoach.coaching.outbox import plan_deliveries, send_due, tip_templates
from securitycoach.coaching.triage import resolve_watchlists
from securitycoach.warehouse import schema as t

SLACK = {"type": "slack_dm", "conn_id": "securitycoach_slack"}
SESSION_RULES = ["removable-media", "personal-cloud-upload", "public-cloud-share", "source-code-exfiltration",
                 "departing-employee-exfiltration", "high-risk-session", "critical-risk-session"]
UNLIMITED = {"minutes_between": 0, "daily_cap": 100}
DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def _campaign(name="Chat", **extra):
    return {"name": name, "rules": SESSION_RULES, "channel": SLACK, "template": "securitytip_chat.txt.j2",
            "delivery_limit": UNLIMITED, **extra}


class World:
    """The sandbox's last three days loaded, mapped and detected; campaigns written on demand."""

    def __init__(self, engine, sandbox, monkeypatch, tmp_path):
        sandbox.reset()
        sandbox.clear_sinks()
        self.engine, self.sandbox, self.tmp_path, self.monkeypatch = engine, sandbox, tmp_path, monkeypatch
        self.code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
        self.end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
        self.load()
        self.tenant = load_reference(engine, self.code42, knowbe4)
        run_detection(engine, self.tenant, now=sandbox.anchor)
        self.templates = tip_templates()

    def load(self):
        sync_interval(self.engine, self.code42, self.end, hours=72, lookback=timedelta(0))

    def campaigns(self, *campaigns, **top):
        path = self.tmp_path / "campaigns.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "campaigns": list(campaigns), **top}, sort_keys=False))
        return load_campaigns(path, default_catalog(), self.templates)

    def plan(self, campaigns, **kwargs):
        return plan_deliveries(self.engine, self.tenant, campaigns, self.templates, now=self.sandbox.anchor, **kwargs)

    def send(self, campaigns, **kwargs):
        at = self.sandbox.anchor
        return send_due(self.engine, self.tenant, campaigns, senders_for(campaigns), clock=lambda: at, **kwargs)

    def rows(self, **where):
        with self.engine.connect() as conn:
            query = sa.select(t.delivery)
            for name, value in where.items():
                query = query.where(t.delivery.c[name] == value)
            return conn.execute(query).all()


def _sandbox_tenant(sandbox):
    from incydr_sandbox.config import TenantConfig
    from incydr_sandbox.tenant import Tenant

    return Tenant(TenantConfig(seed=sandbox.health["seed"], anchor_ms=sandbox.anchor_ms))


def _lessons(engine) -> dict[str, set[str]]:
    """session id -> the Instructor lessonIds its triggered alerts carry (sessions with one or more)."""
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for r in conn.execute(sa.select(t.code42_session_alert)):
            if r.lesson_id:
                out.setdefault(r.session_id, set()).add(r.lesson_id)
    return out


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_session_closed_as_false_positive_between_detection_and_send_is_withdrawn_never_sent(
        kind, request, sandbox, monkeypatch, tmp_path):
    engine = request.getfixturevalue("sqlite_warehouse" if kind == "sqlite" else "pg_warehouse")
    w = World(engine, sandbox, monkeypatch, tmp_path)
    campaigns = w.campaigns(_campaign(skip_instructor_covered=False))
    w.plan(campaigns)
    pending = {r.subject_id: r for r in w.rows(status="pending") if r.subject_type == "session"}
    assert pending, "fresh detections are planned as pending"
    # sessions the analysts close as false positive after the anchor (the plan: still OPEN now)
    plans = _sandbox_tenant(sandbox)
    by_id = {plans.plan(i).session_id: plans.plan(i)
             for i in plans.index_range(sandbox.anchor_ms - 3 * DAY_MS, sandbox.anchor_ms, sandbox.anchor_ms)}
    closing = {sid: next(ch.at for ch in by_id[sid].changes if ch.state.startswith("CLOSED"))
               for sid in pending if by_id[sid].changes and by_id[sid].changes[0].state == "CLOSED_FP"
               and by_id[sid].changes[0].at > sandbox.anchor_ms}
    assert closing, "some pending tips' sessions are closed as false positive after they were planned"
    try:
        sandbox.advance(minutes=(max(closing.values()) - sandbox.anchor_ms) / 60_000 + 1)
        w.load()  # the next run's load: the warehouse now holds CLOSED_FP for them
    finally:
        sandbox.reset()
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.state)
                                   .where(t.code42_session.c.session_id.in_(list(closing)))).all())
    assert {states[sid] for sid in closing} == {"CLOSED_FP"}
    result = w.send(campaigns)
    withdrawn = {r.subject_id: r for r in w.rows(status="withdrawn")}
    assert set(closing) <= set(withdrawn)
    assert all("CLOSED_FP" in withdrawn[sid].reason and withdrawn[sid].sent_at is None for sid in closing)
    assert result.by_status["Chat"].get("sent", 0) > 0, "the rest is sent"
    keys = {pending[sid].idempotency_key for sid in closing}
    sent_keys = {m["idempotency_key"] for m in sandbox.sinks()["slack"]}
    assert sent_keys and not keys & sent_keys
    # a rerun (plan and send again) never sends a withdrawn tip
    w.plan(campaigns)
    again = w.send(campaigns)
    assert again.by_status.get("Chat", {}).get("sent", 0) == 0
    assert not keys & {m["idempotency_key"] for m in sandbox.sinks()["slack"]}
    assert set(closing) <= {r.subject_id for r in w.rows(status="withdrawn")}


def test_cleared_states_are_a_campaign_file_setting(sqlite_warehouse, sandbox, monkeypatch, tmp_path):
    """Fresh tips whose sessions are already closed as FP / benign when planned are withdrawn (older
    ones stay stale: they were never going to be sent); with an empty set nothing is withdrawn."""
    w = World(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    with sqlite_warehouse.connect() as conn:
        states = dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.state)).all())
    w.plan(w.campaigns(_campaign(skip_instructor_covered=False)))
    withdrawn = w.rows(status="withdrawn")
    assert withdrawn and {states[r.subject_id] for r in withdrawn} <= {"CLOSED_FP", "CLOSED_TP_BENIGN"}
    other = [r for r in w.rows(status="pending") if r.subject_type == "session"]  # stale stays stale
    assert not {states[r.subject_id] for r in other} & {"CLOSED_FP", "CLOSED_TP_BENIGN"}
    with sqlite_warehouse.begin() as conn:
        conn.execute(t.delivery.delete())
    w.plan(w.campaigns(_campaign(skip_instructor_covered=False), triage={"cleared_session_states": []}))
    assert w.rows(status="withdrawn") == []


def test_instructor_covered_subjects_are_not_tipped(sqlite_warehouse, sandbox, monkeypatch, tmp_path):
    w = World(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    lessons = _lessons(sqlite_warehouse)
    # only rules whose education Instructor messages itself carry a lesson: some sessions, not all
    with sqlite_warehouse.connect() as conn:
        rules = {r.rule_id: r.raw["education"] for r in conn.execute(sa.select(t.code42_alert_rule))}
        links = conn.execute(sa.select(t.code42_session_alert)).all()
    assert {bool(link.lesson_id) for link in links} == {True, False}
    assert all(bool(link.lesson_id) == (rules[link.rule_id]["messagingMethod"] in ("Email", "Slack", "Teams"))
               for link in links)
    campaigns = w.campaigns(_campaign())
    w.plan(campaigns)
    w.send(campaigns)
    covered = w.rows(status="covered_by_instructor")
    assert covered and {r.subject_id for r in covered} <= set(lessons)
    assert all(any(lesson in r.reason for lesson in lessons[r.subject_id]) for r in covered)
    # nothing planned for a covered session went out; tips for uncovered ones did
    sent = w.rows(status="sent")
    assert sent and not {r.subject_id for r in sent} & set(lessons)
    covered_keys = {r.idempotency_key for r in covered}
    assert not covered_keys & {m["idempotency_key"] for m in sandbox.sinks()["slack"]}
    # the switch: off, the same subjects are planned like any other
    with sqlite_warehouse.begin() as conn:
        conn.execute(t.delivery.delete())
    w.plan(w.campaigns(_campaign(skip_instructor_covered=False)))
    assert w.rows(status="covered_by_instructor") == []
    assert {r.subject_id for r in covered} <= {r.subject_id for r in w.rows() if r.status in ("pending", "stale")}


def test_watchlist_members_are_not_coached(sqlite_warehouse, sandbox, monkeypatch, tmp_path):
    w = World(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    hook = Code42Hook()
    lists = {wl.list_type: wl for wl in hook.iter_watchlists()}
    assert set(lists) == {"DEPARTINGEMPLOYEE", "HIGHIMPACTEMPLOYEE", "CUSTOM"}
    departing = {m.actor_id for m in hook.iter_watchlist_members(lists["DEPARTINGEMPLOYEE"].watchlist_id)}
    truth = {a.actor_id for a in _sandbox_tenant(sandbox).actors if "departing" in a.watchlists(sandbox.anchor_ms)}
    assert departing == truth and departing
    campaigns = w.campaigns(_campaign(suppress_watchlists=["DEPARTINGEMPLOYEE"], skip_instructor_covered=False))
    gates = resolve_watchlists(hook, campaigns.campaigns, "code42_default")
    assert gates["Chat"].error is None and set(gates["Chat"].actor_ids) == departing
    w.plan(campaigns, watchlists=gates)
    w.send(campaigns, watchlists=gates)
    held = w.rows(status="on_watchlist")
    assert held and {r.actor_id for r in held} <= departing
    assert all("DEPARTINGEMPLOYEE" in r.reason and "under investigation" in r.reason for r in held)
    sent = w.rows(status="sent")
    assert sent and not {r.actor_id for r in sent} & departing
    assert not {r.idempotency_key for r in held} & {m["idempotency_key"] for m in sandbox.sinks()["slack"]}


@pytest.fixture(scope="module")
def sandbox_now(start_sandbox):
    """A sandbox anchored at the wall clock: the operator plans with the real "now", so its tips are fresh."""
    return start_sandbox(anchor=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:00Z"))


def test_without_read_on_watchlists_the_campaign_sends_nothing_and_says_why(
        sqlite_warehouse, sandbox_now, monkeypatch, tmp_path, caplog):
    from operators.coaching import DeliverTipsOperator
    from securitycoach.html_report import gather, render_report, resolve_period

    sandbox = sandbox_now
    w = World(sqlite_warehouse, sandbox, monkeypatch, tmp_path)
    conn = json.loads(sandbox.airflow_connections()["AIRFLOW_CONN_CODE42_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_DEFAULT", json.dumps({**conn, "login": "sandbox-no-watchlists"}))
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE", json.dumps(
        {"conn_type": "sqlite", "host": sqlite_warehouse.url.database}))
    path = tmp_path / "op-campaigns.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "campaigns": [
        _campaign("Watched", suppress_watchlists=["DEPARTINGEMPLOYEE"], skip_instructor_covered=False),
        {**_campaign("Mail", skip_instructor_covered=False),
         "channel": {"type": "email", "conn_id": "securitycoach_smtp", "from": "coach@example.com"},
         "template": "securitytip_email.html.j2"}]}, sort_keys=False))
    caplog.set_level(logging.INFO)
    op = DeliverTipsOperator(task_id="deliver_tips", tenant_id=sandbox.tenant_id, campaigns_path=str(path))
    result = op.execute({"run_id": "manual__triage-test"})  # the run succeeds
    assert "Read on Watchlists" in result["blocked"]["Watched"] and "403" in result["blocked"]["Watched"]
    assert sum(n for s, n in result["sent"]["Mail"].items() if s == "sent") > 0
    assert "Watched" not in result["sent"]
    assert sandbox.sinks()["slack"] == []  # the Watched campaign (Slack) sent nothing
    watched = w.rows(campaign="Watched")
    assert watched and {r.status for r in watched} <= {"pending", "withdrawn", "stale"}
    assert "pending" in {r.status for r in watched}
    assert any("Read on Watchlists" in r.getMessage() for r in caplog.records)
    with sqlite_warehouse.connect() as c:
        blocks = c.execute(sa.select(t.coaching_block)).all()
    assert [(b.campaign, "Read on Watchlists" in b.reason) for b in blocks] == [("Watched", True)]
    html = render_report(gather(sqlite_warehouse, w.tenant, resolve_period(sqlite_warehouse, w.tenant)))
    assert "campaign held: Watched" in html and "Read on Watchlists" in html
    # no token, secret or person's data in the log
    text = "\n".join(r.getMessage() for r in caplog.records)
    with sqlite_warehouse.connect() as c:
        people = {u.email for u in c.execute(sa.select(t.ksat_user))}
        people |= {a.name for a in c.execute(sa.select(t.code42_actor)) if a.name}
    for secret in (sandbox.client_secret, sandbox.SLACK_BOT_TOKEN, sandbox.WEBHOOK_SECRET, sandbox.ksat_key):
        assert secret not in text
    assert not [p for p in people if p in text]
    # with the permission back, the next run sends the held tips and the panel is clear
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_DEFAULT", json.dumps(conn))
    later = op.execute({"run_id": "manual__triage-test-2"})
    assert later["blocked"] == {} and later["sent"]["Watched"].get("sent", 0) > 0
    with sqlite_warehouse.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(t.coaching_block)).scalar() == 0


def test_a_triage_state_set_three_days_after_a_session_began_reaches_the_warehouse_by_the_deep_reread(
        airflow_db, sandbox, monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    from conftest import ROOT
    from securitycoach.warehouse import create_warehouse_engine

    sandbox.reset()
    for name, value in sandbox.airflow_connections().items():
        monkeypatch.setenv(name, value)
    where = str(tmp_path / "wh.db")
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": where}))
    engine = create_warehouse_engine(f"sqlite:///{where}")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    plans = _sandbox_tenant(sandbox)
    anchor = sandbox.anchor_ms
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    # sessions the hourly run reads now (begun within its 24 h look-back), triaged >= 3 days after they began
    late = {}
    for i in plans.index_range(anchor - 20 * HOUR_MS, int(last.timestamp() * 1000), anchor):
        p = plans.plan(i)
        if not p.late and p.changes and p.changes[0].at - p.begin >= 3 * DAY_MS and p.changes[0].at > anchor:
            late[p.session_id] = p
    assert late, "the sandbox has sessions an analyst triages three days or more after they began"
    later = max(p.changes[0].at for p in late.values()) + HOUR_MS
    try:
        assert bag.get_dag("code42_sync").test(logical_date=last).state == "success"

        def states():
            with engine.connect() as conn:
                return dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.state)
                                         .where(t.code42_session.c.session_id.in_(list(late)))).all())

        assert set(states()) == set(late) and set(states().values()) == {"OPEN"}
        sandbox.advance(minutes=(later - anchor) / 60_000)
        then = datetime.fromtimestamp(later / 1000, tz=UTC).replace(minute=0, second=0, microsecond=0)
        assert bag.get_dag("code42_sync").test(logical_date=then).state == "success"
        assert set(states().values()) == {"OPEN"}, "the hourly look-back (24 h) does not see them"
        assert bag.get_dag("code42_reference").test(logical_date=then).state == "success"
        found = states()
    finally:
        sandbox.reset()
    assert found == {sid: p.state_at(later) for sid, p in late.items()}
    assert all(state != "OPEN" for state in found.values())
    with engine.connect() as conn:  # and the person's timeline shows the triage change
        timeline = conn.execute(sa.text(
            "SELECT subject_id, status FROM rpt_user_timeline WHERE kind = 'triage_change'")).all()
    mapped = {sid for sid, _ in timeline}
    assert {(sid, found[sid]) for sid in mapped & set(late)} <= set(timeline)


def test_watchlists_are_paged_from_page_one(clean_sandbox, monkeypatch):
    use_sandbox(monkeypatch, clean_sandbox)
    whole, paged = Code42Hook(), Code42Hook()
    paged.WATCHLISTS_PAGE_SIZE = 1  # one item a page: every page is read, none twice
    lists = [w.watchlist_id for w in whole.iter_watchlists()]
    assert [w.watchlist_id for w in paged.iter_watchlists()] == lists and len(lists) == 3
    for wl in lists:
        members = [m.actor_id for m in whole.iter_watchlist_members(wl)]
        assert [m.actor_id for m in paged.iter_watchlist_members(wl)] == members
    assert max(len(list(whole.iter_watchlist_members(wl))) for wl in lists) > 1


def test_upgrade_from_version_4_widens_the_delivery_status(pg_schema):
    """Version 5 on a PostgreSQL warehouse of version 4 (status VARCHAR(16), views over delivery)."""
    from conftest import PG_ADMIN_URL, legacy_warehouse
    from securitycoach.warehouse import SCHEMA_VERSION, create_warehouse_engine, migrate
    from securitycoach.warehouse.migrate import _run_script, view_files

    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)
    legacy_warehouse(engine, 4)  # as the code before Alembic left version 4, with its views over delivery
    with engine.begin() as conn:
        for path in view_files("postgresql"):
            if "rpt_user_timeline" not in path.name:
                _run_script(conn, path)
    assert migrate(engine) == 4
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("delivery")}
    assert columns["status"]["type"].length == 32
    assert "coaching_block" in sa.inspect(engine).get_table_names()
    assert "rpt_user_timeline" in sa.inspect(engine).get_view_names()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(t.schema_version.c.version))).scalar() == SCHEMA_VERSION
    engine.dispose()

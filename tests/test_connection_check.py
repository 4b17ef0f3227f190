"""The sync run's first task checks the connections its tenant and campaigns need (real dag.test()
runs against the sandbox): a missing one fails the run before anything is extracted, naming the
campaign or tenant entry and the connection; a backfill of old history, whose tips are all stale,
needs no channel connection at all and completes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from conftest import ROOT
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

CHANNELS = ("AIRFLOW_CONN_SECURITYCOACH_SLACK", "AIRFLOW_CONN_SECURITYCOACH_SMTP",
            "AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK")


@pytest.fixture
def dags(airflow_db, sandbox, monkeypatch, tmp_path):
    """The shipped DAGs with the sandbox's connections, a SQLite warehouse and the ops webhook (the
    failure summary) on the sandbox's sink; returns (dagbag, warehouse engine)."""
    from airflow.dag_processing.dagbag import DagBag

    sandbox.reset()
    sandbox.clear_sinks()
    connections = sandbox.airflow_connections(retry_backoff=0.05)
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_OPS_WEBHOOK", connections["AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK"])
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}))
    tenants = tmp_path / "tenants.yaml"  # the shipped default tenant, without retries
    tenants.write_text((ROOT / "include" / "config" / "tenants.yaml").read_text().replace(
        "    enabled: true", "    enabled: true\n    retries: 0"))
    monkeypatch.setenv("SECURITYCOACH_TENANTS", str(tenants))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    yield bag, create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    sandbox.clear_sinks()


def _summaries(sandbox) -> list[str]:
    return [w.get("payload", w).get("text", "") for w in sandbox.sinks()["webhook"]]


@pytest.mark.parametrize(("removed", "names"), [
    ("AIRFLOW_CONN_SECURITYCOACH_SLACK",
     ("connection 'securitycoach_slack' (type slack) needed by campaign 'Data handling coaching' (slack_dm channel) "
      "is not defined")),
    ("AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK",
     "connection 'securitycoach_chat_webhook' (type http) needed by team_digest (webhook channel) is not defined"),
    ("AIRFLOW_CONN_CODE42_DEFAULT",
     "connection 'code42_default' (type code42) needed by tenant 'default' (code42_conn_id) is not defined"),
])
def test_a_missing_connection_fails_the_first_task_naming_who_needs_it(dags, sandbox, monkeypatch, removed, names):
    bag, _ = dags
    monkeypatch.delenv(removed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # a current run: tips may be due
    run = bag.get_dag("code42_sync").test(logical_date=now)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states.pop("check_connections") == "failed"
    assert set(states.values()) == {"upstream_failed"}  # nothing was extracted, loaded or sent
    assert sandbox.stats()["data_requests"] == 0  # not one Code42 page was read
    summary = next(p for p in _summaries(sandbox) if "code42_sync.check_connections" in p)
    assert "(try 1 of 1)" in summary  # fails at once: a retry cannot define a connection
    assert f"AirflowFailException: {names}: nothing was extracted." in summary


def test_a_backfill_of_old_history_needs_no_channel_connection(dags, sandbox, monkeypatch):
    """The sandbox's data ends 2026-11-01: every tip of these runs is older than freshness_hours."""
    bag, engine = dags
    for name in CHANNELS:
        monkeypatch.delenv(name)
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    assert bag.get_dag("code42_reference").test(logical_date=last).state == "success"
    for end in (last - timedelta(hours=1), last):
        run = bag.get_dag("code42_sync").test(logical_date=end)
        assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    checked = run.get_task_instance("check_connections").xcom_pull(task_ids="check_connections")
    assert checked["tips_may_be_due"] is False
    assert [line.split(" needed by ")[0] for line in checked["absent_ok"]] == [
        "connection 'securitycoach_slack' (type slack)", "connection 'securitycoach_smtp' (type smtp)",
        "connection 'securitycoach_chat_webhook' (type http)"]
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(t.delivery.c.status, sa.func.count()).group_by(t.delivery.c.status)).all())
    assert statuses.get("stale", 0) > 0 and set(statuses) <= {"stale", "test"}
    assert sandbox.sinks()["webhook"] == [] and sandbox.sinks()["mail"] == [] and sandbox.sinks()["slack"] == []


def test_the_needed_connections_come_from_the_tenant_entry_and_the_enabled_sending_campaigns(tmp_path):
    import yaml

    from securitycoach.coaching.campaigns import load_campaigns
    from securitycoach.coaching.outbox import tip_templates
    from securitycoach.connections import check_connections, needed_connections, tips_may_be_due
    from securitycoach.detection.catalog import load_catalog
    from securitycoach.paths import campaigns_path, detection_rules_path
    from securitycoach.tenants import load_tenants

    spec = yaml.safe_load(campaigns_path().read_text())
    spec["campaigns"][1]["enabled"] = False  # the SMTP campaign off; the test-mode one sends nothing
    spec["ksat_events"] = {"enabled": False}
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump(spec))
    campaigns = load_campaigns(path, load_catalog(detection_rules_path()), tip_templates())
    tenant = load_tenants().enabled[0]
    needs = needed_connections(tenant, campaigns)
    assert [(n.conn_id, n.need) for n in needs] == [
        ("code42_default", "required"), ("knowbe4_default", "required"), ("securitycoach_slack", "to_send"),
        ("securitycoach_chat_webhook", "to_send")]
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert tips_may_be_due(now - timedelta(hours=24), now, campaigns)  # exactly freshness_hours: still fresh
    assert not tips_may_be_due(now - timedelta(hours=24, seconds=1), now, campaigns)
    defined = {"code42_default", "knowbe4_default"}.__contains__
    assert [n.conn_id for n in check_connections(needs, defined, sending=True).missing] == [
        "securitycoach_slack", "securitycoach_chat_webhook"]
    old = check_connections(needs, defined, sending=False)
    assert old.missing == [] and len(old.absent_ok) == 2
    assert [n.conn_id for n in check_connections(needs, {"knowbe4_default"}.__contains__, sending=False).missing] == [
        "code42_default"]

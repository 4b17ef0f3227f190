"""Several tenants: the tenants file (validated, errors naming file, entry and field), one sync and
reference DAG per tenant with its own pool, two tenants against the sandbox where one's connection
is broken (its run fails, posts a failure summary, writes nothing; the other's succeeds), and the
common-sql data checks failing on a null and a duplicated key and passing on clean data."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
import yaml

from conftest import PG_ADMIN_URL, ROOT
from securitycoach.tenancy import known_tenants
from securitycoach.tenants import TenantFileError, load_tenants
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

SANDBOX_TENANT = "41a617d1-b5bb-4fb2-a12e-1c7d362780bc"  # the sandbox's tenant at seed 42 (tests' sandbox)
ACME_TENANT = "0b6f3c2e-9d1a-4e57-8a2b-5c7d9e1f3a4b"
DEFAULT = {"name": "default", "code42_tenant_uid": SANDBOX_TENANT, "code42_conn_id": "code42_default",
           "knowbe4_conn_id": "knowbe4_default"}


def _write(tmp_path, tenants, name="tenants.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "tenants": tenants}))
    return path


def test_the_shipped_tenants_file_is_the_default_tenant_only(sandbox):
    tenants = load_tenants(ROOT / "include" / "config" / "tenants.yaml")
    assert [(x.name, x.dag_ids, x.pool, x.warehouse_asset_uri) for x in tenants.enabled] == [
        ("default", ("code42_sync", "code42_reference", "securitycoach_report"), "code42_default",
         "securitycoach://warehouse/default")]
    # the shipped entry is the sandbox's tenant: what its tokens say (tenantUid)
    assert tenants.enabled[0].code42_tenant_uid == SANDBOX_TENANT == sandbox.tenant_id


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "Acme Corp"}, r"tenant 2 \('Acme Corp'\): name: String should match pattern"),
    ({"schedule": "hourly"}, r"tenant 2 \('acme'\): schedule: Value error, 'hourly' is not a cron expression"),
    ({"pages_in_flight": 9, "pool_slots": 4}, (r"tenant 2 \('acme'\): \(tenant\): .*pages_in_flight \(9\) is more "
                                              r"than pool_slots \(4\)")),
    ({"lookback_hours": -1}, r"tenant 2 \('acme'\): lookback_hours: Input should be greater than or equal to 0"),
    ({"pool": "x"}, r"tenant 2 \('acme'\): pool: Extra inputs are not permitted"),
    ({"code42_conn_id": "code42_default"}, (r"tenants\.yaml: \(file\): .*tenant 2 \('acme'\): code42_conn_id "
                                           r"'code42_default' is already used by tenant 1")),
    ({"code42_tenant_uid": None}, r"tenant 2 \('acme'\): code42_tenant_uid: Field required"),
    ({"code42_tenant_uid": "acme-tenant"}, (r"tenant 2 \('acme'\): code42_tenant_uid: Value error, 'acme-tenant' "
                                            r"is not a UUID")),
    ({"code42_tenant_uid": "{" + ACME_TENANT + "}"}, r"tenant 2 \('acme'\): code42_tenant_uid: .*8-4-4-4-12 form"),
    ({"code42_tenant_uid": SANDBOX_TENANT}, (r"tenants\.yaml: \(file\): .*tenant 2 \('acme'\): code42_tenant_uid "
                                            rf"'{SANDBOX_TENANT}' is already used by tenant 1")),
])
def test_a_bad_tenants_file_names_the_file_the_entry_and_the_field(tmp_path, entry, message):
    acme = {"name": "acme", "code42_tenant_uid": ACME_TENANT, "code42_conn_id": "code42_acme",
            "knowbe4_conn_id": "knowbe4_acme", **entry}
    acme = {k: v for k, v in acme.items() if v is not None}
    path = _write(tmp_path, [DEFAULT, acme])
    with pytest.raises(TenantFileError, match=message) as err:
        load_tenants(path)
    assert str(err.value).startswith(str(path))


def test_a_bad_tenants_file_is_an_import_error_of_the_dag_file(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SECURITYCOACH_TENANTS", str(_write(tmp_path, [{**DEFAULT, "lookback_hours": "a day"}])))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    errors = {k.rsplit("/", 1)[-1]: v for k, v in bag.import_errors.items()}
    assert set(errors) == {"code42_sync.py", "code42_reference.py", "securitycoach_report.py"}
    assert "tenant 1 ('default'): lookback_hours: Input should be a valid integer" in errors["code42_sync.py"]


@pytest.fixture
def two_tenants(airflow_db, sandbox, start_sandbox, tmp_path, monkeypatch, pg_schema):
    """``default`` on the shared sandbox; ``acme`` on a second sandbox (another tenant uid) whose
    connection carries a wrong client secret; the ops webhook on the first sandbox's sink."""
    from airflow.dag_processing.dagbag import DagBag

    sandbox.reset()
    sandbox.clear_sinks()
    other = start_sandbox(seed=7)
    for name, value in sandbox.airflow_connections(retry_backoff=0.05).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_ACME", json.dumps({
        "conn_type": "code42", "login": other.client_id, "password": "not-the-secret", "host": other.base_url,
        "extra": {"retry_backoff": 0.05, "max_retries": 1}}))
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_ACME", json.dumps(
        {"conn_type": "knowbe4", "password": other.ksat_key, "host": other.base_url}))
    hook_conn = json.loads(sandbox.airflow_connections()["AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK"])
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_OPS_WEBHOOK", json.dumps(hook_conn))
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test",
        "extra": {"search_path": pg_schema}}))
    acme = {"name": "acme", "code42_tenant_uid": other.tenant_id, "code42_conn_id": "code42_acme",
            "knowbe4_conn_id": "knowbe4_acme", "schedule": "15 * * * *", "lookback_hours": 2, "pool_slots": 2, "pages_in_flight": 2, "retries": 0}
    monkeypatch.setenv("SECURITYCOACH_TENANTS", str(_write(tmp_path, [{**DEFAULT, "retries": 0}, acme])))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)
    yield bag, engine, other
    sandbox.clear_sinks()


def test_each_tenant_gets_its_own_dags_pool_and_connections(two_tenants):
    bag, _, _ = two_tenants
    assert {"code42_sync", "code42_sync_acme", "code42_reference", "code42_reference_acme"} <= set(bag.dag_ids)
    acme = bag.get_dag("code42_sync_acme")
    assert acme.params["lookback_hours"] == 2
    assert acme.timetable.expression == "15 * * * *" and acme.max_active_runs == 4
    assert {(x.task_id, x.pool, x.pool_slots) for x in acme.tasks if x.task_id.startswith("extract_")} == {
        ("extract_sessions", "code42_acme", 2), ("extract_alerts", "code42_acme", 2)}
    for dag_id in ("code42_sync_acme", "code42_reference_acme"):  # every Code42 task uses acme's connection
        conns = {x.code42_conn_id for x in bag.get_dag(dag_id).tasks if hasattr(x, "code42_conn_id")}
        assert conns == {"code42_acme"}
    assert bag.get_dag("code42_reference_acme").get_task("refresh_ksat_directory").knowbe4_conn_id == "knowbe4_acme"
    assert {x.pool for x in bag.get_dag("code42_sync").tasks if x.task_id.startswith("extract_")} == {"code42_default"}
    # each tenant's loads update its own Asset, which its own report DAG runs on
    outlets = {(d, x.task_id): [a.uri for a in x.outlets] for d in ("code42_sync_acme", "code42_reference_acme")
               for x in bag.get_dag(d).tasks if x.outlets}
    assert outlets == {("code42_sync_acme", "load_warehouse"): ["securitycoach://warehouse/acme"],
                       ("code42_reference_acme", "load_reread"): ["securitycoach://warehouse/acme"]}
    report = bag.get_dag("securitycoach_report_acme")
    assert [a.uri for a in report.timetable.asset_condition.objects] == ["securitycoach://warehouse/acme"]
    assert report.get_task("write_reports").dag_ids == ["code42_sync_acme", "code42_reference_acme"]


def _new_asset_events(since_id: int) -> list[tuple[str, str, dict]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetModel.uri, AssetEvent.source_dag_id, AssetEvent.extra).join(
            AssetEvent, AssetEvent.asset_id == AssetModel.id).filter(AssetEvent.id > since_id).order_by(AssetEvent.id)
        return [(uri, dag_id, extra) for uri, dag_id, extra in rows]


def _queued_runs() -> set[tuple[str, str]]:
    """(report DAG, asset) pairs the scheduler would start an asset-triggered run for."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return set(session.query(AssetDagRunQueue.target_dag_id, AssetModel.uri).join(
            AssetModel, AssetModel.id == AssetDagRunQueue.asset_id))


def test_each_tenants_load_updates_its_own_asset_and_queues_only_its_report(two_tenants, sandbox, monkeypatch,
                                                                            tmp_path):
    """Two working tenants: a load of acme emits one event, on acme's Asset, naming acme's Code42
    tenant uid; the metadata DB then queues acme's report DAG and no other (what the scheduler turns
    into runs); acme's report DAG writes acme's report only. Then the same for default."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    bag, _, other = two_tenants
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_ACME", json.dumps({
        "conn_type": "code42", "login": other.client_id, "password": other.client_secret, "host": other.base_url,
        "extra": {"retry_backoff": 0.05}}))
    reports = tmp_path / "data" / "reports"
    monkeypatch.setenv("SECURITYCOACH_DATA_DIR", str(tmp_path / "data"))
    assert {d: [a.uri for a in bag.get_dag(d).timetable.asset_condition.objects]
            for d in ("securitycoach_report", "securitycoach_report_acme")} == {
        "securitycoach_report": ["securitycoach://warehouse/default"],
        "securitycoach_report_acme": ["securitycoach://warehouse/acme"]}
    DagBundlesManager().sync_bundles_to_db()  # as dag.test() does, before the DAGs are written
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:  # unpaused, as in a deployment: only then are asset runs queued
        session.query(DagModel).update({DagModel.is_paused: False})
        session.query(AssetDagRunQueue).delete()
        since = session.query(sa.func.max(AssetEvent.id)).scalar() or 0
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)

    assert bag.get_dag("code42_sync_acme").test(logical_date=end).state == "success"
    events = _new_asset_events(since)
    assert [(uri, dag_id, extra["tenant_ids"]) for uri, dag_id, extra in events] == [
        ("securitycoach://warehouse/acme", "code42_sync_acme", [other.tenant_id])]
    assert events[0][2]["changed"]["sessions"] > 0
    assert _queued_runs() == {("securitycoach_report_acme", "securitycoach://warehouse/acme")}
    assert bag.get_dag("securitycoach_report_acme").test().state == "success"
    acme_report = [p.name for p in reports.glob("*.html")]
    assert len(acme_report) == 1 and acme_report[0].startswith(f"securitycoach_{other.tenant_id}_")

    with create_session() as session:
        session.query(AssetDagRunQueue).delete()
        since = session.query(sa.func.max(AssetEvent.id)).scalar()
    assert bag.get_dag("code42_sync").test(logical_date=end).state == "success"
    assert [(uri, extra["tenant_ids"]) for uri, _, extra in _new_asset_events(since)] == [
        ("securitycoach://warehouse/default", [sandbox.tenant_id])]
    assert _queued_runs() == {("securitycoach_report", "securitycoach://warehouse/default")}
    (reports / acme_report[0]).unlink()
    assert bag.get_dag("securitycoach_report").test().state == "success"
    default_report = [p.name for p in reports.glob("*.html")]
    assert len(default_report) == 1 and default_report[0].startswith(f"securitycoach_{sandbox.tenant_id}_")


def test_a_broken_tenant_fails_alone_and_posts_a_failure_summary(two_tenants, sandbox):
    bag, engine, other = two_tenants
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    broken = bag.get_dag("code42_sync_acme").test(logical_date=end)
    assert broken.state == "failed"
    good = bag.get_dag("code42_sync").test(logical_date=end)
    assert good.state == "success"
    states = {ti.task_id: ti.state for ti in good.get_task_instances()}
    assert {states[x] for x in ("check_session_keys", "check_alert_keys", "check_loaded_rows")} == {"success"}

    assert known_tenants(engine) == [sandbox.tenant_id]  # the good tenant's rows, none of acme's
    with engine.connect() as conn:
        sessions = conn.execute(sa.select(sa.func.count()).select_from(t.code42_session)
                                .where(t.code42_session.c.tenant_id == sandbox.tenant_id)).scalar_one()
        audit = conn.execute(sa.select(t.sync_audit.c.dag_id, t.sync_audit.c.tenant_id)).all()
    assert sessions > 0 and audit == [("code42_sync", sandbox.tenant_id)]
    assert other.tenant_id not in known_tenants(engine)

    posted = [w["payload"]["text"] if "payload" in w else w.get("text") for w in sandbox.sinks()["webhook"]]
    summaries = [p for p in posted if p and "failed" in p]
    assert summaries, sandbox.sinks()["webhook"]
    first = summaries[0]
    assert first.startswith("Task code42_sync_acme.extract_")
    assert "(try 1 of 1) for tenant acme (Code42 connection code42_acme)" in first
    # acme runs at :15, so the interval of a run requested at 23:00 is the last full one before it
    assert "data interval 2026-10-31T21:15:00+00:00 to 2026-10-31T22:15:00+00:00" in first
    assert first.endswith("Code42ApiError: Code42 POST /v1/oauth: HTTP 401: bad credentials: Code42 refused the "
                          "Client ID / Client Secret")
    assert "\n" not in first and "not-the-secret" not in first and "eyJ" not in first
    assert not any("code42_sync." in p for p in posted)  # the good tenant posted nothing


def test_a_tenant_uid_that_is_not_the_tokens_fails_the_run_before_any_extraction(
        airflow_db, sandbox, tmp_path, monkeypatch):
    """tenants.yaml says one tenant, the connection's token another: the extract tasks fail with
    the one-line TenantMismatch (entry, connection, both uids) before asking Code42 for any data,
    and nothing reaches the warehouse."""
    from airflow.dag_processing.dagbag import DagBag

    sandbox.reset()
    sandbox.clear_sinks()
    for name, value in sandbox.airflow_connections(retry_backoff=0.05).items():
        monkeypatch.setenv(name, value)
    hook_conn = json.loads(sandbox.airflow_connections()["AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK"])
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_OPS_WEBHOOK", json.dumps(hook_conn))
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}))
    monkeypatch.setenv("SECURITYCOACH_TENANTS", str(_write(
        tmp_path, [{**DEFAULT, "code42_tenant_uid": ACME_TENANT, "retries": 0}])))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    run = bag.get_dag("code42_sync").test(logical_date=end)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert (states["ensure_schema"], states["extract_sessions"], states["extract_alerts"]) == (
        "success", "failed", "failed")
    assert states["load_warehouse"] == "upstream_failed"
    assert sandbox.stats()["data_requests"] == 0  # a token, and no page of sessions or alerts
    posted = [w["payload"]["text"] if "payload" in w else w.get("text") for w in sandbox.sinks()["webhook"]]
    summaries = sorted(p for p in posted if p and "code42_sync.extract_" in p)
    assert len(summaries) == 2
    assert summaries[0].endswith(
        f"TenantMismatch: tenants.yaml entry 'default': code42_tenant_uid is {ACME_TENANT} but the token of "
        f"connection 'code42_default' is for tenant {sandbox.tenant_id}; fix the entry or the connection")
    assert all("\n" not in p for p in summaries)
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.staging_record)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.code42_session)).scalar_one() == 0
    engine.dispose()
    sandbox.clear_sinks()


def test_data_checks_fail_on_a_null_and_a_duplicated_key(two_tenants, sandbox):
    bag, engine, _ = two_tenants
    dag = bag.get_dag("code42_sync")
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    assert dag.test(logical_date=end).state == "success"  # clean data: every check passes
    tenant = sandbox.tenant_id
    with engine.begin() as conn:
        session_id = conn.execute(sa.select(sa.func.min(t.code42_session.c.session_id))).scalar_one()
        conn.execute(t.code42_session.update().where(t.code42_session.c.session_id == session_id)
                     .values(actor_id=None))
        conn.exec_driver_sql("ALTER TABLE code42_alert DROP CONSTRAINT code42_alert_pkey")
        conn.exec_driver_sql("INSERT INTO code42_alert SELECT * FROM code42_alert "
                             "WHERE alert_id = (SELECT MIN(alert_id) FROM code42_alert)")
    sandbox.clear_sinks()
    # the load would refuse the table without its key: keep its result, run everything else again
    run = dag.test(logical_date=end, mark_success_pattern="load_warehouse")
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert (states["check_session_keys"], states["check_alert_keys"], states["check_loaded_rows"]) == (
        "failed", "failed", "success")
    assert states["resolve_new_actors"] == "upstream_failed"  # bad data goes no further
    posted = [w.get("payload", w).get("text", "") for w in sandbox.sinks()["webhook"]]
    keys = next(p for p in posted if "code42_sync.check_session_keys" in p)
    assert "data check check_session_keys failed: code42_session.actor_id null_check = 1" in keys
    dupes = next(p for p in posted if "code42_sync.check_alert_keys" in p)
    assert "data check check_alert_keys failed: code42_alert.alert_id unique_check = 1" in dupes
    assert "for tenant default" in dupes
    with engine.connect() as conn:  # the checks read this tenant only
        assert conn.execute(sa.select(sa.func.count(sa.distinct(t.code42_alert.c.tenant_id)))).scalar_one() == 1
    assert tenant


def test_delete_integration_pauses_the_tenants_dags_and_removes_its_connections(two_tenants, sandbox, monkeypatch,
                                                                               capsys, pg_schema):
    """Inside dag.test() the metadata DB is reachable: the delete DAG pauses acme's DAGs and deletes
    its connections there, and audits each step; the CLI prints what it removed."""
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    from securitycoach import cli

    bag, engine, other = two_tenants
    monkeypatch.delenv("AIRFLOW_CONN_CODE42_ACME")  # acme's connections live in the metadata DB, working
    monkeypatch.delenv("AIRFLOW_CONN_KNOWBE4_ACME")
    with create_session() as session:
        for conn_id in ("code42_acme", "knowbe4_acme"):
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id="code42_acme", conn_type="code42", host=other.base_url, login=other.client_id,
                               password=other.client_secret))
        session.add(Connection(conn_id="knowbe4_acme", conn_type="knowbe4", host=other.base_url,
                               password=other.ksat_key))
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    assert bag.get_dag("code42_sync_acme").test(logical_date=end).state == "success"
    assert bag.get_dag("code42_sync").test(logical_date=end).state == "success"
    assert known_tenants(engine) == sorted([sandbox.tenant_id, other.tenant_id])
    with create_session() as session:  # DAGs are created paused: say they run, as a deployment would
        session.query(DagModel).update({DagModel.is_paused: False})

    delete = bag.get_dag("securitycoach_delete_integration")
    run = delete.test(run_conf={"tenant_id": other.tenant_id, "confirm": other.tenant_id})
    assert run.state == "success"
    assert known_tenants(engine) == [sandbox.tenant_id]
    with create_session() as session:
        paused = {d.dag_id: d.is_paused for d in session.query(DagModel).filter(DagModel.dag_id.like("code42_%"))}
        left = {c.conn_id for c in session.query(Connection).filter(Connection.conn_id.like("%acme"))}
        paused.update({d.dag_id: d.is_paused for d in session.query(DagModel).filter(
            DagModel.dag_id.like("securitycoach_report%"))})
    assert paused["code42_sync_acme"] and paused["code42_reference_acme"] and paused["securitycoach_report_acme"]
    assert not paused["code42_sync"] and not paused["code42_reference"] and not paused["securitycoach_report"]
    assert left == set()
    with engine.connect() as conn:
        deletion = conn.execute(sa.select(t.integration_deletion)).one()
        actions = conn.execute(sa.select(t.integration_deletion_action).order_by(
            t.integration_deletion_action.c.position)).mappings().all()
    assert deletion.tenant_id == other.tenant_id and deletion.row_counts["code42_session"] > 0
    assert [(a["deletion_id"], a["action"], a["target"], a["outcome"], a["detail"]) for a in actions[:5]] == [
        (deletion.deletion_id, "pause_dag", "code42_sync_acme", "done", "paused (metadata DB)"),
        (deletion.deletion_id, "pause_dag", "code42_reference_acme", "done", "paused (metadata DB)"),
        (deletion.deletion_id, "pause_dag", "securitycoach_report_acme", "done", "paused (metadata DB)"),
        (deletion.deletion_id, "delete_connection", "code42_acme", "done", "deleted (metadata DB)"),
        (deletion.deletion_id, "delete_connection", "knowbe4_acme", "done", "deleted (metadata DB)"),
    ]
    assert [(a["action"], a["outcome"]) for a in actions[5:]] == [("manual", "to_do")]
    assert "remove tenant 'acme' from the tenants file" in actions[5]["detail"]

    # the CLI, for the other tenant: its connections come from the environment, so they are named
    # as left to remove there; the rows go, and every line says what happened
    url = engine.url.render_as_string(hide_password=False)
    capsys.readouterr()
    assert cli.main(["--warehouse", url, "--search-path", pg_schema, "tenant", "delete", "--tenant",
                     sandbox.tenant_id, "--confirm", sandbox.tenant_id, "--by", "carol"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"deleted tenant {sandbox.tenant_id}: ") and "code42_session " in out[0]
    assert out[1:] == [
        "  pause_dag code42_sync: done (paused (metadata DB))",
        "  pause_dag code42_reference: done (paused (metadata DB))",
        "  pause_dag securitycoach_report: done (paused (metadata DB))",
        ("  delete_connection code42_default: not_found (defined by the environment variable "
        "AIRFLOW_CONN_CODE42_DEFAULT, not in the metadata DB: remove it there)"),
        ("  delete_connection knowbe4_default: not_found (defined by the environment variable "
        "AIRFLOW_CONN_KNOWBE4_DEFAULT, not in the metadata DB: remove it there)"),
        ("  manual -: to_do (remove tenant 'default' from the tenants file (or set enabled: false), or the next "
        "deployment re-creates its DAGs and pool)"),
    ]
    assert known_tenants(engine) == []


@pytest.fixture
def api_server(airflow_db):
    """A real ``airflow api-server`` on the test's metadata DB (simple auth manager, user ``ops``)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
           "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-" + "0" * 40}
    log = Path(airflow_db) / "api-server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "api-server", "-H", "127.0.0.1",
                                 "-p", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy starting to answer
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        password = json.loads((Path(airflow_db) / "simple_auth_manager_passwords.json.generated").read_text())["ops"]
        yield base, password
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_delete_integration_through_the_airflow_rest_api(two_tenants, sandbox, monkeypatch, api_server):
    """As on a real worker (no metadata-DB access needed): with securitycoach_airflow_api defined, the
    delete DAG pauses and removes through a running api-server."""
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    base, password = api_server
    bag, engine, other = two_tenants
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_ACME", json.dumps({
        "conn_type": "code42", "login": other.client_id, "password": other.client_secret, "host": other.base_url}))
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_AIRFLOW_API",
                       json.dumps({"conn_type": "http", "host": base, "login": "ops", "password": password}))
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "knowbe4_acme").delete()
        session.add(Connection(conn_id="knowbe4_acme", conn_type="knowbe4", host=other.base_url,
                               password=other.ksat_key))
    monkeypatch.delenv("AIRFLOW_CONN_KNOWBE4_ACME")
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    assert bag.get_dag("code42_sync_acme").test(logical_date=end).state == "success"
    with create_session() as session:
        session.query(DagModel).update({DagModel.is_paused: False})

    run = bag.get_dag("securitycoach_delete_integration").test(
        run_conf={"tenant_id": other.tenant_id, "confirm": other.tenant_id})
    assert run.state == "success"
    with create_session() as session:
        paused = {d.dag_id: d.is_paused for d in session.query(DagModel)}
        assert session.query(Connection).filter(Connection.conn_id == "knowbe4_acme").count() == 0
    assert paused["code42_sync_acme"] and paused["code42_reference_acme"] and paused["securitycoach_report_acme"]
    assert not paused["code42_sync"] and not paused["securitycoach_report"]
    with engine.connect() as conn:
        actions = [(a.action, a.target, a.outcome, a.detail) for a in conn.execute(
            sa.select(t.integration_deletion_action).order_by(t.integration_deletion_action.c.position))]
    assert actions[:5] == [
        ("pause_dag", "code42_sync_acme", "done", "paused (Airflow API)"),
        ("pause_dag", "code42_reference_acme", "done", "paused (Airflow API)"),
        ("pause_dag", "securitycoach_report_acme", "done", "paused (Airflow API)"),
        ("delete_connection", "code42_acme", "not_found", ("defined by the environment variable "
                                                          "AIRFLOW_CONN_CODE42_ACME, not in the metadata DB: "
                                                          "remove it there")),
        ("delete_connection", "knowbe4_acme", "done", "deleted (Airflow API)"),
    ]
    assert password not in " ".join(map(str, actions))

"""The sync DAGs end to end: real sandbox over HTTP -> Code42Hook -> dag.test() -> warehouse."""

from __future__ import annotations

import json
import socket
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from conftest import PG_ADMIN_URL, ROOT
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

HOURS = 4


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_import_without_network_or_database(airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG file opened a network connection at import time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(sa, "create_engine", refuse)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    sync = bag.get_dag("code42_sync")
    assert sync.catchup is False
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable

    ten = pendulum.datetime(2026, 11, 1, 10, tz="UTC")  # each run covers the hour before it, whatever the config
    interval = coerce_to_core_timetable(sync.timetable).infer_manual_data_interval(run_after=ten)
    assert (interval.start, interval.end) == (ten - timedelta(hours=1), ten)
    assert sync.params["lookback_hours"] == 24
    assert {t.task_id for t in sync.tasks} == {
        "check_connections", "ensure_schema", "extract_sessions", "extract_alerts", "load_warehouse",
        "check_session_keys", "check_alert_keys", "check_loaded_rows", "check_complete_windows", "resolve_new_actors",
        "map_users", "detect", "deliver_tips",
        "push_ksat_events", "write_audit",
    }
    # the connection check runs first: a missing connection stops the run before anything is read
    assert sync.get_task("ensure_schema").upstream_task_ids == {"check_connections"}
    assert sync.get_task("check_connections").upstream_task_ids == set()
    # the KSAT timeline push follows the tips (its default push set is the coached detections)
    assert sync.get_task("push_ksat_events").upstream_task_ids == {"deliver_tips"}
    assert sync.get_task("push_ksat_events").max_active_tis_per_dag == 1
    # the data checks gate everything after the load; the extracts hold the tenant's pool
    assert sync.get_task("resolve_new_actors").upstream_task_ids == {
        "check_session_keys", "check_alert_keys", "check_loaded_rows", "check_complete_windows"}
    assert {(t.pool, t.pool_slots) for t in sync.tasks if t.task_id.startswith("extract_")} == {("code42_default", 4)}
    assert sync.default_args["on_failure_callback"] is not None
    assert [a.uri for a in sync.get_task("load_warehouse").outlets] == ["securitycoach://warehouse/default"]
    assert bag.get_dag("code42_reference") is not None


@pytest.fixture
def connections(monkeypatch, sandbox):
    for name, value in sandbox.airflow_connections().items():
        monkeypatch.setenv(name, value)

    def use_warehouse(kind: str, where: str):
        if kind == "sqlite":
            conn = {"conn_type": "sqlite", "host": where}
            engine = create_warehouse_engine(f"sqlite:///{where}")
        else:
            conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
                    "schema": "test", "extra": {"search_path": where}}
            engine = create_warehouse_engine(PG_ADMIN_URL, search_path=where)
        monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE", json.dumps(conn))
        return engine

    return use_warehouse


def _run(dagbag, dag_id, logical_date):
    run = dagbag.get_dag(dag_id).test(logical_date=logical_date)
    assert run.state == "success", f"{dag_id} {logical_date}: {run.state}"


def _intervals(sandbox, hours=HOURS):
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def _code42_truth(sandbox, start, end, lookback_hours=24, also=None):
    """What the API holds for the window (and the sessions window ``also``), read independently
    with a fresh hook."""
    from code42_hook import Code42Hook

    hook = Code42Hook()
    sessions = {s.session_id: s.last_updated for s in hook.iter_sessions(start - timedelta(hours=lookback_hours), end)}
    if also is not None:
        sessions.update({s.session_id: s.last_updated for s in hook.iter_sessions(*also)})
    alerts = {a.id for a in hook.iter_alerts(start, end)}
    return sessions, alerts


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sync_loads_the_intervals_and_reruns_change_nothing(kind, dagbag, sandbox, connections, tmp_path, pg_schema):
    engine = connections(kind, str(tmp_path / "wh.db") if kind == "sqlite" else pg_schema)
    ends = _intervals(sandbox)
    _run(dagbag, "code42_reference", ends[-1])
    for end in ends:
        _run(dagbag, "code42_sync", end)

    with engine.connect() as conn:  # the reference run re-read deep_lookback_days of sessions
        deep = conn.execute(sa.select(t.sync_audit.c.sessions_from, t.sync_audit.c.interval_end)
                            .where(t.sync_audit.c.dag_id == "code42_reference")).one()
    assert deep.interval_end.replace(tzinfo=None) - deep.sessions_from.replace(tzinfo=None) >= timedelta(days=14)
    sessions, alerts = _code42_truth(sandbox, ends[0] - timedelta(hours=1), ends[-1],
                                     also=(deep.sessions_from.replace(tzinfo=UTC), deep.interval_end.replace(tzinfo=UTC)))
    with engine.connect() as conn:
        got_sessions = set(conn.execute(sa.select(t.code42_session.c.session_id)).scalars())
        got_alerts = set(conn.execute(sa.select(t.code42_alert.c.alert_id)).scalars())
        actor_ids = set(conn.execute(sa.select(t.code42_actor.c.actor_id)).scalars())
        session_actors = set(conn.execute(sa.select(t.code42_session.c.actor_id)).scalars())
        rules = conn.execute(sa.select(sa.func.count()).select_from(t.code42_alert_rule)).scalar()
        audit = conn.execute(sa.select(t.sync_audit).where(t.sync_audit.c.dag_id == "code42_sync")
                             .order_by(t.sync_audit.c.interval_start)).mappings().all()
    assert sessions and alerts
    assert got_sessions == set(sessions)
    assert got_alerts == alerts
    assert session_actors <= actor_ids
    assert rules > 0
    with engine.connect() as conn:  # the reference run loaded the KSAT directory and mapped the actors
        mapped = conn.execute(sa.select(sa.func.count()).select_from(t.user_mapping)).scalar()
        unmapped = conn.execute(sa.select(sa.func.count()).select_from(t.unmapped_actor)).scalar()
    assert mapped > 0 and mapped + unmapped == len(actor_ids)
    assert len(audit) == HOURS
    assert all(a["requests"] > 0 and a["pages"] > 0 for a in audit)
    assert audit[0]["interval_end"] is not None and audit[0]["sessions_from"] is not None
    # each run recorded what the API said its windows hold, and the warehouse held exactly that
    assert all(a["sessions_api_total"] > 0 and a["alerts_api_total"] is not None for a in audit)
    assert sum(a["alerts_api_total"] for a in audit) > 0
    assert [(a["sessions_rows"], a["alerts_rows"]) for a in audit] == [
        (a["sessions_api_total"], a["alerts_api_total"]) for a in audit]
    _, last_alerts = _code42_truth(sandbox, ends[-1] - timedelta(hours=1), ends[-1], lookback_hours=0)
    assert audit[-1]["alerts_api_total"] == len(last_alerts)  # the alerts the API holds for the last hour

    with engine.connect() as conn:  # detect and deliver_tips ran: the intervals are days old, so the
        detections = conn.execute(sa.select(sa.func.count()).select_from(t.detection)).scalar()
        statuses = set(conn.execute(sa.select(t.delivery.c.status)).scalars())
    assert detections > 0
    assert statuses == {"stale", "test"}  # campaigns recorded them, sent none (a backfill never spams)
    assert sandbox.sinks()["webhook"] == [] and sandbox.sinks()["mail"] == []

    before = table_digests(engine)
    # Rerun two intervals (their look-backs overlap everything loaded so far): nothing changes.
    _run(dagbag, "code42_sync", ends[1])
    _run(dagbag, "code42_sync", ends[2])
    assert table_digests(engine) == before
    with engine.connect() as conn:
        reruns = conn.execute(
            sa.select(t.sync_audit).where(t.sync_audit.c.run_id.not_in([a["run_id"] for a in audit]),
                                          t.sync_audit.c.dag_id == "code42_sync")
            .order_by(t.sync_audit.c.interval_start)
        ).mappings().all()
    # The reruns really ran (each dag.test() is a new run with its own audit row), read the same
    # items and changed no row.
    assert [(r["interval_end"], r["items"], r["rows_changed"]) for r in reruns] == [
        (audit[i]["interval_end"], audit[i]["items"], 0) for i in (1, 2)
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.staging_record)).scalar() == 0


def test_sqlite_and_postgres_warehouses_hold_the_same_rows(dagbag, sandbox, connections, tmp_path, pg_schema):
    ends = _intervals(sandbox, hours=2)
    digests = []
    for kind, where in (("sqlite", str(tmp_path / "wh.db")), ("postgresql", pg_schema)):
        engine = connections(kind, where)
        for end in ends:
            _run(dagbag, "code42_sync", end)
        digests.append(table_digests(engine, tables=[t.code42_session, t.code42_session_alert,
                                                     t.code42_session_risk_indicator, t.code42_alert]))
    assert digests[0]["code42_session"][0] > 0
    assert digests[0] == digests[1]


def test_lookback_catches_sessions_that_changed_after_their_interval(dagbag, sandbox, connections, tmp_path):
    engine = connections("sqlite", str(tmp_path / "wh.db"))
    ends = _intervals(sandbox, hours=2)
    _run(dagbag, "code42_sync", ends[0])
    with engine.connect() as conn:
        before = dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.last_updated)).all())
    sandbox.advance(minutes=6 * 60)  # late alerts and state changes become visible
    try:
        _run(dagbag, "code42_sync", ends[1])
        sessions, _ = _code42_truth(sandbox, ends[1] - timedelta(hours=1), ends[1])
        with engine.connect() as conn:
            after = dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.last_updated)).all())
    finally:
        sandbox.reset()
    changed = [sid for sid in before if after[sid] != before[sid]]
    assert changed, "the sandbox clock advanced 6 h: some sessions of the earlier interval should have changed"
    for sid in changed:  # the warehouse now holds what the API says, not the first reading
        assert after[sid].replace(tzinfo=None) == sessions[sid].replace(tzinfo=None)


def test_the_reference_run_loads_sessions_first_observed_after_the_lookback(dagbag, sandbox, connections, tmp_path):
    """Sessions carry firstObserved apart from beginTime (the SDK's Session model): one first seen
    days after it began (an offline device) is never in an hourly run's look-back window; the daily
    reference run's deep re-read (``deep_lookback_days``) loads it, and no tip goes out for it."""
    from incydr_sandbox.config import TenantConfig
    from incydr_sandbox.tenant import Tenant as SandboxTenant

    engine = connections("sqlite", str(tmp_path / "wh.db"))
    last = _intervals(sandbox, hours=1)[-1]
    tenant = SandboxTenant(TenantConfig(seed=sandbox.health["seed"], anchor_ms=sandbox.anchor_ms))
    anchor_ms = sandbox.anchor_ms
    late = {tenant.plan(i).session_id for i in tenant.index_range(anchor_ms - 14 * 86_400_000, anchor_ms, anchor_ms)
            if tenant.plan(i).late and anchor_ms - 25 * 3_600_000 < tenant.plan(i).observed <= anchor_ms
            and tenant.plan(i).begin < anchor_ms - 25 * 3_600_000}
    assert late, "the sandbox has sessions first observed in the last day that began days earlier"
    _run(dagbag, "code42_sync", last)

    def loaded():
        with engine.connect() as conn:
            return set(conn.execute(sa.select(t.code42_session.c.session_id)).scalars())

    assert not late & loaded()  # the hourly look-back (24 h) cannot see them
    _run(dagbag, "code42_reference", last)
    assert late <= loaded()
    _run(dagbag, "code42_sync", last)  # detects what the re-read queued: days old, so nothing is sent
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(t.delivery.c.status)).scalars())
    assert statuses <= {"stale", "test"}

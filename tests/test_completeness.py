"""Completeness: each sync run records what the Code42 API said its windows hold (``totalCount``) and
the warehouse's rows for them (``sync_audit``); the data check ``check_complete_windows`` fails the
run, naming the window, when the warehouse holds fewer. Real sandbox over HTTP (through a test front
that hides items from its answers), real ``dag.test()``, real warehouses."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from http_front import HttpFront

from conftest import ROOT
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

ALERTS, SESSIONS = "/v1/alerts/query-alerts", "/v1/sessions"


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def _utc(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%MZ")


def _window_with_alerts(sandbox):
    """The latest whole hour before the anchor that holds alerts, and the number it holds."""
    from code42_hook import Code42Hook

    hook = Code42Hook()
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    while (count := hook.count_alerts(end - timedelta(hours=1), end)) == 0:
        end -= timedelta(hours=1)
    return end, count


def _hide(stream: str, hidden: set[str]):
    """An ``edit`` for HttpFront: answers of ``stream`` lose the items whose id is in ``hidden``
    (alerts: the last alert of the first answer that has one is chosen), their totalCount kept."""
    key, ident = ("alerts", "id") if stream == "alerts" else ("items", "sessionId")

    def edit(path, asked, body, n):
        if path != (ALERTS if stream == "alerts" else SESSIONS) or not isinstance(body, dict) or not body.get(key):
            return None
        if stream == "alerts" and not hidden and asked.get("pgSize", 0) > 1:
            hidden.add(body[key][-1][ident])
        kept = [item for item in body[key] if item[ident] not in hidden]
        return None if len(kept) == len(body[key]) else {**body, key: kept}

    return edit


def _run(dagbag, logical_date):
    return dagbag.get_dag("code42_sync").test(logical_date=logical_date)


@pytest.fixture
def warehouse_conn(monkeypatch, tmp_path, sandbox):
    for name, value in sandbox.airflow_connections().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}))
    return create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.db'}")


def _through(monkeypatch, sandbox, front):
    conn = json.loads(sandbox.airflow_connections()["AIRFLOW_CONN_CODE42_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_DEFAULT", json.dumps({**conn, "host": front.base_url}))


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_a_normal_run_records_the_api_totals_and_passes(dagbag, sandbox, warehouse_conn, monkeypatch):
    from code42_hook import Code42Hook

    end, alerts = _window_with_alerts(sandbox)
    sessions = Code42Hook().count_sessions(end - timedelta(hours=25), end)
    with HttpFront(sandbox.base_url) as front:
        _through(monkeypatch, sandbox, front)
        run = _run(dagbag, end)
    assert run.state == "success"
    with warehouse_conn.connect() as conn:
        audit = conn.execute(sa.select(t.sync_audit)).mappings().one()
    assert audit["alerts_api_total"] == audit["alerts_rows"] == alerts
    assert audit["sessions_api_total"] == audit["sessions_rows"] == sessions > alerts


@pytest.mark.parametrize("stream", ["alerts", "sessions"])
def test_items_the_api_did_not_serve_fail_the_run_naming_the_window(stream, dagbag, sandbox, warehouse_conn,
                                                                    monkeypatch, capfd, caplog):
    """The answers leave out one item and keep their totalCount (an alerts page served short; a
    session missing from every answer, however small the sub-window): the load holds one row fewer
    than the API's total, and the check fails the run with the tenant entry, stream, window, API
    total and warehouse rows; the steps after the checks never run."""
    from code42_hook import Code42Hook

    caplog.set_level(logging.INFO)
    end, alerts = _window_with_alerts(sandbox)
    start = end - timedelta(hours=1 if stream == "alerts" else 25)  # sessions: the 24 h look-back
    total = alerts if stream == "alerts" else Code42Hook().count_sessions(start, end)
    hidden: set[str] = set()
    if stream == "sessions":
        hidden.add(next(iter(Code42Hook().iter_sessions(end - timedelta(hours=2), end))).session_id)
    with HttpFront(sandbox.base_url, edit=_hide(stream, hidden)) as front:
        _through(monkeypatch, sandbox, front)
        run = _run(dagbag, end)
    assert len(hidden) == 1
    assert run.state == "failed"
    states = _task_states(run)
    assert states["check_complete_windows"] == "failed"
    assert {states[c] for c in ("check_session_keys", "check_alert_keys", "check_loaded_rows")} == {"success"}
    assert states["resolve_new_actors"] == "upstream_failed"
    table = t.code42_alert if stream == "alerts" else t.code42_session
    with warehouse_conn.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_audit)).scalar() == 0
    assert rows == total - 1
    expected = (f"data check check_complete_windows failed: tenant default: {stream} {_utc(start)} .. {_utc(end)}: "
                f"API total {total}, warehouse rows {rows}")
    out, err = capfd.readouterr()
    assert expected in out + err + caplog.text


def test_rows_lost_after_the_load_fail_the_check(dagbag, sandbox, warehouse_conn, capfd, caplog):
    """A run loads the hour; one of its alerts is then deleted from the warehouse. The same run
    again, its load marked done without running: the extracts report the API's totals, the
    warehouse holds one alert fewer, and the check fails naming that window."""
    caplog.set_level(logging.INFO)
    end, alerts = _window_with_alerts(sandbox)
    start = end - timedelta(hours=1)
    assert _run(dagbag, end).state == "success"
    a = t.code42_alert.c
    with warehouse_conn.begin() as conn:
        lost = conn.execute(sa.select(sa.func.min(a.alert_id)).where(a.created_at >= start, a.created_at < end)).scalar()
        conn.execute(t.code42_alert.delete().where(a.alert_id == lost))
    run = dagbag.get_dag("code42_sync").test(logical_date=end, mark_success_pattern="load_warehouse")
    assert run.state == "failed"
    assert _task_states(run)["check_complete_windows"] == "failed"
    out, err = capfd.readouterr()
    assert (f"data check check_complete_windows failed: tenant default: alerts {_utc(start)} .. {_utc(end)}: "
            f"API total {alerts}, warehouse rows {alerts - 1}") in out + err + caplog.text

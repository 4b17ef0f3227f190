"""Delete Integration: two tenants in one warehouse (two sandboxes, two seeds); deleting one
leaves the other byte for byte; a wrong or missing confirmation changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pipeline import load_reference, run_detection, sync_interval, use_sandbox

from conftest import ROOT
from securitycoach import cli
from securitycoach.tenancy import DeletionRefused, delete_tenant, tenant_tables
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests


def _load(engine, sandbox, monkeypatch) -> str:
    code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
    sync_interval(engine, code42, sandbox.anchor.replace(minute=0, second=0, microsecond=0), hours=24,
                  lookback=timedelta(0))
    tenant = load_reference(engine, code42, knowbe4)
    run_detection(engine, tenant)
    return tenant


@pytest.fixture
def two_tenants(warehouse, sandbox, start_sandbox, monkeypatch):
    sandbox.reset()
    first = _load(warehouse, sandbox, monkeypatch)
    second = _load(warehouse, start_sandbox(seed=7), monkeypatch)
    assert first != second
    return warehouse, first, second


def _counts(engine, tenant):
    with engine.connect() as conn:
        return {table.name: conn.execute(sa.select(sa.func.count()).select_from(table)
                                         .where(table.c.tenant_id == tenant)).scalar_one()
                for table in tenant_tables()}


def test_delete_removes_one_tenant_only_and_keeps_an_audit_row(two_tenants):
    engine, first, second = two_tenants
    before = _counts(engine, first)
    other = table_digests(engine, tenant_id=second)
    assert before["code42_session"] > 0 and before["detection"] > 0 and before["user_mapping"] > 0
    counts = delete_tenant(engine, first, confirm=first, deleted_by="alice")
    assert counts == {name: n for name, n in before.items() if n}
    assert set(_counts(engine, first).values()) == {0}
    assert table_digests(engine, tenant_id=second) == other
    with engine.connect() as conn:
        audit = conn.execute(sa.select(t.integration_deletion)).one()
    assert (audit.tenant_id, audit.deleted_by, audit.row_counts) == (first, "alice", counts)
    assert audit.deleted_at is not None


def test_a_wrong_or_missing_confirmation_changes_nothing(two_tenants):
    engine, first, _ = two_tenants
    everything = table_digests(engine)
    for confirm in (None, "", "wrong", first.upper(), f" {first}"):
        with pytest.raises(DeletionRefused, match=r"does not repeat the tenant id .* nothing was deleted"):
            delete_tenant(engine, first, confirm=confirm, deleted_by="alice")
    with pytest.raises(DeletionRefused, match="holds no rows of tenant 'nobody'"):
        delete_tenant(engine, "nobody", confirm="nobody", deleted_by="alice")
    assert table_digests(engine) == everything
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.integration_deletion)).scalar_one() == 0


def test_cli_and_dag_delete_with_confirmation(sqlite_warehouse, sandbox, start_sandbox, monkeypatch, airflow_db,
                                              capsys):
    engine = sqlite_warehouse
    sandbox.reset()
    first = _load(engine, sandbox, monkeypatch)
    second = _load(engine, start_sandbox(seed=7), monkeypatch)
    url = str(engine.url)
    assert cli.main(["--warehouse", url, "tenant", "delete", "--tenant", first, "--confirm", "x"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert cli.main(["--warehouse", url, "tenant", "delete", "--tenant", first, "--confirm", first,
                     "--by", "bob"]) == 0
    assert f"deleted tenant {first}" in capsys.readouterr().out
    assert set(_counts(engine, first).values()) == {0}

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": engine.url.database}))
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("securitycoach_delete_integration")
    kept = table_digests(engine)
    assert dag.test(run_conf={"tenant_id": second, "confirm": "no"}).state == "failed"
    assert table_digests(engine) == kept
    assert dag.test(run_conf={"tenant_id": second, "confirm": second}).state == "success"
    assert set(_counts(engine, second).values()) == {0}
    with engine.connect() as conn:
        assert [r.tenant_id for r in conn.execute(sa.select(t.integration_deletion)
                                                  .order_by(t.integration_deletion.c.deletion_id))] == [first, second]

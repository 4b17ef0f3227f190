"""The read-only analyst role on PostgreSQL: the rpt_* views, nothing else.

Roles are cluster-wide, so every test uses role names of its own and drops them at the end.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from conftest import PG_ADMIN_URL
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.migrate import ANALYST_ROLE_ENV, DEFAULT_ANALYST_ROLE, analyst_role_name


@pytest.fixture
def roles(pg_admin_engine):
    """Unique role names (analyst, login); both dropped afterwards, with their grants."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"sc_test_analyst_{suffix}", f"sc_test_login_{suffix}")
    yield names
    with pg_admin_engine.begin() as conn:
        for name in reversed(names):
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first():
                conn.exec_driver_sql(f'DROP OWNED BY "{name}"')
                conn.exec_driver_sql(f'DROP ROLE "{name}"')


def _grants(admin, schema: str, role: str) -> set[str]:
    with admin.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT table_name FROM information_schema.role_table_grants "
            "WHERE grantee = :r AND table_schema = :s AND privilege_type = 'SELECT'"), {"r": role, "s": schema}).scalars())


def test_analyst_reads_reports_and_nothing_else(pg_admin_engine, pg_schema, roles):
    analyst, login = roles
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)
    migrate(engine, analyst_role=analyst)
    migrate(engine, analyst_role=analyst)  # again: idempotent (views recreated, grants renewed)
    now = datetime(2026, 1, 5, 10, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(t.code42_session.insert().values(
            tenant_id="t1", session_id="s1", actor_id="a1", begin_time=now, last_updated=now, risk_score=5,
            raw={"fileName": "secret.xlsx"}))
        conn.execute(t.staging_record.insert().values(
            tenant_id="t1", run_key="r", stream="sessions", record_id="s1", payload={"email": "x@example.com"}))
    engine.dispose()
    with pg_admin_engine.begin() as conn:
        attrs = conn.execute(sa.text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": analyst}).scalar()
        assert attrs is False  # NOLOGIN
        conn.exec_driver_sql(f'CREATE ROLE "{login}" LOGIN IN ROLE "{analyst}"')
    views = _grants(pg_admin_engine, pg_schema, analyst)
    assert views == {"rpt_coaching_summary", "rpt_top_campaigns", "rpt_top_groups", "rpt_detection_rule_overview",
                     "rpt_vendor_events", "rpt_risk_overview", "rpt_unmapped_events", "rpt_recidivism",
                     "rpt_rule_noise", "rpt_user_timeline"}

    url = sa.engine.make_url(PG_ADMIN_URL).set(username=login)
    as_analyst = create_warehouse_engine(url, search_path=pg_schema)
    try:
        with as_analyst.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar() == login
            row = conn.execute(sa.text("SELECT actor_id, risk_score, rank FROM rpt_risk_overview")).one()
            assert tuple(row) == ("a1", 5.0, 1)
        for table in ("code42_session", "stg_code42_record", "base_session", "delivery", "schema_version"):
            with as_analyst.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as refused:
                conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert "permission denied" in str(refused.value), table
    finally:
        as_analyst.dispose()


def test_two_schemas_migrating_at_once_share_one_new_role(pg_admin_engine, pg_schema, roles):
    """Roles are cluster-wide: two warehouses migrating side by side both create/grant the role."""
    analyst, _ = roles
    other = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
    try:
        barrier, errors = threading.Barrier(4), []

        def run(schema):
            engine = create_warehouse_engine(PG_ADMIN_URL, search_path=schema)
            try:
                barrier.wait()
                migrate(engine, analyst_role=analyst)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=run, args=(s,)) for s in (pg_schema, other, pg_schema, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with pg_admin_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": analyst}).scalar() == 1
        assert len(_grants(pg_admin_engine, pg_schema, analyst)) == 10
        assert _grants(pg_admin_engine, pg_schema, analyst) == _grants(pg_admin_engine, other, analyst)
    finally:
        with pg_admin_engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')


def test_analyst_role_name_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv(ANALYST_ROLE_ENV, raising=False)
    assert analyst_role_name() == DEFAULT_ANALYST_ROLE == "securitycoach_analyst"
    monkeypatch.setenv(ANALYST_ROLE_ENV, "reporting_ro")
    assert analyst_role_name() == "reporting_ro"
    monkeypatch.setenv(ANALYST_ROLE_ENV, "")
    assert analyst_role_name() == ""  # manage no role
    monkeypatch.setenv(ANALYST_ROLE_ENV, 'x"; DROP TABLE delivery; --')
    with pytest.raises(ValueError, match=f"{ANALYST_ROLE_ENV}: .*not a usable PostgreSQL role name"):
        analyst_role_name()
    with pytest.raises(ValueError, match="analyst_role: 'Analysts' is not"):
        analyst_role_name("Analysts")

"""The warehouse's Alembic migrations: a warehouse of the last release before Alembic upgrades with its
data; the revisions build what schema.py declares; views are re-created only when their definition
changed, grants renewed on upgrades only; a current warehouse is a cheap check; ``report`` never migrates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from io import BytesIO

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import PG_ADMIN_URL, ROOT
from securitycoach import cli
from securitycoach.warehouse import SCHEMA_VERSION, create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests
from securitycoach.warehouse.migrate import grant_analyst

# The last commit whose warehouse code predates Alembic (schema version 5, include/sql/migrations).
PRE_ALEMBIC = "07ce4e4"
TABLES = [*t.FACT_TABLES, t.sync_audit, t.integration_deletion, t.integration_deletion_action, t.mapping_upload]

# Run with the old release's code: a warehouse at its schema, 60 rows in every table (>= its COPY
# threshold), the digests of what it stored.
OLD_RELEASE = """
import json, sys
from datetime import UTC, datetime, timedelta
import sqlalchemy as sa
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert
from securitycoach.warehouse.digest import table_digests

def value(table, column, i):
    if table.name == "delivery" and column.name == "status":
        return "covered_by_instructor"  # 21 characters: the version 5 width
    kind = column.type
    if isinstance(kind, sa.JSON):
        return {"i": i, "text": "tab\\there \\\\N", "list": [1, None, True]}
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=i)
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Float):
        return i / 4
    if isinstance(kind, sa.Integer):
        return i
    return f"{column.name[:9]}-{i}\\u00e9"

engine = create_warehouse_engine(sys.argv[1], search_path=sys.argv[2] or None)
migrate(engine)
tables = [t.metadata.tables[name] for name in json.loads(sys.argv[3]) if name in t.metadata.tables]
with engine.begin() as conn:
    for table in tables:
        upsert(conn, table, [{c.name: value(table, c, i) for c in table.columns} for i in range(60)],
               do_nothing=len(table.primary_key.columns) == len(table.columns))
print(json.dumps({"module": t.__file__, "digests": table_digests(engine, tables),
                  "columns": {table.name: [c.name for c in table.columns] for table in tables}}))
"""


@pytest.fixture(scope="module")
def old_release(tmp_path_factory):
    """The pre-Alembic release's plugins/ and include/ (from this repository's history)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the pre-Alembic release is not at hand")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PRE_ALEMBIC, "plugins", "include"],
                             check=True, capture_output=True).stdout
    target = tmp_path_factory.mktemp("pre_alembic")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """(URL, search path) of an empty warehouse on either dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}", ""
    return PG_ADMIN_URL, request.getfixturevalue("pg_schema")


def _installed(engine) -> dict[str, str]:
    """{view: what identifies this exact view object} (PostgreSQL oid; SQLite row in sqlite_master and SQL)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return dict(conn.exec_driver_sql("SELECT name, rowid || ':' || sql FROM sqlite_master "
                                             "WHERE type = 'view'").all())
        return dict(conn.exec_driver_sql("SELECT relname, oid::text FROM pg_class WHERE relkind = 'v' "
                                         "AND relnamespace = current_schema()::regnamespace").all())


def _history(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.schema_version.c.version, t.schema_version.c.description)
                            .order_by(t.schema_version.c.version)).all()


def test_a_warehouse_of_the_release_before_alembic_upgrades_with_its_data(old_release, target):
    url, search_path = target
    env = {**os.environ, "PYTHONPATH": str(old_release / "plugins"), "SECURITYCOACH_HOME": str(old_release)}
    made = subprocess.run([sys.executable, "-c", OLD_RELEASE, url, search_path, json.dumps([x.name for x in TABLES])],
                          check=False, env=env, capture_output=True, text=True, timeout=240)
    assert made.returncode == 0, made.stderr[-3000:]
    old = json.loads(made.stdout)
    assert old["module"].startswith(str(old_release))  # the old code made it, not this checkout's
    engine = create_warehouse_engine(url, search_path=search_path or None)
    try:
        assert not sa.inspect(engine).has_table("alembic_version")
        history = _history(engine)
        assert [v for v, _ in history] == [5]
        assert migrate(engine) == 5  # recognised at version 5: stamped, not recreated, then upgraded
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == f"{SCHEMA_VERSION:04d}"
        # what the old release stored is still there, row for row, in the columns it had
        as_old = [sa.Table(name, sa.MetaData(), *(c._copy() for c in t.metadata.tables[name].columns if c.name in names))
                  for name, names in old["columns"].items()]
        assert {k: list(v) for k, v in table_digests(engine, as_old).items()} == old["digests"]
        assert all(count == 60 for count, _ in old["digests"].values()) and len(old["digests"]) >= 22
        assert [v for v, _ in _history(engine)] == [5, SCHEMA_VERSION]  # one row: the revisions after 5
        assert _differences(engine) == []
        views = _installed(engine)
        assert len(views) == 14
        assert migrate(engine) == SCHEMA_VERSION and _installed(engine) == views  # current: nothing redone
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT actor_id FROM rpt_risk_overview ORDER BY rank LIMIT 1")).scalar()
    finally:
        engine.dispose()


def _differences(engine, metadata: sa.MetaData = t.metadata) -> list:
    """What Alembic's autogenerate finds between the warehouse and schema.py (SQLite: not VARCHAR
    lengths, which SQLite does not enforce and revision 0005 therefore leaves alone there)."""
    def compare_type(context, inspected, metadata_column, inspected_type, metadata_type):
        if engine.dialect.name == "sqlite" and isinstance(metadata_type, sa.String) \
                and isinstance(inspected_type, sa.String):
            return False
        return None

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": compare_type})
        return compare_metadata(context, metadata)


def test_the_revisions_build_what_schema_py_declares(warehouse):
    assert _differences(warehouse) == []
    with warehouse.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == f"{SCHEMA_VERSION:04d}"
    assert _history(warehouse) == [(SCHEMA_VERSION, ("0001_baseline, 0002_detection_and_coaching, 0003_reporting, "
                                                    "0004_integration_deletion_action, 0005_triage, 0006_ksat_events, "
                                                    "0007_sync_completeness"))]


def test_a_schema_py_change_without_a_revision_is_found(sqlite_warehouse):
    extra = sa.MetaData()
    for table in t.metadata.sorted_tables:
        table.to_metadata(extra)
    sa.Table("table_without_revision", extra, sa.Column("tenant_id", sa.String(64), primary_key=True))
    found = _differences(sqlite_warehouse, extra)
    assert [(d[0], d[1].name) for d in found] == [("add_table", "table_without_revision")]


@pytest.fixture
def views_copy(tmp_path, monkeypatch):
    """include/ copied, SECURITYCOACH_HOME pointing at it: its view files may be edited."""
    shutil.copytree(ROOT / "include", tmp_path / "include")
    monkeypatch.setenv("SECURITYCOACH_HOME", str(tmp_path))
    return tmp_path / "include" / "sql" / "views"


def _edit(path):
    text = path.read_text(encoding="utf-8")
    view = path.name.partition(".")[0]
    path.write_text(text.replace(f"CREATE VIEW {view} AS", f"CREATE VIEW {view} AS /* edited */", 1),
                    encoding="utf-8")
    assert "/* edited */" in path.read_text(encoding="utf-8")


def test_only_changed_views_are_recreated(views_copy, warehouse):
    before = _installed(warehouse)
    migrate(warehouse)
    assert _installed(warehouse) == before
    _edit(views_copy / "rpt_rule_noise.sql")
    migrate(warehouse)
    after = _installed(warehouse)
    assert {name for name in after if after[name] != before[name]} == {"rpt_rule_noise"}
    assert set(after) == set(before)
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rpt_rule_noise")).scalar() == 0
    migrate(warehouse)
    assert _installed(warehouse) == after


def test_a_changed_base_view_recreates_its_dependants_on_postgresql(views_copy, pg_warehouse):
    before = _installed(pg_warehouse)
    _edit(views_copy / "base_delivery_sent.postgresql.sql")
    migrate(pg_warehouse)
    after = _installed(pg_warehouse)
    changed = {name for name in after if after[name] != before[name]}
    assert changed >= {"base_delivery_sent", "rpt_coaching_summary", "rpt_top_groups"}
    assert "rpt_vendor_events" not in changed and set(after) == set(before)


def test_grants_are_renewed_by_upgrades_only(views_copy, pg_admin_engine, pg_schema, roles):
    analyst, _ = roles
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)

    def granted():
        with pg_admin_engine.connect() as conn:
            return set(conn.execute(sa.text(
                "SELECT table_name FROM information_schema.role_table_grants WHERE grantee = :r "
                "AND table_schema = :s AND privilege_type = 'SELECT'"), {"r": analyst, "s": pg_schema}).scalars())
    try:
        migrate(engine, analyst_role=analyst)
        assert len(granted()) == 10
        with pg_admin_engine.begin() as conn:
            conn.exec_driver_sql(f'REVOKE SELECT ON "{pg_schema}".rpt_risk_overview FROM "{analyst}"')
        migrate(engine, analyst_role=analyst)  # current: a version check, no grants
        assert "rpt_risk_overview" not in granted() and len(granted()) == 9
        _edit(views_copy / "rpt_rule_noise.sql")
        migrate(engine, analyst_role=analyst)  # an upgrade (a view changed): grants renewed
        assert len(granted()) == 10
        with pg_admin_engine.begin() as conn:
            conn.exec_driver_sql(f'REVOKE SELECT ON "{pg_schema}".rpt_risk_overview FROM "{analyst}"')
        grant_analyst(engine, analyst)  # asked for: renewed without an upgrade
        assert len(granted()) == 10
    finally:
        engine.dispose()


@pytest.fixture
def roles(pg_admin_engine):
    """A role name of this test's own (roles are cluster-wide), dropped with its grants afterwards."""
    name = f"sc_test_analyst_{uuid.uuid4().hex[:10]}"
    yield name, None
    with pg_admin_engine.begin() as conn:
        if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first():
            conn.exec_driver_sql(f'DROP OWNED BY "{name}"')
            conn.exec_driver_sql(f'DROP ROLE "{name}"')


def test_report_never_migrates(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert cli.main(["--warehouse", url, "report", "--tenant", "t1"]) == 2
    assert "no such SQLite file" in capsys.readouterr().err and not (tmp_path / "w.db").exists()
    engine = create_warehouse_engine(url)
    with engine.connect():  # an empty database file, no schema
        pass
    assert cli.main(["--warehouse", url, "report", "--tenant", "t1"]) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert message == [(f"securitycoach report: {url}: the warehouse has no schema yet; this code needs version "
                       f"{SCHEMA_VERSION}: run the ensure_schema task or `securitycoach warehouse upgrade` first")]
    assert sa.inspect(engine).get_table_names() == []
    from conftest import legacy_warehouse

    legacy_warehouse(engine, 4)
    assert cli.main(["--warehouse", url, "report", "--tenant", "t1"]) == 2
    assert "is at schema version 4 (made before Alembic)" in capsys.readouterr().err
    assert not sa.inspect(engine).has_table("alembic_version") and not sa.inspect(engine).has_table("coaching_block")
    assert cli.main(["--warehouse", url, "warehouse", "upgrade"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"schema version {SCHEMA_VERSION} (was 4)")
    assert _history(engine)[-1] == (SCHEMA_VERSION, "0005_triage, 0006_ksat_events, 0007_sync_completeness")
    out = tmp_path / "r.html"
    assert cli.main(["--warehouse", url, "report", "--tenant", "t1", "--out", str(out)]) in (0, 2)
    assert "needs version" not in capsys.readouterr().err
    engine.dispose()

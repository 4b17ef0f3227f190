"""Shared fixtures. Airflow's environment is set here, before anything imports airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="securitycoach-test-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "SECURITYCOACH_DATA_DIR": str(Path(_AIRFLOW_HOME) / "data"),
    }
)

import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from securitycoach.warehouse import create_warehouse_engine, migrate

# The sandbox fixtures (sandbox, clean_sandbox, start_sandbox) live in tests/sandbox_fixture.py.
pytest_plugins = ["sandbox_fixture"]

PG_ADMIN_URL = os.environ.get("SECURITYCOACH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The slow tests first (in their order; the rest keep theirs): under pytest-xdist each starts as
    soon as a worker is free, instead of one of them keeping a worker busy after the rest are done."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Figures a test measures (the Celery test's rates, say) for the end of the run: a test writes them
# with report_figures(); the run's terminal summary prints those written since it began. A file, not
# a print: under pytest-xdist a test runs in a worker whose output the terminal never shows.
FIGURES = ROOT / "build" / "test-figures"
_SESSION_STARTED = time.time()


def report_figures(name: str, text: str) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.txt").write_text(text.rstrip() + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter):
    written = [p for p in sorted(FIGURES.glob("*.txt")) if p.stat().st_mtime >= _SESSION_STARTED]
    if written:
        terminalreporter.write_sep("=", "figures measured by the tests (build/test-figures)")
        for path in written:
            terminalreporter.write_line(f"{path.stem}: {path.read_text(encoding='utf-8').rstrip()}")


@pytest.fixture(scope="session")
def pg_admin_engine():
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required for integration tests: {exc}")
    yield engine
    engine.dispose()


@contextmanager
def fresh_schema(admin: sa.Engine):
    """A new PostgreSQL schema (its name), dropped with all it holds afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
def pg_schema(pg_admin_engine):
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    with fresh_schema(pg_admin_engine) as name:
        yield name


@pytest.fixture
def metadata_db(pg_admin_engine):
    """An Airflow metadata database of its own on PostgreSQL (SQLite locks up between the scheduler
    and the CLI), dropped after: its SQLAlchemy URL."""
    name = f"airflow_{uuid.uuid4().hex[:10]}"
    admin = pg_admin_engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_warehouse(pg_schema):
    engine = create_warehouse_engine(PG_ADMIN_URL, search_path=pg_schema)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_warehouse(tmp_path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request):
    """The same test on the embedded SQLite warehouse and on real PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_warehouse" if request.param == "sqlite" else "pg_warehouse")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite in the throwaway AIRFLOW_HOME) for dag.test()."""
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   capture_output=True)
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def pristine_metadata_db(tmp_path_factory) -> Path:
    """An Airflow metadata DB (SQLite) just migrated, never used: `airflow db migrate` once a session
    (it takes a minute or more on a loaded 2-core machine); a test that needs an empty metadata DB
    of its own copies the file (see ``copy_metadata_db``)."""
    path = tmp_path_factory.mktemp("pristine-airflow") / "airflow.db"
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{path}"}
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   capture_output=True, env=env)
    return path


def copy_metadata_db(pristine: Path, home: Path) -> str:
    """A fresh copy of the pristine metadata DB in ``home``: its SQLAlchemy URL."""
    shutil.copyfile(pristine, home / "airflow.db")
    return f"sqlite:///{home / 'airflow.db'}"



def legacy_warehouse(engine, version: int) -> None:
    """Make ``engine``'s empty warehouse what the code before Alembic left at schema ``version``: the
    tables of the revisions up to it, its ``schema_version`` row, and no ``alembic_version``."""
    from datetime import UTC, datetime

    from alembic import command

    from securitycoach.warehouse.migrate import alembic_config
    from securitycoach.warehouse.schema import schema_version

    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), f"{version:04d}")
        conn.commit()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.execute(schema_version.insert().values(version=version, description=f"v{version}",
                                                    applied_at=datetime.now(UTC)))

"""The console scripts as a user runs them (subprocesses of the installed ``securitycoach`` and
``incydr-sandbox``): help for every argument, --version, global options after the command, errors
as one line with exit status 2 (usage, input) or 1 (runtime), and typos that fail instead of
passing for results: a missing warehouse is named and not created, an unknown tenant is named
with the tenants the warehouse holds."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from pipeline import load_reference, use_sandbox

from conftest import PG_ADMIN_URL

BIN = Path(sys.executable).parent
RST = re.compile(r"``|:(func|class|meth|mod|attr|data):`|^\.\. ", re.MULTILINE)  # reStructuredText markup


def run(*args: str, cwd: Path | None = None, env: dict | None = None, script: str = "securitycoach"):
    return subprocess.run([str(BIN / script), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


@pytest.mark.parametrize("module", ["securitycoach.cli", "incydr_sandbox.cli"])
def test_every_argument_and_option_has_help_without_markup(module):
    parser = importlib.import_module(module)._parser()
    seen = 0
    for each in _parsers(parser):
        assert each.description and not RST.search(each.description), each.prog
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(c.help for c in action._choices_actions), each.prog
                continue
            seen += 1
            assert action.help and action.help != argparse.SUPPRESS, f"{each.prog} {action.dest}: no help"
            assert not RST.search(action.help), f"{each.prog} {action.dest}: {action.help}"
    assert seen > 20


def test_help_and_version_of_both_commands():
    version = importlib.metadata.version("incydr-securitycoach")
    for script in ("securitycoach", "incydr-sandbox"):
        shown = run("--version", script=script)
        assert (shown.returncode, shown.stdout.strip()) == (0, f"{script} {version}")
    top = run("--help")
    assert top.returncode == 0 and "securitycoach report --tenant TENANT" in top.stdout
    assert "global options (before or after the command)" in top.stdout and "``" not in top.stdout
    report = run("report", "--help")
    assert report.returncode == 0 and "--warehouse URL" in report.stdout and "first day" in report.stdout
    sandbox = run("--help", script="incydr-sandbox")
    assert sandbox.returncode == 0 and "--fail-429-every INT" in sandbox.stdout and "``" not in sandbox.stdout


def test_usage_errors_are_one_line_with_status_2(tmp_path):
    assert one_line_error(run("report"), 2) == ("securitycoach report: error: the following arguments are required: "
                                                "--tenant (see securitycoach report --help)")
    assert "invalid choice: 'reprot'" in one_line_error(run("reprot"), 2)
    assert "argument --port: invalid int value: 'x'" in one_line_error(run("--port", "x", script="incydr-sandbox"), 2)
    assert "anchor 'soon' is neither ISO-8601" in one_line_error(run("--anchor", "soon", script="incydr-sandbox"), 2)
    missing = tmp_path / "no" / "truth.json"
    assert one_line_error(run("--write-truth", str(missing), script="incydr-sandbox"), 1) == (
        f"incydr-sandbox: No such file or directory: {missing}")
    assert one_line_error(run("mapping", "check-rules", str(tmp_path / "rules.yaml")), 2).startswith(
        f"securitycoach mapping check-rules: {tmp_path / 'rules.yaml'}")


@pytest.mark.parametrize("command", [["report", "--tenant", "x"], ["mapping", "run", "--tenant", "x"],
                                     ["tenant", "delete", "--tenant", "x", "--confirm", "x", "--airflow", "none"]])
def test_a_missing_sqlite_warehouse_is_named_and_not_created(tmp_path, command):
    work = tmp_path / "work"
    work.mkdir()
    typo = one_line_error(run("--warehouse", "sqlite:///typo/x.db", *command, cwd=work), 2)
    assert typo == (f"securitycoach {' '.join(command[:2 if command[0] != 'report' else 1])}: warehouse "
                    "sqlite:///typo/x.db: no such SQLite file 'typo/x.db'; nothing was created (`securitycoach "
                    "warehouse upgrade` creates a warehouse)")
    default = one_line_error(run(*command, cwd=work, env={"SECURITYCOACH_DATA_DIR": str(work / "data")}), 2)
    assert f"no such SQLite file '{work / 'data' / 'warehouse.db'}'" in default
    assert list(work.iterdir()) == []  # no folder, no database, no report


def test_a_missing_postgresql_schema_is_named_and_not_created(pg_admin_engine):
    url = PG_ADMIN_URL
    line = one_line_error(run("report", "--tenant", "x", "--warehouse", url, "--search-path", "no_such_schema"), 2)
    assert line == ("securitycoach report: warehouse postgresql+psycopg://postgres@127.0.0.1:5432/test: database "
                    "'test' has no schema 'no_such_schema' (search path); nothing was created")
    with pg_admin_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = "
                                    "'no_such_schema'")).first() is None


def test_an_unreachable_database_is_a_one_line_runtime_error():
    line = one_line_error(run("report", "--tenant", "x", "--warehouse",
                              "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test"), 1)
    assert line.startswith("securitycoach report: warehouse postgresql+psycopg://postgres:***@127.0.0.1:1/test: "
                           "OperationalError: ")
    assert "hunter2" not in line


def test_an_empty_warehouse_is_refused_by_the_read_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert run("warehouse", "upgrade", "--warehouse", url).returncode == 0  # the one command that creates
    line = one_line_error(run("report", "--tenant", "x", "--warehouse", url, "--out", str(tmp_path / "r.html")), 2)
    assert line == f"securitycoach report: {url}: the warehouse holds no rows of tenant 'x'; its tenants: none " \
                   "(no sync has loaded it yet)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.db"]


@pytest.fixture
def loaded(warehouse, sandbox, monkeypatch, request):
    """A warehouse (SQLite and PostgreSQL) holding the sandbox tenant's reference data, and the CLI
    arguments that name it."""
    sandbox.reset()
    tenant = load_reference(warehouse, *use_sandbox(monkeypatch, sandbox))
    where = ["--warehouse", warehouse.url.render_as_string(hide_password=False)]
    if warehouse.dialect.name == "postgresql":
        where += ["--search-path", request.getfixturevalue("pg_schema")]
    return tenant, where


def test_global_options_after_the_command_and_an_unknown_tenant(loaded, tmp_path):
    tenant, where = loaded
    out = tmp_path / "report.html"
    written = run("report", "--tenant", tenant, "--out", str(out), *where)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == str(out) and "<html" in out.read_text(encoding="utf-8")
    mapped = run("mapping", "run", *where, "--tenant", tenant)
    assert mapped.returncode == 0 and mapped.stdout.startswith("mapping: "), mapped.stderr

    other = tmp_path / "other.html"
    line = one_line_error(run("report", "--tenant", "acme-typo", "--out", str(other), *where), 2)
    assert line.endswith(f": the warehouse holds no rows of tenant 'acme-typo'; its tenants: {tenant}")
    assert line.startswith("securitycoach report: ")
    assert not other.exists()
    assert one_line_error(run("mapping", "run", "--tenant", "acme-typo", *where), 2).endswith(
        f"its tenants: {tenant}")

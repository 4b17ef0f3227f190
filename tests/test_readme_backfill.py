"""The README's "Backfill historical alerts" recipe, run as a newcomer runs it: the section's bash
blocks, in order, in one shell, from the checkout, with only its placeholders filled.

The placeholders are the ports (the sandbox's 8042, the api-server's 8080), the two database names
(dropped after), ``AIRFLOW_HOME`` (a temporary folder) and the range (3 hours instead of 48). Each
must be found in the README as the test expects it, so a changed recipe fails here instead of
running something else. The environment is the user's without any ``AIRFLOW*``, ``PYTEST*`` or
``SECURITYCOACH*`` variable, plus ``SECURITYCOACH_DATA_DIR`` so the report lands in the temporary
folder rather than in the checkout's data/.

While the backfill runs the test logs in to the api-server as the README says (the simple auth
manager's generated password file) and lists the backfill's runs through the REST API. After the
recipe's last command, it checks what the recipe promises: every run succeeded, ``verify`` found no
gaps, the report was written, and, read independently, one ``sync_audit`` row per backfilled hour,
every session and alert the API holds for the range in the warehouse, and detections on mapped
actors (the reference DAG ran first).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from airflow_stack import free_port

from conftest import PG_ADMIN_URL, ROOT
from securitycoach.warehouse import create_warehouse_engine
from securitycoach.warehouse import schema as t

pytestmark = pytest.mark.slow

SECTION = "## Backfill historical alerts"
FIRST, LAST = datetime(2026, 10, 31, 21, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)
HOURS = 3
TENANT_UID = "41a617d1-b5bb-4fb2-a12e-1c7d362780bc"  # the sandbox's at seed 42, as tenants.yaml ships it
DEADLINE_S = 1000


def recipe() -> str:
    """The section's ```bash blocks, in order, as one script."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme, f"README has no {SECTION!r} section"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)
    assert blocks, f"no bash block under {SECTION!r}"
    return "\n".join(blocks)


def fill(script: str, placeholders: dict[str, str]) -> str:
    for text, value in placeholders.items():
        assert text in script, f"the README's backfill recipe no longer contains {text!r}"
        script = script.replace(text, value)
    return script


@pytest.fixture
def databases(pg_admin_engine):
    """Names for the recipe's two databases (it creates them with createdb); dropped after."""
    names = [f"readme_airflow_{uuid.uuid4().hex[:8]}", f"readme_warehouse_{uuid.uuid4().hex[:8]}"]
    yield names
    admin = pg_admin_engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def log_in_and_list_runs(port: int, home: Path) -> list[str] | None:
    """As the README says: the admin's password from the generated file, then the API with its
    token. None while the api-server is not up yet."""
    passwords = home / "simple_auth_manager_passwords.json.generated"
    base = f"http://127.0.0.1:{port}"
    try:
        if not passwords.exists() or not requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok:
            return None
    except (requests.ConnectionError, requests.Timeout):
        return None
    password = json.loads(passwords.read_text())["admin"]
    assert requests.get(f"{base}/api/v2/dags/code42_sync/dagRuns", timeout=30).status_code == 401  # no anonymous
    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    assert token.status_code == 201, token.text
    runs = requests.get(f"{base}/api/v2/dags/code42_sync/dagRuns", timeout=30,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert runs.status_code == 200, runs.text
    return [r["dag_run_id"] for r in runs.json()["dag_runs"]]


def stop_group(pgid: int) -> None:
    """SIGTERM to the recipe's process group (its shell and what it started), SIGKILL after 20 s."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


@pytest.mark.timeout(DEADLINE_S + 120)
def test_the_readme_backfill_recipe_runs_as_written(tmp_path, databases, monkeypatch):
    sandbox_port, api_port = free_port(), free_port()
    meta_db, warehouse_db = databases
    home = tmp_path / "airflow"
    script = fill(recipe(), {
        "AIRFLOW_HOME=$PWD/.airflow": f"AIRFLOW_HOME={home}",
        "8042": str(sandbox_port),
        "8080": str(api_port),
        "-U postgres airflow ": f"-U postgres {meta_db} ",
        "5432/airflow": f"5432/{meta_db}",
        "-U postgres securitycoach ": f"-U postgres {warehouse_db} ",
        "5432/securitycoach": f"5432/{warehouse_db}",
        "FROM=2026-10-30T00:00:00+00:00": f"FROM={FIRST.isoformat()}",
        "TO=2026-10-31T23:00:00+00:00": f"TO={LAST.isoformat()}",
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST", "SECURITYCOACH"))}
    env["SECURITYCOACH_DATA_DIR"] = str(tmp_path / "data")
    (tmp_path / "recipe.sh").write_text(script, encoding="utf-8")
    out = open(tmp_path / "recipe.log", "w+")  # noqa: SIM115 - closed below
    shell = subprocess.Popen(["bash", "-e", "-x", str(tmp_path / "recipe.sh")], cwd=ROOT, env=env, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    seen_runs = None
    try:
        deadline = time.monotonic() + DEADLINE_S
        while shell.poll() is None and time.monotonic() < deadline:
            if not any(r.startswith("backfill__") for r in seen_runs or ()):
                seen_runs = log_in_and_list_runs(api_port, home)
            time.sleep(2)
        finished = shell.poll() is not None
    finally:
        stop_group(shell.pid)  # what the recipe's `kill $(jobs -p)` left (everything, if it did not get there)
        out.seek(0)
        log = out.read()
        out.close()

    def component_logs() -> str:
        return "".join(f"\n--- {name} ---\n" + (home / name).read_text(errors="replace")[-3000:]
                       for name in ("scheduler.log", "api-server.log", "sandbox.log") if (home / name).exists())

    assert finished, f"the recipe did not finish in {DEADLINE_S} s:\n{log[-6000:]}{component_logs()}"
    assert shell.returncode == 0, f"the recipe failed (exit {shell.returncode}):\n{log[-8000:]}{component_logs()}"
    assert seen_runs is not None, "never logged in to the api-server while the backfill ran"
    assert any(r.startswith("backfill__") for r in seen_runs), f"the API never listed the backfill's runs: {seen_runs}"

    # What the recipe's own last commands printed: every run a success, verify's verdict, the report.
    after_count = log.rsplit("grep -c success", 1)[1]  # its output: the first line of digits (-x traces around it)
    assert re.search(r"^(\d+)$", after_count, flags=re.MULTILINE).group(1) == str(HOURS), log[-4000:]
    assert re.search(rf"verify default \(tenant {TENANT_UID}\) .*: no gaps", log), log[-4000:]
    reports = list((tmp_path / "data" / "reports").glob(f"securitycoach_{TENANT_UID}_*.html"))
    assert reports and str(reports[0]) in log, log[-3000:]

    engine = create_warehouse_engine(sa.engine.make_url(PG_ADMIN_URL).set(database=warehouse_db))
    with engine.connect() as conn:
        audit = conn.execute(sa.select(t.sync_audit.c.interval_start, t.sync_audit.c.run_id)
                             .order_by(t.sync_audit.c.interval_start)).all()
        got = set(conn.execute(sa.select(t.code42_session.c.session_id)).scalars())
        got_alerts = set(conn.execute(sa.select(t.code42_alert.c.alert_id)).scalars())
        mapped = conn.execute(sa.select(sa.func.count()).select_from(t.user_mapping)).scalar()
        on_mapped = conn.execute(sa.select(sa.func.count()).select_from(t.detection.join(
            t.user_mapping, sa.and_(t.user_mapping.c.tenant_id == t.detection.c.tenant_id,
                                    t.user_mapping.c.actor_id == t.detection.c.actor_id)))).scalar()
    engine.dispose()
    backfilled = [a for a in audit if a.run_id.startswith("backfill__")]
    assert [a.interval_start for a in backfilled] == [FIRST + timedelta(hours=h) for h in range(HOURS)]
    assert {a.run_id for a in backfilled} <= set(seen_runs), seen_runs  # the API, logged in, listed them
    assert mapped > 0 and on_mapped > 0, (mapped, on_mapped)

    # What the API holds for the range (with the DAG's 24 h look-back), read independently.
    from incydr_sandbox.process import SandboxProcess

    with SandboxProcess(anchor="2026-11-01T00:00:00Z") as sandbox:  # same seed and anchor: the same tenant
        for name, value in sandbox.airflow_connections().items():
            monkeypatch.setenv(name, value)
        from code42_hook import Code42Hook

        hook = Code42Hook()
        end = LAST + timedelta(hours=1)
        sessions = {s.session_id for s in hook.iter_sessions(FIRST - timedelta(hours=24), end)}
        alerts = {a.id for a in hook.iter_alerts(FIRST, end)}
    assert sessions and alerts
    assert sessions <= got and alerts <= got_alerts

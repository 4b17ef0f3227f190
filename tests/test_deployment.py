"""docker-compose.yaml and the Dockerfile, checked without a Docker engine: the services Airflow 3
users expect, healthchecks, commands, images, that every referenced file exists, and that secrets
come from the env file, never from the YAML."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = ("postgres", "sandbox", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer")
ENV_EXAMPLE = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))


def test_the_services_of_an_airflow_3_deployment_are_there():
    assert set(SERVICES) == {*LONG_RUNNING, "airflow-init"}
    commands = {name: SERVICES[name].get("command") for name in SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["sandbox"][0] == "incydr-sandbox" and "--smtp-port" in commands["sandbox"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    for name in SERVICES:
        if name.startswith("airflow-") or name == "sandbox":
            assert SERVICES[name]["image"] == "securitycoach-airflow:latest" and SERVICES[name]["build"] == "."


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(name):
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3


def test_airflow_services_start_after_init_and_init_after_the_database_and_sandbox():
    init = SERVICES["airflow-init"]
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert init["depends_on"]["sandbox"]["condition"] == "service_healthy"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")


def test_metadata_db_and_warehouse_are_separate_databases():
    script = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE warehouse" in script
    init = (ROOT / "docker" / "init.sh").read_text()
    assert "--conn-schema warehouse" in init and "airflow db migrate" in init and "airflow pools set" in init


def test_every_referenced_file_exists():
    referenced = [ROOT / "Dockerfile", ROOT / ".env.example"]
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                referenced.append(ROOT / volume.split(":")[0])
    referenced += [ROOT / "docker" / Path(c[0]).name for s in SERVICES.values() for c in [s.get("command")]
                   if isinstance(c, list) and c and str(c[0]).startswith("/opt/securitycoach/docker/")]
    for copied in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.MULTILINE):
        referenced += [ROOT / part for part in copied.split()]
    missing = [str(p.relative_to(ROOT)) for p in referenced if not p.exists()]
    assert not missing
    assert len(referenced) > 10


def test_secrets_come_from_the_env_file_not_the_yaml():
    text = (ROOT / "docker-compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))  # $${X} is the container's own variable
    assert used and used <= set(ENV_EXAMPLE)
    for value in ENV_EXAMPLE.values():
        if "change-me" in value or "secret" in value or "ksat-key" in value:
            assert value not in text
    assert all(s.get("env_file") == [".env"] for n, s in SERVICES.items() if n.startswith("airflow-"))
    init = (ROOT / "docker" / "init.sh").read_text()
    assert set(re.findall(r"\$\{(\w+)\}", init)) <= set(ENV_EXAMPLE)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_image_extends_the_official_airflow_3_image_with_the_locked_set():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_VERSION=3\.\d+\.\d+$", dockerfile, re.MULTILINE)
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python3.11" in dockerfile
    assert "uv export --frozen --no-dev" in dockerfile
    lock_airflow = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text())
    assert lock_airflow and f"AIRFLOW_VERSION={lock_airflow.group(1)}" in dockerfile


def test_the_shell_scripts_parse():
    for script in (ROOT / "docker").glob("*.sh"):
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0, script


def test_init_creates_the_connections_and_one_pool_per_tenant(tmp_path):
    """Run docker/init.sh with a recording stand-in for the ``airflow`` command and the real
    ``securitycoach`` CLI over a two-tenant file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "airflow").write_text(f'#!/bin/bash\nprintf "%s|" "$@" >> {calls}\necho >> {calls}\n'
                                     f'echo "$1 ${{AIRFLOW__CORE__LAZY_LOAD_PLUGINS:-lazy}}" >> {calls}.plugins\n')
    (bin_dir / "airflow").chmod(0o755)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"version": 1, "tenants": [
        {"name": "default", "code42_tenant_uid": "41a617d1-b5bb-4fb2-a12e-1c7d362780bc",
         "code42_conn_id": "code42_default", "knowbe4_conn_id": "knowbe4_default"},
        {"name": "acme", "code42_tenant_uid": "0b6f3c2e-9d1a-4e57-8a2b-5c7d9e1f3a4b", "code42_conn_id": "code42_acme",
         "knowbe4_conn_id": "knowbe4_acme", "pool_slots": 2, "pages_in_flight": 2},
        {"name": "old", "code42_tenant_uid": "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "code42_conn_id": "code42_old",
         "knowbe4_conn_id": "knowbe4_old", "enabled": False},
    ]}))
    venv_bin = Path(sys.executable).parent
    env = {**ENV_EXAMPLE, "PATH": f"{bin_dir}:{venv_bin}:/usr/bin:/bin", "SECURITYCOACH_TENANTS": str(tenants),
           "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "docker" / "init.sh")], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = [line.rstrip("|").split("|") for line in calls.read_text().splitlines() if line]
    pools = [line[2:] for line in lines if line[:2] == ["pools", "set"]]
    assert pools == [
        ["code42_default", "8", "Code42 pages tenant default may fetch at once (connection code42_default)"],
        ["code42_acme", "2", "Code42 pages tenant acme may fetch at once (connection code42_acme)"],
    ]
    added = [line[2] for line in lines if line[:2] == ["connections", "add"]]
    assert added == ["code42_default", "knowbe4_default", "securitycoach_warehouse", "securitycoach_chat_webhook",
                     "securitycoach_slack", "securitycoach_smtp"]
    assert lines[0] == ["db", "migrate"]
    # the connections are added with the project's plugin loaded (it stores the Base URL's port)
    assert {line for line in (tmp_path / "calls.plugins").read_text().splitlines() if line.startswith("connections")} \
        == {"connections False"}

    tenants.write_text(tenants.read_text().replace("pool_slots: 2", "pool_slots: lots"))
    failed = subprocess.run(["bash", str(ROOT / "docker" / "init.sh")], env=env, capture_output=True, text=True,
                            check=False)
    assert failed.returncode != 0
    assert f"{tenants}: tenant 2 ('acme'): pool_slots: Input should be a valid integer" in failed.stderr


def _imported_top_level(folders: list[str]) -> set[str]:
    import ast

    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_every_imported_package_is_declared_and_every_declared_one_imported():
    """What the product's code imports (plugins, DAGs, the sandbox) is what pyproject declares (the
    sandbox's own packages in the ``sandbox`` extra), no more: nothing arrives only because Airflow
    happens to bring it, and nothing is declared for nothing."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(Requirement(r).name) for r in [*project["dependencies"],
                                                      *project["optional-dependencies"]["sandbox"]]}
    ours = {"code42_hook", "knowbe4_hook", "operators", "securitycoach", "securitycoach_view", "incydr_sandbox",
            "apiclient"}
    by_module = md.packages_distributions()
    used = set()
    # airflow.* is one namespace over apache-airflow and every provider: providers are matched below
    for name in _imported_top_level(["plugins", "dags", "sandbox"]) - ours - {"airflow"} - set(sys.stdlib_module_names):
        distributions = {norm(d) for d in by_module.get(name, [])}
        assert distributions, f"{name} is imported but no installed distribution provides it"
        used |= distributions
    used |= {"apache-airflow", *(f"apache-airflow-providers-{m.replace('.', '-')}" for m in _provider_modules())}
    assert sorted(used - declared) == []  # imported, not declared
    # providers-postgres: imported by nothing, it registers the ``postgres`` connection type the
    # warehouse connection uses (its form in the UI, ``airflow connections add --conn-type postgres``)
    assert sorted(declared - used) == ["apache-airflow-providers-postgres"]  # declared, imported by nothing


def _provider_modules() -> set[str]:
    import ast

    found = set()
    for folder in ("plugins", "dags"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if module and module.startswith("airflow.providers."):
                    found.add(".".join(module.split(".")[2:4]) if module.split(".")[2] == "common"
                              else module.split(".")[2])
    return found

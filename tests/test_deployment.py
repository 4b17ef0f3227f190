"""docker-compose.yaml and the Dockerfile, checked without a Docker engine: the file against the
Compose Specification's JSON schema, the services Airflow 3 users expect (and the celery profile),
healthchecks, commands, one image build, the volumes tasks write to, the admin user and the required
Fernet key, every Airflow setting a real option, every referenced file there, and secrets from the
env file, never from the YAML. docker/init.sh runs for real with a stand-in ``airflow`` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
CELERY = ("redis", "airflow-worker")
LONG_RUNNING = ("postgres", "sandbox", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer", *CELERY)
AIRFLOW = [name for name in SERVICES if name.startswith("airflow-")]
IMAGE = "securitycoach-airflow:latest"
ENV_EXAMPLE = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
FERNET_HOWTO = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
# ${VAR}, ${VAR:-default}, ${VAR-default}; not $${VAR}, the container's own variable
VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(?::?-([^}]*))?\}")


def _resolved(value: str, env: dict[str, str]) -> str:
    """``value`` after compose's ${VAR} / ${VAR:-default} interpolation from ``env``."""
    return VARIABLE.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", value)


def test_the_compose_file_is_valid_by_the_compose_specification_schema(tmp_path):
    """check-jsonschema's vendored copy of the Compose Specification's schema (what `docker compose
    config` validates against): unknown keys, wrong types and bad values fail here."""
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    profiles: [celery]", "    profile: [celery]", 1))
    bad = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(broken)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "'profile' was unexpected" in bad.stdout  # the check can fail


def test_the_services_of_an_airflow_3_deployment_are_there():
    assert set(SERVICES) == {*LONG_RUNNING, "airflow-init"}
    commands = {name: SERVICES[name].get("command") for name in SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    assert commands["sandbox"][0] == "incydr-sandbox" and "--smtp-port" in commands["sandbox"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert {name for name, s in SERVICES.items() if s.get("image") == IMAGE} == {*AIRFLOW, "sandbox"}


def test_one_image_build_that_every_other_service_of_the_image_reuses():
    """Only airflow-init builds the image (always: pull_policy build, so a code change is in the next
    `up`); every other service of that image names it and never pulls it (it is on no registry).
    Compose builds before it creates any container, so the sandbox, started first, has it too."""
    users = {name: s for name, s in SERVICES.items() if s.get("image") == IMAGE}
    assert [name for name, s in users.items() if "build" in s] == ["airflow-init"]
    assert users["airflow-init"]["build"] == "." and users["airflow-init"]["pull_policy"] == "build"
    assert {name: s["pull_policy"] for name, s in users.items() if name != "airflow-init"} == {
        name: "never" for name in users if name != "airflow-init"}
    # every long-running Airflow service waits for the init (and so for its image and migrations)
    assert all("airflow-init" in SERVICES[name]["depends_on"] for name in AIRFLOW if name != "airflow-init")


def test_the_celery_profile_adds_redis_and_a_worker_beside_the_local_executor_default():
    for name in CELERY:
        assert SERVICES[name]["profiles"] == ["celery"]
    assert all("profiles" not in s for name, s in SERVICES.items() if name not in CELERY)
    # a service of the default profile may wait for redis only as optional (else `up` without the
    # profile fails on a service it cannot start)
    for name, service in SERVICES.items():
        if name not in CELERY:
            for dependency, how in service.get("depends_on", {}).items():
                assert dependency not in CELERY or how.get("required") is False, (name, dependency)
    assert SERVICES["airflow-scheduler"]["depends_on"]["redis"] == {"condition": "service_healthy",
                                                                    "required": False}
    worker = SERVICES["airflow-worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown, as in Airflow's own file
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert _resolved(env["AIRFLOW__CORE__EXECUTOR"], {}) == "LocalExecutor"
    assert _resolved(env["AIRFLOW__CORE__EXECUTOR"], {"AIRFLOW_EXECUTOR": "CeleryExecutor"}) == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://airflow:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].endswith("@postgres/airflow")
    assert all(SERVICES[name]["environment"] == env for name in AIRFLOW if name != "airflow-worker")
    # the worker's healthcheck pings its own Celery node through the provider's app, which the
    # locked set (so the image) has
    check = " ".join(worker["healthcheck"]["test"])
    app = re.search(r"celery --app (\S+)\.app inspect ping -d \"celery@\$\$\{HOSTNAME\}\"", check)
    assert app, check
    done = subprocess.run([sys.executable, "-c", f"import {app.group(1)} as m; print(m.app.conf.broker_url)"],
                          env={**os.environ, "AIRFLOW__CELERY__BROKER_URL": env["AIRFLOW__CELERY__BROKER_URL"]},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.split()[-1] == "redis://redis:6379/0", done.stderr[-2000:]
    assert 'name = "apache-airflow-providers-celery"' in (ROOT / "uv.lock").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up" in readme
    assert "AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up" in COMPOSE_FILE.read_text()


def test_every_airflow_setting_in_the_compose_file_is_a_real_option():
    """Each AIRFLOW__SECTION__KEY is an option Airflow (core or an installed provider) documents: a
    misspelt one would be silently ignored."""
    names = sorted({key for name in AIRFLOW for key in SERVICES[name]["environment"] if key.startswith("AIRFLOW__")})
    code = ("import json, sys\nfrom airflow.configuration import conf\nd = conf.configuration_description\n"
            "print(json.dumps([n for n in sys.argv[1:] if n.split('__')[2].lower() not in "
            "d.get(n.split('__')[1].lower(), {}).get('options', {})]))")
    done = subprocess.run([sys.executable, "-c", code, *names, "AIRFLOW__CORE__NOT_AN_OPTION"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == ["AIRFLOW__CORE__NOT_AN_OPTION"]
    assert len(names) > 10


def test_task_logs_reports_and_uploads_are_host_folders_where_the_code_writes_them():
    """The bind mounts' targets are the folders the code uses under the compose environment: Airflow's
    task logs (read back by the api-server), data/reports (the report DAGs) and data/uploads (the
    only folder the mapping-upload DAG reads): each Airflow service has all three."""
    from securitycoach import paths

    env = SERVICES["airflow-scheduler"]["environment"]
    home = re.search(r"\bSECURITYCOACH_HOME=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)  # the image's
    with pytest.MonkeyPatch.context() as mp:
        for key in ("SECURITYCOACH_HOME", "SECURITYCOACH_DATA_DIR", "SECURITYCOACH_UPLOAD_DIR"):
            mp.delenv(key, raising=False)
        mp.setenv("SECURITYCOACH_HOME", home)
        for key in ("SECURITYCOACH_DATA_DIR", "SECURITYCOACH_UPLOAD_DIR"):
            mp.setenv(key, env[key])
        expected = {"./logs": env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "./data/reports": str(paths.data_dir() / "reports"),
                    "./data/uploads": str(paths.upload_dir())}
    assert expected == {"./logs": "/opt/airflow/logs", "./data/reports": "/opt/securitycoach/data/reports",
                        "./data/uploads": "/opt/securitycoach/data/uploads"}
    for name in AIRFLOW:
        mounts = dict(v.split(":")[:2] for v in SERVICES[name]["volumes"])
        assert {source: mounts.get(source) for source in expected} == expected, name
    assert "./data/uploads" in (ROOT / "README.md").read_text()


def test_every_airflow_service_of_the_host_shares_one_code42_throttle_folder():
    """The file throttle's schedule on one named volume: LocalExecutor's scheduler, each scaled
    airflow-worker and the api-server's connection test draw from one Code42 budget on this host."""
    from apiclient.throttle import throttle_dir

    env = SERVICES["airflow-scheduler"]["environment"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODE42_THROTTLE_DIR", env["CODE42_THROTTLE_DIR"])
        folder = str(throttle_dir())
    for name in AIRFLOW:
        mounts = dict(v.split(":")[:2] for v in SERVICES[name]["volumes"])
        assert mounts.get("code42-throttle") == folder, name
    assert "code42-throttle" in COMPOSE["volumes"]


def test_the_admin_user_and_its_password_file_come_from_the_env_file():
    env = SERVICES["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "${AIRFLOW_ADMIN_USER}:admin"
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    for name in ("airflow-init", "airflow-apiserver"):  # written by the one, read by the other
        volumes = dict(v.split(":")[:2] for v in SERVICES[name]["volumes"])
        assert str(Path(passwords).parent) in {target for source, target in volumes.items()
                                               if source in COMPOSE["volumes"]}, name
    assert ENV_EXAMPLE["AIRFLOW_ADMIN_USER"] == "admin" and "change-me" in ENV_EXAMPLE["AIRFLOW_ADMIN_PASSWORD"]


def test_every_airflow_service_gets_the_fernet_key_which_the_env_file_says_how_to_make():
    for name in AIRFLOW:
        assert SERVICES[name]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "${FERNET_KEY}", name
    assert ENV_EXAMPLE["FERNET_KEY"] == ""  # each deployment makes its own; init refuses an empty one
    example = (ROOT / ".env.example").read_text()
    assert f"#   {FERNET_HOWTO}\nFERNET_KEY=\n" in example
    assert "AIRFLOW__CORE__FERNET_KEY" not in example  # one name for it in .env: FERNET_KEY


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
            if volume.startswith("./") and volume.endswith(":ro"):  # the writable ones are the host's folders
                referenced.append(ROOT / volume.split(":")[0])
    referenced += [ROOT / "docker" / Path(c[0]).name for s in SERVICES.values() for c in [s.get("command")]
                   if isinstance(c, list) and c and str(c[0]).startswith("/opt/securitycoach/docker/")]
    for copied in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.MULTILINE):
        referenced += [ROOT / part for part in copied.split()]
    missing = [str(p.relative_to(ROOT)) for p in referenced if not p.exists()]
    assert not missing
    assert len(referenced) > 10


def test_secrets_come_from_the_env_file_not_the_yaml():
    text = COMPOSE_FILE.read_text()
    used = {m.group(1) for m in VARIABLE.finditer(text)}  # every variable the file reads is in .env.example
    assert {"FERNET_KEY", "AIRFLOW_EXECUTOR", "AIRFLOW_UID", "AIRFLOW_ADMIN_USER"} <= used <= set(ENV_EXAMPLE)
    for value in ENV_EXAMPLE.values():
        if "change-me" in value or "secret" in value or "ksat-key" in value:
            assert value not in text
    assert all(s.get("env_file") == [".env"] for n, s in SERVICES.items() if n.startswith("airflow-"))
    init = (ROOT / "docker" / "init.sh").read_text()
    compose_env = set(SERVICES["airflow-init"]["environment"]) | {"AIRFLOW_HOME"}  # the image's own
    assert set(re.findall(r"\$\{([A-Z]\w*)", init)) <= set(ENV_EXAMPLE) | compose_env  # lower case: the script's own
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


def _init_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment airflow-init gets from compose and .env.example (its folders moved under
    ``tmp_path``), with a generated Fernet key and a recording stand-in for ``airflow`` on PATH."""
    from cryptography.fernet import Fernet

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "airflow").write_text(f'#!/bin/bash\nprintf "%s|" "$@" >> {tmp_path / "calls"}\n'
                                     f'echo >> {tmp_path / "calls"}\n'
                                     f'echo "$1 ${{AIRFLOW__CORE__LAZY_LOAD_PLUGINS:-lazy}}" >> {tmp_path / "calls"}.plugins\n')
    (bin_dir / "airflow").chmod(0o755)
    env = {**ENV_EXAMPLE, "FERNET_KEY": Fernet.generate_key().decode()}
    compose_env = {key: _resolved(str(value), env) for key, value in SERVICES["airflow-init"]["environment"].items()}
    moved = {key: str(tmp_path / value.lstrip("/")) for key, value in compose_env.items() if value.startswith("/opt/")}
    return {**env, **compose_env, **moved, "AIRFLOW_HOME": str(tmp_path / "opt" / "airflow"),
            "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), **overrides}


def _run_init(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "docker" / "init.sh")], env=env, capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"AIRFLOW__CORE__FERNET_KEY": ""}, f"airflow-init: FERNET_KEY is empty in .env: make one with {FERNET_HOWTO}"),
    ({"AIRFLOW__CORE__FERNET_KEY": "not-a-key-but-a-secret"},
     ("airflow-init: FERNET_KEY in .env is not a Fernet key (Fernet key must be 32 url-safe base64-encoded "
     f"bytes.): make one with {FERNET_HOWTO}")),
    ({"AIRFLOW_ADMIN_PASSWORD": ""}, ("airflow-init: AIRFLOW_ADMIN_PASSWORD is empty in .env: set the password of "
                                     "the Airflow admin user")),
])
def test_init_refuses_to_start_without_a_fernet_key_or_an_admin_password(tmp_path, overrides, message):
    """As copied from .env.example (FERNET_KEY empty), with a key that is not one, or without the
    admin's password: one line saying what to do, and no Airflow command run."""
    done = _run_init(_init_env(tmp_path, **overrides))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [message]
    assert "not-a-key-but-a-secret" not in done.stderr + done.stdout
    assert not (tmp_path / "calls").exists()
    compose_as_copied = {key: _resolved(str(value), ENV_EXAMPLE)
                         for key, value in SERVICES["airflow-init"]["environment"].items()}
    assert compose_as_copied["AIRFLOW__CORE__FERNET_KEY"] == ""  # .env.example as is: refused


def test_init_creates_the_connections_and_one_pool_per_tenant(tmp_path):
    """Run docker/init.sh with a recording stand-in for the ``airflow`` command and the real
    ``securitycoach`` CLI over a two-tenant file; it writes the admin's password file and, run as
    root (as compose runs it), gives the mounted folders to AIRFLOW_UID."""
    calls = tmp_path / "calls"
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"version": 1, "tenants": [
        {"name": "default", "code42_tenant_uid": "41a617d1-b5bb-4fb2-a12e-1c7d362780bc",
         "code42_conn_id": "code42_default", "knowbe4_conn_id": "knowbe4_default"},
        {"name": "acme", "code42_tenant_uid": "0b6f3c2e-9d1a-4e57-8a2b-5c7d9e1f3a4b", "code42_conn_id": "code42_acme",
         "knowbe4_conn_id": "knowbe4_acme", "pool_slots": 2, "pages_in_flight": 2},
        {"name": "old", "code42_tenant_uid": "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "code42_conn_id": "code42_old",
         "knowbe4_conn_id": "knowbe4_old", "enabled": False},
    ]}))
    env = _init_env(tmp_path, SECURITYCOACH_TENANTS=str(tenants), AIRFLOW_UID="4242",
                    AIRFLOW_ADMIN_PASSWORD="pw \" with ' quotes")
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert passwords.is_relative_to(tmp_path)
    passwords.parent.mkdir(parents=True)
    passwords.write_text('{"viewer": "generated-by-the-api-server", "admin": "the old one"}')
    done = _run_init(env)
    assert done.returncode == 0, done.stderr
    assert json.loads(passwords.read_text()) == {"viewer": "generated-by-the-api-server",
                                                 "admin": "pw \" with ' quotes"}
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert "pw \"" not in done.stdout + done.stderr
    folders = [Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]), Path(env["SECURITYCOACH_DATA_DIR"]) / "reports",
               Path(env["SECURITYCOACH_UPLOAD_DIR"]), passwords.parent, Path(env["CODE42_THROTTLE_DIR"])]
    assert all(f.is_dir() and f.is_relative_to(tmp_path) for f in folders)
    if os.getuid() == 0:
        assert {(f.stat().st_uid, f.stat().st_gid) for f in [*folders, passwords]} == {(4242, 0)}
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
    failed = _run_init(env)
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
    # providers-celery: imported by nothing either, it is the CeleryExecutor of the compose file's
    # celery profile (`airflow celery worker`, AIRFLOW__CORE__EXECUTOR=CeleryExecutor)
    assert sorted(declared - used) == ["apache-airflow-providers-celery",
                                       "apache-airflow-providers-postgres"]  # declared, imported by nothing


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

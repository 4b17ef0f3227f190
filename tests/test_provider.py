"""The project registers itself as an Airflow provider: `code42` connection type, labelled form
fields, and `airflow connections test` running the hook's "Authorize"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def test_provider_offers_the_code42_connection_form():
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = ProvidersManager()
        assert "incydr-securitycoach" in manager.providers
        hook = manager.hooks.get("code42")
    assert hook.hook_class_name == "code42_hook.hook.Code42Hook" and hook.connection_testable
    behaviour = manager.field_behaviours["code42"]
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client Secret", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://api.us.code42.com"
    listed = subprocess.run([AIRFLOW, "providers", "list"], capture_output=True, text=True, check=True).stdout
    assert "incydr-securitycoach" in listed


def test_airflow_connections_test_is_authorize(airflow_db, clean_sandbox):
    results = {}
    for client in ("sandbox-client", "sandbox-no-sessions"):
        env = dict(os.environ, AIRFLOW_CONN_CODE42_DEFAULT=json.dumps({
            "conn_type": "code42", "login": client, "password": clean_sandbox.client_secret,
            "host": clean_sandbox.base_url}))
        run = subprocess.run([AIRFLOW, "connections", "test", "code42_default"], check=False, env=env,
                             capture_output=True,
                             text=True, timeout=120)
        results[client] = (run.returncode, run.stdout)
    assert results["sandbox-client"][0] == 0 and "Connection success" in results["sandbox-client"][1]
    assert results["sandbox-no-sessions"][0] != 0
    assert 'needs Read on "Alerts and Sessions"' in results["sandbox-no-sessions"][1]
    assert clean_sandbox.client_secret not in results["sandbox-client"][1] + results["sandbox-no-sessions"][1]

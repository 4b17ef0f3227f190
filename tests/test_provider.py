"""The project registers itself as an Airflow provider: `code42` connection type, labelled form
fields, and `airflow connections test` running the hook's "Authorize"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from apiclient.errors import ConfigError
from apiclient.settings import ApiSettings
from code42_hook.connection_port import base_url_port
from code42_hook.provider_info import RATE_LIMITS
from knowbe4_hook.settings import EventsSettings

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


def _form_fields() -> dict[str, dict]:
    """Each connection type's typed extra fields as the api-server hands them to the UI's form."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {m.connection_type: m.extra_fields for m in HookMetaService.hook_meta_data()
                if m.connection_type in RATE_LIMITS}


def test_the_form_fields_and_the_validation_are_one_table():
    forms = _form_fields()
    assert set(forms) == {"code42", "knowbe4", "knowbe4_events"}
    for conn_type, form in forms.items():
        tables = (ApiSettings, EventsSettings) if conn_type == "knowbe4_events" else (ApiSettings,)
        assert set(form) == set().union(*(t.names() for t in tables)), conn_type
        # what the untouched form saves is what the hook uses when the extra is empty
        saved = {name: widget["value"] for name, widget in form.items()}
        defaults = {"rate_limit_per_minute": RATE_LIMITS[conn_type]}
        assert ApiSettings.from_extra("c", saved, besides=tables, **defaults) == ApiSettings(**defaults)
        assert form["rate_limit_per_minute"]["value"] == RATE_LIMITS[conn_type]
        for s in (s for table in tables for s in table.settings()):
            schema = form[s.name]["schema"]
            assert schema["title"] == s.label and form[s.name]["description"] == s.description
            assert schema["type"] == ({bool: "boolean", int: "integer", float: "number"}[s.kind]
                                      if not s.optional else [{int: "integer", str: "string"}[s.kind], "null"])
            if "minimum" in schema:  # the form's bound is the hook's bound
                table = next(t for t in tables if s.name in t.names())
                table.from_extra("c", {s.name: schema["minimum"]}, besides=tables)
                with pytest.raises(ConfigError, match=f"extra {s.name}=.* must be at least"):
                    below = schema["minimum"] - (1 if s.kind is int else 0.0005)
                    table.from_extra("c", {s.name: below}, besides=tables)
    assert "minimum" not in forms["code42"]["verify"]["schema"]
    assert forms["knowbe4_events"]["seats"]["value"] is None  # empty: ask the Reporting API


@pytest.mark.parametrize(("extra", "problem"), [
    ({"max_retries": 2.5}, "extra max_retries=2.5 is not an integer"),
    ({"max_retries": True}, "extra max_retries=True is not an integer"),
    ({"verify": "yes"}, "extra verify='yes' is not a boolean (true or false)"),
    ({"read_timeout": "nan"}, "extra read_timeout='nan' is not a number"),
    ({"pages_in_flight": 0}, "extra pages_in_flight=0 must be at least 1"),
    ({"seats": 7}, "unknown extra field(s) ['seats']"),
])
def test_a_bad_extra_fails_in_one_line_naming_the_connection(extra, problem):
    with pytest.raises(ConfigError) as refused:
        ApiSettings.from_extra("code42_acme", extra)
    assert str(refused.value).startswith("connection 'code42_acme': ") and problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_what_the_form_writes_is_read_as_typed():
    got = ApiSettings.from_extra("c", {"max_retries": 2.0, "verify": "false", "read_timeout": None,
                                       "connect_timeout": "5"}, rate_limit_per_minute=180.0)
    assert got == ApiSettings(rate_limit_per_minute=180.0, max_retries=2, verify=False, connect_timeout=5.0)
    events = EventsSettings.from_extra("c", {"seats": None, "max_retry_wait": 0})
    assert events == EventsSettings(seats=None, max_retry_wait=0.0)


@pytest.mark.parametrize(("host", "port"), [
    ("http://127.0.0.1:8123", 8123), ("https://api.us.code42.com", 443), ("api.ie.code42.com", 443),
    ("http://localhost", 80), ("https://api.us.code42.com:8443/", 8443), ("", None), (None, None),
    ("ftp://example.com", None), ("http://127.0.0.1:99999", None),
])
def test_the_base_url_port(host, port):
    assert base_url_port(host) == port


def test_saving_a_connection_stores_its_base_url_port(airflow_db):
    from airflow import plugins_manager
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    plugins_manager.ensure_plugins_loaded()  # as the api-server does: the entry point registers it
    assert "securitycoach_connection_port" in [p.name for p in plugins_manager._get_plugins()[0]]
    ids = [f"port_{name}" for name in ("code42", "events", "http")]
    try:
        with create_session() as session:
            session.add(Connection(conn_id=ids[0], conn_type="code42", host="http://127.0.0.1:8123"))
            session.add(Connection(conn_id=ids[1], conn_type="knowbe4_events", host="api.events.knowbe4.com",
                                   port=1))
            session.add(Connection(conn_id=ids[2], conn_type="http", host="http://127.0.0.1:8123"))
        with create_session() as session:
            stored = {c.conn_id: c for c in session.query(Connection).filter(Connection.conn_id.in_(ids))}
            assert [stored[i].port for i in ids] == [8123, 443, None]  # other types are left alone
            stored[ids[0]].host = "https://api.us.code42.com"
        with create_session() as session:
            assert session.query(Connection).filter_by(conn_id=ids[0]).one().port == 443
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id.in_(ids)).delete()

"""The seed's Configure → Authorize in Airflow's own UI, in headless Chromium against a real
``airflow api-server`` with the project installed (its own AIRFLOW_HOME and SQLite metadata DB,
the simple auth manager with an admin password set here) and the sandbox.

A ``code42`` connection is created through the form (Base URL, Client ID, Client Secret, the typed
settings as form fields), saved, and tested from its row in the connections list: the page shows the
hook's own "Authorized: tenant …"; with a wrong secret saved, the hook's named failure. A
``knowbe4`` and a ``knowbe4_events`` connection are tested the same way. Screenshots: build/ui-*.png.
"""

from __future__ import annotations

import json
import os
import secrets

import pytest
import requests
from airflow_stack import free_port, start, stop, wait_healthy
from test_html_report import chromium  # noqa: F401 - a fixture

from apiclient.settings import ApiSettings
from code42_hook.provider_info import RATE_LIMITS
from conftest import ROOT, copy_metadata_db
from knowbe4_hook.settings import EventsSettings

# Measured on the loaded 2-core machine (load average ~14): db migrate + api-server start 101 s, the
# browser steps 107 s, shutdown 18 s. Its own bound, above the suite's 300 s: every wait inside is
# bounded too (db migrate 300 s, api-server health 120 s, each browser step WAIT_MS).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN_PASSWORD = secrets.token_urlsafe(12)
WAIT_MS = 120_000  # the longest one browser step may wait (Airflow's UI under load: see test_console_browser)
SHOTS = ROOT / "build"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, pristine_metadata_db):
    """``airflow api-server`` on loopback with the project installed, connection tests enabled."""
    home = tmp_path_factory.mktemp("airflow-ui")
    (home / "dags").mkdir()
    (home / "passwords.json").write_text(json.dumps({"admin": ADMIN_PASSWORD}), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": copy_metadata_db(pristine_metadata_db, home),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
    })
    process = start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
    try:
        wait_healthy(port, process, home)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
def browser_page(chromium):  # noqa: F811 - the imported fixture
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


def _log_in(page, url: str) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/auth/" not in u)


def _add_connection(page, url: str, conn_id: str, type_name: str, fields: dict[str, str], shot: str) -> str:
    """Fill the Add Connection form (standard fields by label); returns the Extra Fields section's
    text, read before saving (with the screenshot ``shot``)."""
    page.goto(f"{url}/connections")
    page.get_by_role("button", name="Add Connection").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").click(force=True)  # react-select: type the name, pick it
    page.keyboard.type(type_name)
    page.keyboard.press("Enter")
    for label, value in fields.items():
        dialog.get_by_label(label, exact=True).fill(value)
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    dialog.locator("input[name^=element_]").first.wait_for()
    extra_text = dialog.inner_text()
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    return extra_text


def _save(page) -> None:
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")


def _test_from_row(page, conn_id: str, expected: str, shot: str) -> str:
    """Press the row's Test action; the toast that holds ``expected`` (the hook's message)."""
    row = page.get_by_role("row").filter(has=page.get_by_text(conn_id, exact=True))
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_text(expected).first  # the toast's message line
    toast.wait_for()
    message = toast.inner_text()  # at once: the toast goes away after a few seconds
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    return message


def _stored(url: str, conn_id: str) -> dict:
    """The saved connection as the REST API holds it (the admin's own token)."""
    token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD},
                          timeout=30).json()["access_token"]
    answer = requests.get(f"{url}/api/v2/connections/{conn_id}", headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    assert answer.ok, answer.text
    return answer.json()


def test_authorize_from_the_connections_list(api_server, browser_page, sandbox):
    page, url, port = browser_page, api_server, int(sandbox.base_url.rsplit(":", 1)[1])
    SHOTS.mkdir(exist_ok=True)
    _log_in(page, url)

    form = _add_connection(page, url, "code42_ui", "Code42 Incydr", {
        "Base URL": sandbox.base_url, "Client ID": sandbox.client_id, "Client Secret": sandbox.client_secret,
    }, "ui-code42-form.png")
    # every transport setting is a labelled, typed form field showing its default (none is JSON)
    dialog = page.get_by_role("dialog")
    for s in ApiSettings.settings():
        assert s.label in form and s.description in form, s.name
        field = dialog.locator(f"input[name=element_{s.name}]")
        if s.kind is bool:
            assert field.get_attribute("type") == "checkbox" and field.is_checked() is s.default
        elif s.kind is str:
            assert field.input_value() == s.default, s.name
        else:
            assert float(field.input_value()) == s.default, s.name
    dialog.locator("input[name=element_max_retries]").fill("2")
    _save(page)

    stored = _stored(url, "code42_ui")
    assert stored["port"] == port  # the Base URL's port, stored by the project's plugin
    assert json.loads(stored["extra"])["max_retries"] == 2  # typed: a number, not a string

    message = _test_from_row(page, "code42_ui", "Authorized: tenant", "ui-code42-authorized.png")
    assert f"Authorized: tenant {sandbox.tenant_id};" in message
    assert sandbox.client_secret not in page.content()

    # a wrong secret, saved through the Edit form: the hook's named failure, not "Bad Request"
    row = page.get_by_role("row").filter(has=page.get_by_text("code42_ui", exact=True))
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Client Secret", exact=True).fill("not-the-secret")
    _save(page)
    message = _test_from_row(page, "code42_ui", "Bad credentials", "ui-code42-bad-secret.png")
    assert "Bad credentials: Code42 refused the Client ID / Client Secret." in message
    assert "Bad Request" not in page.inner_text("body")

    _add_connection(page, url, "knowbe4_ui", "KnowBe4 Reporting API",
                    {"Base URL": sandbox.base_url, "API Key": sandbox.ksat_key}, "ui-knowbe4-form.png")
    rate = page.get_by_role("dialog").locator("input[name=element_rate_limit_per_minute]").input_value()
    assert float(rate) == RATE_LIMITS["knowbe4"]  # the type's own default
    _save(page)
    message = _test_from_row(page, "knowbe4_ui", "KnowBe4 Reporting API reachable", "ui-knowbe4-test.png")
    assert "KnowBe4 Reporting API reachable (1 user read)." in message

    form = _add_connection(page, url, "knowbe4_events_ui", "KnowBe4 User Event API",
                           {"Base URL": sandbox.base_url, "API Key": sandbox.events_key}, "ui-events-form.png")
    for s in EventsSettings.settings():
        assert s.label in form, s.name
    assert page.get_by_role("dialog").locator("input[name=element_seats]").input_value() == ""  # ask KnowBe4
    _save(page)
    message = _test_from_row(page, "knowbe4_events_ui", "User Event API key accepted", "ui-events-test.png")
    assert "KnowBe4 User Event API key accepted" in message
    for conn_id in ("knowbe4_ui", "knowbe4_events_ui"):
        assert _stored(url, conn_id)["port"] == port

"""The SecurityCoach view inside a real Airflow api-server (the project installed, so its plugin is loaded),
behind Airflow's login: anonymous callers and forged tokens get nothing, a browser is sent to the login
page and back; in headless Chromium every page renders from the warehouse with no console errors, a
hostile actor name shows as text, nothing is loaded from elsewhere, and the nav entry in Airflow's UI
opens the view. Screenshots: build/console-*.png."""

from __future__ import annotations

import json
import os
import secrets

import pytest
import requests
from airflow_stack import free_port, start, stop, wait_healthy
from test_console import SCRIPT, view  # noqa: F401 - view is a fixture
from test_html_report import chromium, hostile  # noqa: F401 - fixtures
from test_report_views import A, B, dataset  # noqa: F401 - dataset is a fixture

from conftest import ROOT, copy_metadata_db
from securitycoach.console import CSP

pytestmark = pytest.mark.slow

PAGES = {  # path under /securitycoach -> (element id, text it must hold)
    "/": ("tenants", "tenant-a"),
    f"/t/{A}/report": ("kpi-detections", "2"),  # its default period 2026-01-31..03-01: det10 and det7
    f"/t/{A}/people": ("people", "102@tenant-a"),
    f"/t/{A}/people/102": ("timeline", "Personal Cloud or Web Upload Detected by Code42"),
    f"/t/{A}/rules": ("rules", "removable-media"),
    f"/t/{A}/campaigns": ("in-doubt", "doubt-1"),
    f"/t/{A}/unmapped": ("unmapped", "eve@a.example"),
    f"/t/{B}/people/101": ("person", SCRIPT),
}


# The longest one browser step may wait. Airflow's single-page app (its login page, its nav) is
# megabytes of script: on the 2-core machine, with a scheduler test in the other xdist worker, a
# step of it took more than 30 s once.
UI_WAIT_MS = 120_000


@pytest.fixture
def api_server(view, tmp_path, pristine_metadata_db):  # noqa: F811 - the imported fixture
    """An api-server with the project's plugins, the simple auth manager (user admin, a fresh password)
    and the view's warehouse as the warehouse connection; yields its base URL and the password."""
    port, home = free_port(), tmp_path / "airflow"
    home.mkdir()
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}), encoding="utf-8")
    (tmp_path / "dags").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": copy_metadata_db(pristine_metadata_db, home),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": view.url.database}),
        "SECURITYCOACH_DATA_DIR": str(tmp_path / "data"),
    })
    process = start(env, home, "api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
    try:
        wait_healthy(port, process, home)
        yield f"http://127.0.0.1:{port}", password
    finally:
        stop(process)


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_view_needs_airflow_login(api_server):
    base, password = api_server
    url = f"{base}/securitycoach/t/{A}/people"
    anonymous = requests.get(url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=30)
    assert anonymous.status_code == 401 and "@tenant-a" not in anonymous.text
    forged = requests.get(url, headers={"Authorization": "Bearer e30.e30.x"}, timeout=30)
    assert forged.status_code == 403 and "@tenant-a" not in forged.text
    browser = requests.get(url, headers={"Accept": "text/html"}, allow_redirects=False, timeout=30)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/auth/login?next=%2Fsecuritycoach%2Ft%2Ftenant-a%2Fpeople"

    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                          timeout=30).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    page = requests.get(url, headers=auth, timeout=30)
    assert page.status_code == 200 and "102@tenant-a" in page.text
    assert page.headers["content-security-policy"] == CSP and page.headers["cache-control"] == "no-store"
    january = requests.get(f"{base}/securitycoach/t/{A}/report?start=2026-01-01&end=2026-01-31", headers=auth,
                           timeout=30)
    assert january.status_code == 200 and 'id="kpi-detections">8<' in january.text
    backwards = requests.get(f"{base}/securitycoach/t/{A}/report?start=2026-02-01&end=2026-01-01", headers=auth,
                             timeout=30)
    assert backwards.status_code == 400 and "before it starts" in backwards.text
    unknown = requests.get(f"{base}/securitycoach/t/tenant-x/rules", headers=auth, timeout=30)
    assert unknown.status_code == 404 and "no tenant &#39;tenant-x&#39; (it holds: tenant-a, tenant-b)" in unknown.text
    plugins = requests.get(f"{base}/api/v2/plugins", headers=auth, timeout=30).json()["plugins"]
    views = [v for p in plugins if p["name"] == "securitycoach_view" for v in p["external_views"]]
    assert [(v["name"], v["href"], v["destination"]) for v in views] == [("SecurityCoach", "/securitycoach/", "nav")]


def open_nav_entry(page, base: str, shots, tries: int = 4) -> None:
    """From Airflow's home page, click the SecurityCoach entry of its nav until the entry's page is
    open. Twice in `make test` runs under xdist (2026-12-02, a scheduler test in the other worker) a
    click went nowhere, the URL left at the home page for minutes; the cause is not known (the app
    still rendering is the guess). A miss keeps a screenshot (build/console-nav-miss-N.png) and
    loads the home page again before the next click."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, tries + 1):
        page.goto(f"{base}/")
        page.get_by_role("link", name="SecurityCoach").first.click()
        try:
            page.wait_for_url("**/plugin/securitycoach", wait_until="commit", timeout=30_000)
            return
        except PlaywrightTimeout:
            page.screenshot(path=str(shots / f"console-nav-miss-{attempt}.png"), full_page=True)
    raise AssertionError(f"the SecurityCoach nav entry did not open its page in {tries} tries: at {page.url}")


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_view_in_headless_chromium(api_server, chromium):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, password = api_server
    shots = ROOT / "build"
    shots.mkdir(exist_ok=True)
    problems, dialogs, elsewhere, seen = [], [], [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(UI_WAIT_MS)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            ours = f"{base}/securitycoach"
            # what the view's pages (also inside Airflow's iframe) load from anywhere but the view itself
            # (navigations away, as to Airflow's home page below, are not loads)
            page.on("request", lambda r: elsewhere.append(r.url) if r.frame.url.startswith(ours)
                    and not r.url.startswith(ours) and not r.is_navigation_request() else None)
            # not logged in: Airflow's login page, then back to the page asked for
            page.goto(f"{base}/securitycoach/t/{A}/people")
            page.wait_for_url("**/auth/login**")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/securitycoach/t/{A}/people")

            # the view's own pages (Airflow's UI warns about its own iframe's sandbox attributes)
            page.on("console", lambda m: problems.append(f"{page.url} console {m.type}: {m.text}")
                    if m.type in ("error", "warning") and page.url.startswith(ours) else None)
            page.on("pageerror", lambda e: problems.append(f"{page.url} page error: {e}")
                    if page.url.startswith(ours) else None)
            for path, (element, _) in PAGES.items():
                page.goto(f"{base}/securitycoach{path}", wait_until="load")
                seen[path] = page.inner_text(f"#{element}")
                name = path.strip("/").replace("/", "-").replace("tenant-", "") or "tenants"
                page.screenshot(path=str(shots / f"console-{name}.png"), full_page=True)
            hostile_html = page.inner_html("#person")

            # Airflow's own UI: the nav entry opens the view inside it
            open_nav_entry(page, base, shots)
            frame = page.frame_locator("iframe").first
            inside = frame.locator("#tenants").inner_text()
            page.screenshot(path=str(shots / "console-in-airflow.png"), full_page=True)
        finally:
            browser.close()
    assert problems == [] and dialogs == []
    assert elsewhere == []
    for path, (element, expected) in PAGES.items():
        assert expected in seen[path], (path, element, seen[path][:500])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    assert "tenant-a" in inside and "tenant-b" in inside

"""The per-tenant HTML report: figures from a small fixed dataset, tenant filter, escaping of hostile
API strings, the CLI, and the page in real headless Chromium.

The dataset is the rpt_* views' fixed dataset (tests/test_report_views.py) plus hostile names; the
expected figures are worked out by hand from its rows (comments show the working).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from test_report_views import RM, A, B, dataset, ts  # noqa: F401 - dataset is a fixture

from conftest import ROOT
from securitycoach.html_report import Period, ReportError, resolve_period, write_tenant_report
from securitycoach.warehouse import schema as t

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
FORMULA = "=cmd|' /C calc'!A0"
QUOTES = "O'Brien \"the quoter\" & <b>co</b>"


@pytest.fixture
def hostile(dataset):  # noqa: F811
    """Tenant B with API strings built to break HTML, spreadsheets and charts: its actor b1 is already
    named SCRIPT; add a rule, a campaign, a group and a second actor with hostile names, and audit rows."""
    with dataset.begin() as conn:
        conn.execute(t.detection_rule.update().where(t.detection_rule.c.tenant_id == B,
                                                     t.detection_rule.c.rule_key == RM)
                     .values(name=f"{SCRIPT} {FORMULA}"))
        conn.execute(t.ksat_group.update().where(t.ksat_group.c.tenant_id == B).values(name=QUOTES))
        conn.execute(t.delivery.update().where(t.delivery.c.tenant_id == B).values(campaign=FORMULA))
        conn.execute(t.code42_actor.update().where(t.code42_actor.c.tenant_id == B,
                                                   t.code42_actor.c.actor_id == "b2").values(name=QUOTES))
        conn.execute(t.sync_audit.insert(), [
            {"tenant_id": tn, "dag_id": "code42_sync", "run_id": f"r{i}-{tn}", "interval_start": ts(start),
             "interval_end": ts(end), "sessions_from": ts(start), "pages": 1, "items": 5, "requests": req,
             "retries": retries, "n_429": n429, "n_5xx": 0, "rows_changed": 3, "seconds": 1.5,
             "finished_at": ts(end)}
            for i, (tn, start, end, req, retries, n429) in enumerate([
                (A, "2026-02-28 22:00", "2026-02-28 23:00", 10, 1, 2),
                (A, "2026-03-01 22:00", "2026-03-01 23:00", 7, 3, 4),
                (A, "2025-12-01 00:00", "2025-12-01 01:00", 99, 99, 99),   # before the period
                (B, "2026-03-01 23:00", "2026-03-02 00:00", 500, 500, 500),  # other tenant
            ])])
    return dataset


class _Page(HTMLParser):
    """Text nodes (with the table/element they are in) and attribute values of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._ids: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        self.attributes += [v for _, v in attrs if v]
        if tag == "table":
            self._table = dict(attrs).get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def body(page: _Page, table: str) -> list[list[str]]:
    return page.tables[table][1:]


JANUARY = ("2026-01-01", "2026-01-31")


def test_report_figures_for_one_tenant_and_period(hostile, tmp_path):
    path = write_tenant_report(hostile, A, *JANUARY, out_dir=tmp_path, now=NOW)
    assert path == tmp_path / "securitycoach_tenant-a_2026-01-01_2026-01-31.html"
    raw = path.read_text(encoding="utf-8")
    page = parse(path)
    assert "period 2026-01-01 to 2026-01-31" in " ".join("".join(page.text).split())
    # detections in January: det1 det2 det3 det4 det5 det6 det8 det9 (det7 is March, det10 February)
    assert re.search(r'id="kpi-detections">8<', raw)
    # delivered tips d1..d5 (d6 failed, d7 test mode)
    assert re.search(r'id="kpi-tips">5<', raw)
    # sessions begun in January: LOW s3 s9, MODERATE s1 s4 s5 s7, HIGH s2
    assert body(page, "severity") == [["LOW", "2"], ["MODERATE", "4"], ["HIGH", "1"]]
    # usb: d1 d2 (101) d4 (102); cloud: d3 (102) d5 (103)
    assert body(page, "top-campaigns") == [["1", "usb", "3", "2"], ["2", "cloud", "2", "2"]]
    # Engineering = 101 (d1 d2) + 102 (d3 d4); Sales = 102 (d3 d4) + 103 (d5)
    assert body(page, "top-groups") == [["1", "Engineering", "4", "2"], ["2", "Sales", "3", "2"]]
    # removable media: det1 det2 det6 (a1) det4 (a2) det9 (a4), FP: s2 s4 s7; cloud: det3 (a2) det5 det8 (a3)
    assert body(page, "rule-noise") == [
        ["Removable Media Exfiltration Detected by Code42", "5", "3", "1.7", "3", "60 %"],
        ["Personal Cloud or Web Upload Detected by Code42", "3", "2", "1.5", "0", "0 %"],
    ]
    # day rows: cloud d3 (no repeat) d5 (det8); usb d1 (det2) d2 (det6) d4 (det9 of a4 = KSAT user 102)
    assert body(page, "recidivism") == [
        ["cloud", "personal-cloud-upload", "2", "1", "50 %", "complete"],
        ["usb", "removable-media", "3", "3", "100 %", "complete"],
    ]
    risky = body(page, "risky-users")
    assert [r[1] for r in risky] == ["bob@a.example", "alice@a.example", "carol@a.example", "a4@session",
                                     "eve@a.example"]
    assert risky[0][2:6] == ["102", "11.1", "23", "4"] and risky[4][2] == "unmapped"
    assert "1 Code42 actors have no KSAT user (1 without a match, 0 ambiguous); 1 sessions and 0 alerts" in \
        " ".join(" ".join(page.text).split())
    # every chart is an inline SVG; nothing outside the file is referenced
    assert raw.count("<svg") == 4 and "<?xml" not in raw and "<!DOCTYPE svg" not in raw
    assert "Content-Security-Policy" in raw and "default-src 'none'" in raw
    assert not re.search(r"(?:src|href)=\"(?!data:|#)", raw)
    assert "<script" not in raw.lower()
    # chart labels are text in the SVG
    assert ">Removable Media Exfiltration Detected by Code42<" in raw


def test_tenant_filter_and_pipeline_health(hostile, tmp_path):
    path = write_tenant_report(hostile, A, out_dir=tmp_path, now=NOW)
    # default period: 30 days ending on A's latest data (s11, al1, det7 on 2026-03-01)
    assert path.name == "securitycoach_tenant-a_2026-01-31_2026-03-01.html"
    page = parse(path)
    raw = path.read_text(encoding="utf-8")
    assert re.search(r'id="kpi-detections">2<', raw)  # det10 (02-06), det7 (03-01)
    assert re.search(r'id="kpi-tips">0<', raw)
    health = {r[0]: r[1] for r in page.tables["pipeline-health"]}
    assert health["last successful interval"] == "2026-03-01 22:00 to 2026-03-01 23:00 UTC (code42_sync)"
    # NOW is 03-02 12:00; the label's minus sign is the report's &minus;
    assert health["lag (now − end of that interval)"] == "13 h 0 min"  # noqa: RUF001
    # runs ending in the period: A's two (not the December one, not tenant B's)
    assert health["sync runs ending in the period"] == "2"
    assert (health["retries"], health["HTTP 429 (rate limited)"], health["API requests"]) == ("4", "6", "17")
    assert health["items read / rows changed"] == "10 / 6"
    text = " ".join(page.text)
    for other in ("dan@b.example", "Finance", "alert(1)", "500", "cmd|"):
        assert other not in text, other
    # and the other way round: B's report has none of A's
    b_page = parse(write_tenant_report(hostile, B, *JANUARY, out_dir=tmp_path, now=NOW))
    b_text = " ".join(b_page.text)
    assert "bob@a.example" not in b_text and "Engineering" not in b_text
    assert body(b_page, "top-campaigns") == [["1", FORMULA, "1", "1"]]
    health = {r[0]: r[1] for r in b_page.tables["pipeline-health"]}
    assert health["sync runs ending in the period"] == "0"
    assert health["items read / rows changed"] == "0 / 0"
    assert "0 Code42 actors have no KSAT user (0 without a match, 0 ambiguous)" in " ".join(" ".join(b_page.text).split())


def test_hostile_api_strings_appear_only_as_text(hostile, tmp_path):
    path = write_tenant_report(hostile, B, *JANUARY, out_dir=tmp_path, now=NOW)
    raw = path.read_text(encoding="utf-8")
    page = parse(path)
    assert "<script" not in raw.lower() and "<b>co</b>" not in raw
    assert html.escape(SCRIPT, quote=False) in raw  # in the tables and the chart labels
    text = "\n".join(page.text)
    # the actor (risky users), the rule (chart label and noise table), the campaign, the group
    assert body(page, "risky-users")[1][1] == SCRIPT and body(page, "risky-users")[0][1] == QUOTES
    assert body(page, "rule-noise")[0][0] == f"{SCRIPT} {FORMULA}"
    assert body(page, "top-groups") == [["1", QUOTES, "1", "1"]]
    assert text.count(f"{SCRIPT} {FORMULA}") >= 2  # the noise table and the top-rules chart
    assert text.count(FORMULA) >= 4  # + campaign table, recidivism table and chart label
    for value in (SCRIPT, FORMULA, QUOTES):
        assert not any(value in attribute for attribute in page.attributes), value


RULE_ID = "<img src=x onerror=alert(2)>"
ACTOR_ID = "<svg onload=alert(3)>"


@pytest.fixture
def hostile_ids(hostile):
    """Tenant B's ids are hostile too (rule, actor and KSAT ids come from the APIs): its rule key RM and
    its actor b1 are renamed everywhere they are stored, and b1 loses its name so its id is shown."""
    with hostile.begin() as conn:
        for table in t.metadata.sorted_tables:
            for column, old, new in (("rule_key", RM, RULE_ID), ("actor_id", "b1", ACTOR_ID)):
                if column in table.c and "tenant_id" in table.c:
                    conn.execute(table.update().where(table.c.tenant_id == B, table.c[column] == old)
                                 .values({column: new}))
        conn.execute(t.code42_actor.update().where(t.code42_actor.c.tenant_id == B,
                                                   t.code42_actor.c.actor_id == ACTOR_ID).values(name=None))
        conn.execute(t.code42_session.update().where(t.code42_session.c.tenant_id == B,
                                                     t.code42_session.c.actor_id == ACTOR_ID).values(actor_name=None))
    return hostile


def test_hostile_ids_appear_only_as_text(hostile_ids, tmp_path):
    raw = write_tenant_report(hostile_ids, B, *JANUARY, out_dir=tmp_path, now=NOW).read_text(encoding="utf-8")
    page = parse(tmp_path / "securitycoach_tenant-b_2026-01-01_2026-01-31.html")
    for value in (RULE_ID, ACTOR_ID):
        assert value not in raw, value
        assert not any(value in attribute for attribute in page.attributes), value
    recidivism = body(page, "recidivism")
    assert recidivism and [row[1] for row in recidivism] == [RULE_ID] * len(recidivism)
    assert ACTOR_ID in [row[1] for row in body(page, "risky-users")]
    assert html.escape(RULE_ID, quote=False) in raw and html.escape(ACTOR_ID, quote=False) in raw


def test_period_validation(hostile):
    assert resolve_period(hostile, A, "2026-01-10") == Period(ts("2026-01-10").date(), ts("2026-03-01").date())
    assert resolve_period(hostile, "no-such-tenant", today=NOW.date()) == Period(
        ts("2026-02-01").date(), ts("2026-03-02").date())
    with pytest.raises(ReportError, match=r"ends .* before it starts"):
        resolve_period(hostile, A, "2026-02-01", "2026-01-01")
    with pytest.raises(ReportError, match="not a date"):
        resolve_period(hostile, A, "01/02/2026")


def test_cli_writes_the_report_and_prints_its_path(hostile, tmp_path, capsys, request):
    from securitycoach.cli import main

    url = hostile.url.render_as_string(hide_password=False)
    if hostile.dialect.name == "postgresql":
        url = [url, "--search-path", request.getfixturevalue("pg_schema")]
    else:
        url = [url]
    out = tmp_path / "out" / "a.html"
    assert main(["--warehouse", *url, "report", "--tenant", A, "--start", JANUARY[0], "--end", JANUARY[1],
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert re.search(r'id="kpi-tips">5<', out.read_text(encoding="utf-8"))
    assert main(["--warehouse", *url, "report", "--tenant", A, "--start", "2026-02-01", "--end", "2026-01-01"]) == 2
    assert "before it starts" in capsys.readouterr().err


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: installed with apt-get if missing (bounded by timeouts); the test is skipped,
    with the reason, only where that is impossible (no apt-get, not root, no package source)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300",
               "chromium"]
    known = subprocess.run(["apt-cache", "show", "chromium"], check=False, capture_output=True).returncode == 0
    steps = [install] if known else [["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], install]
    for step in steps:
        try:
            done = subprocess.run(step, check=False, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing Debian's chromium timed out: {' '.join(step)}")
        if done.returncode != 0:
            pytest.skip(f"cannot install Debian's chromium ({' '.join(step)} exited {done.returncode}): "
                        f"{done.stderr.strip()[-500:]}")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_report_opens_in_headless_chromium(hostile, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    path = write_tenant_report(hostile, B, *JANUARY, out_dir=tmp_path, now=NOW)
    problems, dialogs, requests = [], [], []
    screenshot = ROOT / "build" / "report-screenshot.png"
    screenshot.parent.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            text = page.inner_text("body")
            risky = page.inner_text("#risky-users")
            charts = page.locator(".chart svg").count()
            chart_text = page.inner_text("#chart-top-rules")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == [] and dialogs == []
    assert requests == [path.as_uri()]  # the file itself, nothing else
    assert SCRIPT in risky and QUOTES in risky  # shown as text
    assert f"{SCRIPT} {FORMULA}" in text
    assert charts == 4 and SCRIPT in chart_text
    assert screenshot.stat().st_size > 10_000


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_report_dag_runs_on_its_tenants_asset_and_by_hand_writes_what_its_dags_synced(hostile, airflow_db, tmp_path,
                                                                                      monkeypatch):
    """Scheduled on the default tenant's warehouse Asset only; run by hand (no asset event), it writes
    the report of each Code42 tenant the default entry's DAGs synced (sync_audit: both, here)."""
    import json

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "securitycoach_report.py"))
    assert bag.import_errors == {}
    dag = bag.get_dag("securitycoach_report")
    assets = dag.timetable.asset_condition.objects  # schedule=[the tenant's Asset]: that one asset
    assert [(a.name, a.uri) for a in assets] == [("securitycoach://warehouse/default",) * 2]
    assert [task.task_id for task in dag.topological_sort()] == ["ensure_schema", "write_reports"]
    assert dag.get_task("write_reports").dag_ids == ["code42_sync", "code42_reference"]

    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": hostile.url.database}))
    monkeypatch.setenv("SECURITYCOACH_DATA_DIR", str(tmp_path / "data"))
    run = dag.test()
    assert run.state == "success"
    reports = tmp_path / "data" / "reports"
    # one per tenant of the warehouse, each for the 30 days up to its latest data
    assert sorted(p.name for p in reports.glob("*.html")) == [
        "securitycoach_tenant-a_2026-01-31_2026-03-01.html", "securitycoach_tenant-b_2025-12-23_2026-01-21.html"]
    b = parse(reports / "securitycoach_tenant-b_2025-12-23_2026-01-21.html")
    assert body(b, "risky-users")[1][1] == SCRIPT
    assert re.search(r'id="kpi-detections">1<', (reports / "securitycoach_tenant-b_2025-12-23_2026-01-21.html")
                     .read_text(encoding="utf-8"))


def test_chart_labels_are_text_whatever_they_hold():
    from securitycoach.html_report import _barh_chart

    labels = [SCRIPT, "cost $5 or $10 \\ onload=x \\$", 'url(http://e) href="http://e"']
    svg = str(_barh_chart(labels, [1, 2, 3], "n"))
    assert svg.startswith("<svg") and "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg  # escaped by matplotlib's SVG writer
    assert ">cost $5 or $10 \\ onload=x \\$<" in svg  # mathtext off: dollars and backslash stay literal
    assert not re.search(r"<(?:script|image|a|foreignObject)\b", svg)


def test_a_long_chart_label_is_cut_to_48_characters_with_an_ellipsis():
    from securitycoach.html_report import _barh_chart

    fits, cut = "r" * 48, "rule-" + "x" * 60
    svg = str(_barh_chart([fits, cut], [1, 2], "n"))
    assert f">{fits}<" in svg  # exactly 48: shown whole
    assert f">{cut[:47]}\u2026<" in svg and cut[:48] not in svg  # longer: 47 characters and "…"

"""The SecurityCoach view: its pages from the report views' fixed dataset (figures worked out by hand from
its rows, see tests/test_report_views.py), on both warehouses; hostile API strings shown as text; unknown
tenants and people named. The view inside a real Airflow api-server, behind its login, in headless
Chromium: tests/test_console_browser.py."""

from __future__ import annotations

import re

import pytest
from test_html_report import QUOTES, SCRIPT, _Page, body, hostile  # noqa: F401 - hostile is a fixture
from test_report_views import RM, A, B, dataset, ts  # noqa: F401 - dataset is a fixture

from securitycoach import console
from securitycoach.warehouse import schema as t

NOW = ts("2026-03-02 00:00")


@pytest.fixture
def view(hostile):  # noqa: F811
    """The hostile dataset plus a tip in doubt for KSAT user 102 of tenant A."""
    with hostile.begin() as conn:
        conn.execute(t.delivery.insert().values(
            tenant_id=A, campaign="usb", rule_key=RM, subject_type="session", subject_id="s9",
            idempotency_key="doubt-1", actor_id="a4", ksat_user_id=102, recipient="102@tenant-a", channel="webhook",
            status="in_doubt", attempts=1, occurred_at=ts("2026-01-13 10:00"), created_at=NOW, due_at=NOW,
            claimed_at=ts("2026-01-13 10:30"), reason="the worker stopped"))
    return hostile


def page(html: str) -> _Page:
    parsed = _Page()
    parsed.feed(html)
    return parsed


def text(parsed: _Page) -> str:
    return " ".join("".join(parsed.text).split())


def assert_inert(html: str) -> None:
    """No script, no handler attribute, nothing loaded from elsewhere: every API string is text."""
    assert not re.search(r"<script|<img|\son\w+=", html, re.IGNORECASE), re.findall(r".{40}<script.{40}", html)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_tenants_and_navigation(view):
    html = console.tenants_page(view, base="/securitycoach")
    assert_inert(html)
    assert re.findall(r'href="(/securitycoach/t/[^"]+)"', html) == [
        "/securitycoach/t/tenant-a/report", "/securitycoach/t/tenant-b/report"]
    people = console.people_page(view, A, base="/securitycoach")
    nav = re.findall(r'<nav class="sc" id="nav">(.*?)</nav>', people, re.DOTALL)[0]
    assert re.findall(r'href="([^"]+)"', nav) == ["/securitycoach/"] + [
        f"/securitycoach/t/tenant-a/{segment}" for segment in ("report", "people", "rules", "campaigns", "unmapped")]
    assert re.findall(r'class="current">([^<]+)<', nav) == ["People"]


def test_people_and_a_timeline(view):
    html = console.people_page(view, A)
    assert_inert(html)
    # detections: 101 = det1 det2 det6 (a1); 102 = det3 det4 det7 det10 (a2) + det9 (a4); 103 = det5 det8 (a3)
    # tips: 101 = d1 d2 d6 (failed) d7 (test); 102 = d3 d4 + the tip in doubt; 103 = d5
    assert sorted(row[0:1] + row[3:5] for row in body(page(html), "people")) == [
        ["101", "3", "4"], ["102", "5", "3"], ["103", "2", "1"]]
    timeline = page(console.timeline_page(view, A, 101))
    assert timeline.tables["person"][1] == ["email", "101@tenant-a"]
    rows = body(timeline, "timeline")
    assert [(r[0], r[1], r[6]) for r in rows] == [
        ("2026-01-05T09:00:00Z", "detection", "OPEN"),       # det1 on s1
        ("2026-01-05T10:00:00Z", "tip", "test"),             # d7 (campaign test-usb sorts before usb)
        ("2026-01-05T10:00:00Z", "tip", "sent"),             # d1
        ("2026-01-06T08:00:00Z", "detection", "CLOSED_FP"),  # det2 on s2
        ("2026-01-06T09:00:00Z", "tip", "sent"),             # d2
        ("2026-01-20T10:00:00Z", "detection", "CLOSED_FP"),  # det6 on s7
        ("2026-03-02T00:00:00Z", "tip", "failed"),           # d6: never sent, so its planning time
    ]
    assert {r[2] for r in rows} == {"Removable Media Exfiltration Detected by Code42"}


def test_hostile_strings_are_text(view):
    # tenant B: actor b1 is named SCRIPT, b2 QUOTES, the rule SCRIPT + a formula, the campaign a formula
    script = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for html, shown in ((console.timeline_page(view, B, 101), script), (console.rules_page(view, B), script),
                        (console.report_page(view, B, "2026-01-01", "2026-01-31"), script),
                        (console.campaigns_page(view, B), "=cmd|&#39; /C calc&#39;!A0")):
        assert_inert(html)
        assert shown in html
    timeline = page(console.timeline_page(view, B, 101))
    assert SCRIPT in timeline.tables["person"][4][1]
    rules = body(page(console.rules_page(view, B)), "rules")
    assert [r[1] for r in rules if r[5] == "1"] == [f"{SCRIPT} =cmd|' /C calc'!A0"]


def test_rules_with_counts_and_noise(view):
    rows = {r[0]: r for r in body(page(console.rules_page(view, A)), "rules")}
    # removable media: det1 det2 det4 det6 det7 det9 on a1 a2 a4; false positives: s2 s4 s7 closed FP and
    # al1, whose session s11 is closed FP
    assert rows[RM][5:10] == ["6", "3", "2.0", "4", "67 %"]
    # personal cloud: det3 det5 det8 det10 on a2 a3, none on a session closed as false positive
    assert rows["personal-cloud-upload"][5:10] == ["4", "2", "2.0", "0", "0 %"]
    assert rows[RM][10] == "2026-03-01 10:05"


def test_campaigns_with_outbox_state_and_tips_in_doubt(view):
    parsed = page(console.campaigns_page(view, A))
    header = parsed.tables["campaigns"][0]
    assert header[4:] == ["failed", "in_doubt", "sent", "test", "all"]
    rows = {r[0]: r for r in body(parsed, "campaigns")}
    # the outbox's campaigns are not in the shipped campaigns.yaml
    assert rows["usb"][1:] == ["not in campaigns.yaml any more", "1", "1", "3", "0", "5"]
    assert rows["cloud"][1:] == ["not in campaigns.yaml any more", "0", "0", "2", "0", "2"]
    assert rows["test-usb"][-2:] == ["1", "1"]
    configured = [r for r in body(parsed, "campaigns") if r[1] != "not in campaigns.yaml any more"]
    assert configured and all(r[1] in ("yes", "no", "yes (test mode)", "no (test mode)") for r in configured)
    assert body(parsed, "in-doubt") == [
        ["usb", RM, "session s9", "102@tenant-a", "webhook", "2026-01-13 10:30:00", "1", "doubt-1"]]
    other = page(console.campaigns_page(view, B))  # the tip in doubt is tenant A's
    assert "in-doubt" not in other.tables and "No tip is in doubt." in text(other)


def test_unmapped_actors(view):
    parsed = page(console.unmapped_page(view, A))
    assert body(parsed, "unmapped") == [["a5", "eve@a.example", "no_match", "no KSAT user", "1", "0",
                                         "2026-02-10", "2026-02-10"]]
    assert "1 Code42 actors cannot be coached yet (1 with no KSAT user, 0 with more than one)" in text(parsed)


def test_live_report_is_the_html_report_with_navigation(view):
    html = console.report_page(view, A, "2026-01-01", "2026-01-31", base="/sc")
    assert re.search(r'id="kpi-detections">8<', html) and re.search(r'id="kpi-tips">5<', html)
    assert 'href="/sc/t/tenant-a/people"' in html


def test_unknown_tenant_person_and_page_are_named(view):
    with pytest.raises(console.NotFound, match=r"no tenant 'tenant-x' \(it holds: tenant-a, tenant-b\)"):
        console.people_page(view, "tenant-x")
    with pytest.raises(console.NotFound, match="tenant 'tenant-a' has no KSAT user 999"):
        console.timeline_page(view, A, 999)
    with pytest.raises(console.NotFound, match="no page 'peeple'; the pages are report, people, rules"):
        console.tenant_page(view, A, "peeple")

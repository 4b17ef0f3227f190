"""The SecurityCoach view's pages: each a function of the warehouse that returns one HTML page.

The Airflow plugin ``securitycoach_view`` serves them inside Airflow's UI, behind its login; this
module knows nothing of Airflow. Per tenant: the live report (the HTML report's sections, rendered now
from the warehouse), the people with a timeline and each person's timeline (``rpt_user_timeline``),
the detection rules with their counts and noise, the campaigns with their outbox state and the tips
in doubt, and the actors not mapped to a KSAT user. SQL lives in ``include/sql/reports/console_*.sql``;
pages are Jinja templates under ``include/templates/console/``, autoescaped, so every string that came
from an API is shown as text. Links are relative to the page, so the view works under any prefix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from securitycoach.coaching.campaigns import CampaignError, load_campaigns
from securitycoach.coaching.outbox import tip_templates
from securitycoach.detection.catalog import CatalogError, load_catalog
from securitycoach.html_report import gather, render_report, report_tenants, resolve_period
from securitycoach.paths import campaigns_path, detection_rules_path
from securitycoach.report import run_report_query, template_environment
from securitycoach.timeutil import as_utc
from securitycoach.warehouse.schema import Ts

PAGES = {  # path segment -> navigation label, in menu order
    "report": "Report",
    "people": "People",
    "rules": "Detection rules",
    "campaigns": "Campaigns",
    "unmapped": "Unmapped actors",
}
LIST_LIMIT = 500  # rows of the people and unmapped lists (the most recent / most active first)
ALL_TIME = {"start": "0001-01-01", "end": "9999-12-31"}
# Content-Security-Policy of every page: nothing is loaded from anywhere, no script runs; the pages
# may be framed only by Airflow's own UI (same origin).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; form-action 'none'"


class NotFound(LookupError):
    """The page asked for does not exist (unknown tenant, person or page); the message says which."""


def _render(template: str, base: str, **context: Any) -> str:
    return template_environment().get_template(f"console/{template}.html.j2").render(
        pages=PAGES, generated_at=datetime.now(UTC), base=base, **context)


def _known_tenant(engine: Engine, tenant_id: str) -> None:
    tenants = report_tenants(engine)
    if tenant_id not in tenants:
        held = ", ".join(tenants) if tenants else "none"
        raise NotFound(f"the warehouse holds no tenant {tenant_id!r} (it holds: {held})")


def tenants_page(engine: Engine, *, base: str = "") -> str:
    return _render("tenants", base, tenants=report_tenants(engine), tenant_id=None, page=None)


def report_page(engine: Engine, tenant_id: str, start: str | None = None, end: str | None = None, *,
                base: str = "") -> str:
    """The tenant's HTML report for ``start``..``end`` (default: its 30 days up to its latest data), now."""
    _known_tenant(engine, tenant_id)
    data = gather(engine, tenant_id, resolve_period(engine, tenant_id, start, end))
    return render_report(data, "console/report.html.j2", pages=PAGES, page="report", base=base)


def people_page(engine: Engine, tenant_id: str, *, base: str = "") -> str:
    _known_tenant(engine, tenant_id)
    people = run_report_query(engine, "console_people", {"tenant": tenant_id, "limit": LIST_LIMIT})
    return _render("people", base, tenant_id=tenant_id, page="people", people=people, limit=LIST_LIMIT)


def timeline_page(engine: Engine, tenant_id: str, ksat_user_id: int, *, base: str = "") -> str:
    _known_tenant(engine, tenant_id)
    key = {"tenant": tenant_id, "ksat_user_id": ksat_user_id}
    person = run_report_query(engine, "console_person", key)
    if not person:
        raise NotFound(f"tenant {tenant_id!r} has no KSAT user {ksat_user_id}")
    events = run_report_query(engine, "console_timeline", key)
    actors = [r for r in person if r["actor_id"] is not None]
    return _render("timeline", base, tenant_id=tenant_id, page="people", person=person[0], actors=actors,
                   events=events)


def rules_page(engine: Engine, tenant_id: str, *, base: str = "") -> str:
    """Each rule with its detections of all time, distinct actors, and its noise: the share of its
    detections on sessions Code42 analysts closed as false positive (the report's rule-noise figures)."""
    _known_tenant(engine, tenant_id)
    noise = {r["rule_key"]: r for r in run_report_query(engine, "html_rule_noise", {"tenant": tenant_id, **ALL_TIME})}
    rules = []
    for row in run_report_query(engine, "console_rules", {"tenant": tenant_id}, {"last_detection": Ts}):
        fp = noise.get(row["rule_key"], {}).get("false_positives") or 0
        rules.append({**row, "enabled": bool(row["enabled"]), "false_positives": fp,
                      "false_positive_share": fp / row["detections"] if row["detections"] else None,
                      "per_user": row["detections"] / row["distinct_users"] if row["distinct_users"] else None,
                      "last_detection": as_utc(row["last_detection"])})
    return _render("rules", base, tenant_id=tenant_id, page="rules", rules=rules)


def _configured_campaigns() -> tuple[list[dict], str | None]:
    """The campaigns of campaigns.yaml (name, enabled, channel, rules, test mode), or the file's error."""
    try:
        campaigns = load_campaigns(campaigns_path(), load_catalog(detection_rules_path()), tip_templates())
    except (CampaignError, CatalogError, OSError) as exc:
        return [], str(exc).splitlines()[0]
    return [{"name": c.name, "enabled": c.enabled, "channel": c.channel.type, "rules": c.rules,
             "test_mode": c.test_mode} for c in campaigns.campaigns], None


def campaigns_page(engine: Engine, tenant_id: str, *, base: str = "") -> str:
    """Campaigns (configured and seen in the outbox) with their outbox rows per status, and the tips in
    doubt, which only a person can resolve."""
    _known_tenant(engine, tenant_id)
    configured, problem = _configured_campaigns()
    outbox: dict[str, dict[str, int]] = {}
    for row in run_report_query(engine, "console_outbox", {"tenant": tenant_id}):
        statuses = outbox.setdefault(row["campaign"], {})
        statuses[row["status"]] = statuses.get(row["status"], 0) + row["n"]
    names = [c["name"] for c in configured] + sorted(set(outbox) - {c["name"] for c in configured})
    by_name = {c["name"]: c for c in configured}
    campaigns = [{"name": n, "config": by_name.get(n), "outbox": outbox.get(n, {}),
                  "total": sum(outbox.get(n, {}).values())} for n in names]
    statuses = sorted({s for counts in outbox.values() for s in counts})
    in_doubt = [{**r, "claimed_at": as_utc(r["claimed_at"])}
                for r in run_report_query(engine, "console_in_doubt", {"tenant": tenant_id}, {"claimed_at": Ts})]
    return _render("campaigns", base, tenant_id=tenant_id, page="campaigns", campaigns=campaigns,
                   statuses=statuses, in_doubt=in_doubt, problem=problem)


def unmapped_page(engine: Engine, tenant_id: str, *, base: str = "") -> str:
    _known_tenant(engine, tenant_id)
    rows = run_report_query(engine, "console_unmapped", {"tenant": tenant_id, "limit": LIST_LIMIT},
                            {"first_session": Ts, "last_session": Ts})
    actors = [{**r, "first_session": as_utc(r["first_session"]), "last_session": as_utc(r["last_session"])}
              for r in rows]
    summary = run_report_query(engine, "html_unmapped", {"tenant": tenant_id})[0]
    return _render("unmapped", base, tenant_id=tenant_id, page="unmapped", actors=actors, summary=summary,
                   limit=LIST_LIMIT)


def tenant_page(engine: Engine, tenant_id: str, page: str, *, base: str = "") -> str:
    """One of the tenant's pages by its path segment (``PAGES``)."""
    pages = {"report": report_page, "people": people_page, "rules": rules_page, "campaigns": campaigns_page,
             "unmapped": unmapped_page}
    if page not in pages:
        raise NotFound(f"no page {page!r}; the pages are {', '.join(PAGES)}")
    return pages[page](engine, tenant_id, base=base)


def error_page(status: int, message: str, *, base: str = "") -> str:
    return _render("error", base, tenant_id=None, page=None, status=status, message=message)

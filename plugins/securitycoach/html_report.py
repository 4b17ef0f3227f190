"""The per-tenant HTML report: one self-contained file per tenant and period.

Figures come from the ``rpt_*`` views (SQL in ``include/sql/reports/html_*.sql``, filtered by tenant
and period with bound parameters), charts are drawn with matplotlib and embedded as inline SVG, and
the page is rendered from ``include/templates/tenant_report.html.j2`` (Jinja, autoescaped, strict).
Nothing is loaded from the network when the file is opened: a Content-Security-Policy meta tag
forbids every fetch except inline styles and ``data:`` images, and no script is in the page.

The period is a range of UTC days, both ends included: by default the 30 days ending on the
tenant's latest day with data (so a report of old data is not empty), else ``start``/``end``.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy.engine import Engine

from securitycoach.paths import data_dir
from securitycoach.report import run_report_query, template_environment
from securitycoach.timeutil import as_utc
from securitycoach.warehouse.schema import Ts

DEFAULT_DAYS = 30
SEVERITY_COLORS = {"NO_RISK_INDICATED": "#9e9e9e", "LOW": "#4caf50", "MODERATE": "#ffb300", "HIGH": "#f4511e",
                   "CRITICAL": "#b71c1c"}


class ReportError(ValueError):
    """The report cannot be written as asked (bad period); the message says why."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def params(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def report_tenants(engine: Engine) -> list[str]:
    """Every tenant in the warehouse with sync runs or sessions (the reporting DAG's tenants)."""
    return [row["tenant_id"] for row in run_report_query(engine, "html_tenants", {})]


def _parse_day(value: date | str | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def resolve_period(engine: Engine, tenant_id: str, start: date | str | None = None, end: date | str | None = None,
                   *, days: int = DEFAULT_DAYS, today: date | None = None) -> Period:
    """The report's period: ``start``..``end`` if given; a missing end is the tenant's latest day with
    data (today when it has none), a missing start is ``days`` days before the end (inclusive)."""
    start, end = _parse_day(start, "start"), _parse_day(end, "end")
    if end is None:
        latest = run_report_query(engine, "html_latest_day", {"tenant": tenant_id})[0]["latest_day"]
        end = date.fromisoformat(latest) if latest else (today or datetime.now(UTC).date())
        if start is not None and end < start:
            end = start + timedelta(days=days - 1)
    if start is None:
        start = end - timedelta(days=days - 1)
    if end < start:
        raise ReportError(f"the period ends ({end}) before it starts ({start})")
    if (end - start).days > 3660:
        raise ReportError(f"the period {start}..{end} is longer than ten years")
    return Period(start, end)


def report_path(tenant_id: str, period: Period, out_dir: Path | None = None) -> Path:
    """``data/reports/securitycoach_<tenant>_<start>_<end>.html``; a tenant id with characters unsafe in a
    file name is reduced to safe ones plus a short hash, so two tenants never share a file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tenant_id)[:80].lstrip(".") or "tenant"
    if safe != tenant_id:
        safe += "-" + hashlib.sha256(tenant_id.encode()).hexdigest()[:8]
    return (out_dir or data_dir() / "reports") / f"securitycoach_{safe}_{period.start}_{period.end}.html"


# --- charts ------------------------------------------------------------------------------------------

def _label(text: Any, width: int = 48) -> str:
    """A chart label from API data: shortened, and with mathtext's ``$`` made literal (matplotlib
    escapes <, >, & and quotes itself when it writes the SVG)."""
    text = str(text)
    if len(text) > width:
        text = text[: width - 1] + "\u2026"
    return text.replace("$", r"\$")  # no even count of bare dollars: never mathtext; \$ is shown as $


_SVG_START = re.compile(r"<svg\b")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")  # text cannot hold a tag: matplotlib escapes < and > in it
_FORBIDDEN = re.compile(r"^<(?:script|foreignObject|iframe|image|a)\b|\son[a-z]+\s*=|href=\"(?!#)|url\((?!#)",
                        re.IGNORECASE)


def _svg(figure) -> Markup:
    """The figure as an inline ``<svg>`` element: no XML prolog, DOCTYPE or metadata, and checked to
    hold no script, event handler or reference outside itself."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(figure)
    buffer = io.StringIO()
    # svg.fonttype none: labels stay <text> (selectable, and escaped by matplotlib's XML writer)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = _METADATA.sub("", text[_SVG_START.search(text).start():])
    if any(_FORBIDDEN.search(tag) for tag in _TAG.findall(text)):  # never expected: matplotlib escapes all text it writes
        raise ValueError("chart SVG holds active content or an external reference")
    return Markup(text)  # matplotlib's SVG writer escapes every label; checked above


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    return Figure(figsize=(width, height), dpi=100)


def _trend_chart(period: Period, detections: dict[str, int], tips: dict[str, int]) -> Markup:
    fig = _figure(9, 3.2)
    ax = fig.add_subplot()
    days = period.days
    ax.plot(days, [detections.get(d.isoformat(), 0) for d in days], marker="o", markersize=3,
            label="detections", color="#c62828")
    ax.plot(days, [tips.get(d.isoformat(), 0) for d in days], marker="s", markersize=3,
            label="SecurityTips delivered", color="#1565c0")
    ax.set_ylabel("per day (UTC)")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.autofmt_xdate()
    return _svg(fig)


def _barh_chart(labels: list[str], values: list[float], xlabel: str, colors: list[str] | str = "#5c6bc0",
                value_format: str = "{:g}", xmax: float | None = None) -> Markup:
    fig = _figure(9, 0.45 * len(labels) + 1.0)
    ax = fig.add_subplot()
    positions = list(range(len(labels)))
    bars = ax.barh(positions, values, color=colors)
    ax.set_yticks(positions, [_label(label) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.bar_label(bars, labels=[value_format.format(v) for v in values], padding=3)
    if xmax is not None:
        ax.set_xlim(0, xmax)
    else:
        ax.set_xlim(0, max(max(values, default=0), 1) * 1.12)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig)


# --- gathering -------------------------------------------------------------------------------------

def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "0 min (interval ends in the future)"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return " ".join(part for part in (f"{days} d" if days else "", f"{hours} h" if hours or days else "",
                                      f"{minutes} min") if part)


def gather(engine: Engine, tenant_id: str, period: Period, *, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the report, from the warehouse (no rendering)."""
    now = now or datetime.now(UTC)
    p = {"tenant": tenant_id, **period.params()}
    detections = {r["day"]: int(r["detections"]) for r in run_report_query(engine, "html_daily_detections", p)}
    daily_tips = run_report_query(engine, "html_daily_tips", p)
    tips = {r["day"]: int(r["tips_delivered"]) for r in daily_tips}
    severity = [{**r, "sessions": round(float(r["sessions"]))} for r in run_report_query(engine, "html_severity_mix", p)]
    recidivism = [{**r, "share": (r["repeated"] / r["coached"]) if r["coached"] else 0.0}
                  for r in run_report_query(engine, "html_recidivism", p)]
    noise = [{**r, "detections_per_user": (r["detections"] / r["distinct_users"]) if r["distinct_users"] else None,
              "false_positive_share": (r["false_positives"] / r["detections"]) if r["detections"] else 0.0}
             for r in run_report_query(engine, "html_rule_noise", p)]
    last = run_report_query(engine, "html_sync_last", {"tenant": tenant_id},
                  {"interval_start": Ts, "interval_end": Ts, "finished_at": Ts})
    last = last[0] if last else None
    if last:
        for key in ("interval_start", "interval_end", "finished_at"):
            last[key] = as_utc(last[key])
        last["lag"] = _duration(now - last["interval_end"]) if last["interval_end"] else "unknown"
    window = {"tenant": tenant_id, "from_ts": datetime.combine(period.start, time(), UTC),
              "to_ts": datetime.combine(period.end + timedelta(days=1), time(), UTC)}
    return {
        "tenant_id": tenant_id,
        "period": period,
        "generated_at": now,
        "detections_by_day": detections,
        "tips_by_day": tips,
        "total_detections": sum(detections.values()),
        "total_tips": sum(tips.values()),
        "top_rules": run_report_query(engine, "html_top_rules", p),
        "severity_mix": severity,
        "recidivism": recidivism,
        "top_campaigns": run_report_query(engine, "html_top_campaigns", p),
        "top_groups": run_report_query(engine, "html_top_groups", p),
        "risky_users": run_report_query(engine, "html_risky_users", {"tenant": tenant_id}),
        "rule_noise": noise,
        "unmapped": run_report_query(engine, "html_unmapped", {"tenant": tenant_id})[0],
        "sync_last": last,
        "sync_period": run_report_query(engine, "html_sync_period", window)[0],
        "coaching_blocks": run_report_query(engine, "html_coaching_blocks", {"tenant": tenant_id}),
        **_ksat_events(engine, tenant_id),
    }


def _ksat_events(engine, tenant_id: str) -> dict:
    """The User Event API push: events by status, and each key's quota used / left on its latest day."""
    rows = run_report_query(engine, "html_ksat_events", {"tenant": tenant_id})
    quota = [{"day": r["day"], "used": r["n"], "quota": r["quota"], "left": max(0, r["quota"] - r["n"])}
             for r in rows if r["what"] == "quota"]
    return {"ksat_events": {r["name"]: r["n"] for r in rows if r["what"] == "status"}, "ksat_quota": quota}


def _charts(data: dict[str, Any]) -> dict[str, Markup | None]:
    period = data["period"]
    charts: dict[str, Markup | None] = {"trend": None, "top_rules": None, "severity": None, "recidivism": None}
    if data["detections_by_day"] or data["tips_by_day"]:
        charts["trend"] = _trend_chart(period, data["detections_by_day"], data["tips_by_day"])
    if data["top_rules"]:
        charts["top_rules"] = _barh_chart([r["rule_name"] for r in data["top_rules"]],
                                          [r["detections"] for r in data["top_rules"]], "detections in the period")
    if data["severity_mix"]:
        charts["severity"] = _barh_chart([r["severity"] for r in data["severity_mix"]],
                                         [r["sessions"] for r in data["severity_mix"]], "Code42 sessions begun",
                                         colors=[SEVERITY_COLORS.get(r["severity"], "#777")
                                                 for r in data["severity_mix"]])
    if data["recidivism"]:
        charts["recidivism"] = _barh_chart([f"{r['campaign']} / {r['rule_key']}" for r in data["recidivism"]],
                                           [100 * r["share"] for r in data["recidivism"]],
                                           "% of coached user-days followed by the same behaviour within 30 days",
                                           colors="#8e24aa", value_format="{:.0f} %", xmax=110)
    return charts


def render_report(data: dict[str, Any], template: str = "tenant_report.html.j2", **extra: Any) -> str:
    """The report page of ``gather``'s figures; ``template`` may extend the report's (the SecurityCoach
    view adds its navigation), ``extra`` is what such a template needs besides the figures."""
    return template_environment().get_template(template).render(**data, charts=_charts(data), **extra)


def write_tenant_report(engine: Engine, tenant_id: str, start: date | str | None = None,
                        end: date | str | None = None, *, out: Path | None = None, out_dir: Path | None = None,
                        now: datetime | None = None) -> Path:
    """Write the tenant's report for the period (see ``resolve_period``) and return its path: ``out``,
    else ``report_path(tenant, period, out_dir)``. Written to a temporary file and renamed, so a
    reader never sees half a report."""
    period = resolve_period(engine, tenant_id, start, end)
    html = render_report(gather(engine, tenant_id, period, now=now))
    path = Path(out) if out else report_path(tenant_id, period, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path


def write_all_reports(engine: Engine, *, out_dir: Path | None = None, now: datetime | None = None) -> list[Path]:
    """One report per tenant of the warehouse, each for its default period."""
    return [write_tenant_report(engine, tenant, out_dir=out_dir, now=now) for tenant in report_tenants(engine)]

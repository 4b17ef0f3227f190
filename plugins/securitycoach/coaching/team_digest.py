"""The team digest: after a delivery run, one post to a shared team channel with counts only.

Each SecurityTip goes to its person alone; the team channel learns how many tips each campaign and
rule planned and sent this run, how many people had no chat account, and where the report is. The
context holds no name, email, summary, file name or id of a person or a detection, and the
template may use nothing else (``load_campaigns`` refuses a digest template that uses any other
variable).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.coaching.campaigns import TeamDigest
from securitycoach.coaching.outbox import PlanResult, SendResult, Tip
from securitycoach.paths import data_dir
from securitycoach.warehouse import schema as t

# Labels of the statuses the digest counts, in the order it shows them.
LABELS = {"sent": "sent", "no_chat_account": "no chat account", "suppressed": "held by the delivery limit",
          "retry_later": "to retry", "channel_down": "channel refused", "failed": "failed", "test": "test mode",
          "stale": "too old to send", "pending": "not due yet"}


def _summary(counts: dict[str, int]) -> str:
    shown = [f"{counts[k]} {label}" for k, label in LABELS.items() if counts.get(k)]
    shown += [f"{n} {k}" for k, n in sorted(counts.items()) if k not in LABELS and n]
    return ", ".join(shown) or "nothing"


def _merge(planned: dict[str, int], sent: dict[str, int]) -> dict[str, int]:
    """Planned rows that were due (``pending``) are counted by what sending made of them."""
    merged = {k: n for k, n in planned.items() if k != "pending"}
    for k, n in sent.items():
        merged[k] = merged.get(k, 0) + n
    waiting = planned.get("pending", 0) - sum(sent.values())
    if waiting > 0:
        merged["pending"] = waiting
    return merged


def digest_context(engine: Engine, tenant_id: str, planned: PlanResult, sent: SendResult, config: TeamDigest,
                   at: datetime) -> dict[str, Any] | None:
    """The digest of one run, or None when the run sent nothing (no tip was due: a backfill that
    only records old detections does not post one digest per run)."""
    if not sent.by_status:
        return None
    campaigns = sorted(set(planned.planned) | set(sent.by_status))
    rules = sorted(set(planned.by_rule) | set(sent.by_rule))
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(t.detection_rule.c.rule_key, t.detection_rule.c.name).where(
            t.detection_rule.c.tenant_id == tenant_id, t.detection_rule.c.rule_key.in_(rules))).all()) if rules else {}
    per_campaign = [{"name": c, "counts": (counts := _merge(planned.planned.get(c, {}), sent.by_status.get(c, {}))),
                     "summary": _summary(counts)} for c in campaigns]
    per_rule = [{"key": r, "name": names.get(r) or r,
                 "counts": (counts := _merge(planned.by_rule.get(r, {}), sent.by_rule.get(r, {}))),
                 "summary": _summary(counts)} for r in rules]
    totals: dict[str, int] = {}
    for c in per_campaign:
        for k, n in c["counts"].items():
            totals[k] = totals.get(k, 0) + n
    report = (config.report_url.replace("{tenant_id}", tenant_id) if config.report_url
              else str(data_dir() / "reports"))
    return {"tenant_id": tenant_id, "at": at, "campaigns": per_campaign, "rules": per_rule, "totals": totals,
            "summary": _summary(totals), "report": report}


def digest_tip(templates: jinja2.Environment, config: TeamDigest, context: dict[str, Any], run_id: str) -> Tip:
    body = templates.get_template(config.template).render(digest=context)
    key = hashlib.sha256(f"{context['tenant_id']}\x1fteam_digest\x1f{run_id}".encode()).hexdigest()
    return Tip(campaign="team_digest", recipient="team", subject="SecurityCoach team digest", body=body,
               idempotency_key=key)

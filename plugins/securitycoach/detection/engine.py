"""The detection task: enabled rules over the sessions and alerts the load found new or changed.

The load step queues every session and alert it inserted or changed (``stg_detection_queue``, in
the same transaction as the facts). ``detect`` takes the queue batch by batch, reads each subject's
facts back from the warehouse, evaluates the rules and writes ``detection`` rows, then removes the
batch from the queue, all in one transaction per batch. A detection is keyed by (tenant, rule,
subject): a look-back re-read or a rerun finds the same key and at most updates it (an escalated
session raises its severity); ``first_seen_at`` never moves, so coaching decisions made on it hold.
Detections are recorded for every actor, mapped or not: they join the user's timeline once mapped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from securitycoach.detection.catalog import Catalog, DetectionRule, severity_number
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.engine import refresh_statistics
from securitycoach.warehouse.upsert import upsert, upsert_changed

log = logging.getLogger(__name__)

BATCH_SIZE = 2000


@dataclass(frozen=True)
class Facts:
    """What rules can ask of one session or alert (vocabulary terms already resolved)."""

    subject_type: str
    subject_id: str
    actor_id: str | None
    severity: int
    occurred_at: datetime
    version: datetime | None
    summary: str | None
    department: str | None = None
    indicators: frozenset[str] = frozenset()
    vectors: frozenset[str] = frozenset()
    destination_categories: frozenset[str] = frozenset()
    file_categories: frozenset[str] = frozenset()
    watchlists: frozenset[str] = frozenset()
    event_count: int = 0
    alert_rule_id: str | None = None
    alert_rule_name: str | None = None

    @cached_property
    def evidence(self) -> dict[str, Any]:
        """The facts rules look at, for the timeline and the tip (the same for every rule matched,
        so built once per subject and shared by its detections)."""
        shown: dict[str, Any] = {"severity": self.severity}
        for name in ("indicators", "vectors", "destination_categories", "file_categories", "watchlists"):
            if getattr(self, name):
                shown[name] = sorted(getattr(self, name))
        if self.subject_type == "session":
            shown["event_count"] = self.event_count
        else:
            shown["alert_rule"] = self.alert_rule_name or self.alert_rule_id
        return shown


_CHECKS: dict[str, Callable[[Any, Facts], bool]] = {
    "min_severity": lambda v, f: f.severity >= v,
    "max_severity": lambda v, f: f.severity <= v,
    "risk_indicators_any": lambda v, f: not f.indicators.isdisjoint(v),
    "risk_indicators_all": lambda v, f: f.indicators.issuperset(v),
    "vectors": lambda v, f: not f.vectors.isdisjoint(v),
    "destination_categories": lambda v, f: not f.destination_categories.isdisjoint(v),
    "file_categories": lambda v, f: not f.file_categories.isdisjoint(v),
    "watchlists": lambda v, f: not f.watchlists.isdisjoint(v),
    "min_event_count": lambda v, f: f.event_count >= v,
    "departments": lambda v, f: (f.department or "").casefold() in v,
    "alert_rules": lambda v, f: f.alert_rule_id in v or f.alert_rule_name in v,
}


def predicate(criteria: dict[str, Any]) -> Callable[[Facts], bool]:
    """The rule's criteria as one test over facts: every criterion given holds (list criteria:
    any of the values). Built once per rule, not per subject."""
    prepared = []
    for name, value in criteria.items():
        if name == "departments":
            value = frozenset(d.casefold() for d in value)
        elif isinstance(value, list):
            value = frozenset(value)
        prepared.append((_CHECKS[name], value))
    return lambda f: all(check(value, f) for check, value in prepared)


def matches(criteria: dict[str, Any], f: Facts) -> bool:
    return predicate(criteria)(f)


@dataclass
class DetectResult:
    evaluated: int = 0
    new: int = 0
    updated: int = 0
    rules_enabled: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)


def detect(engine: Engine, tenant_id: str, catalog: Catalog, *, now: datetime | None = None,
           batch_size: int = BATCH_SIZE) -> DetectResult:
    """Evaluate the queued sessions and alerts of ``tenant_id``; returns what it did."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        rules = sync_rules(conn, tenant_id, catalog, now)
    enabled = [(r, predicate(r.criteria)) for r in rules if r.enabled]
    result = DetectResult(rules_enabled=len(enabled))
    q = t.detection_queue.c
    for subject_type in ("session", "alert"):
        after = ""  # the queue is read in key order, each batch after the last (no rescans of done rows)
        while True:
            with engine.begin() as conn:
                ids, facts = load_facts(conn, tenant_id, catalog, subject_type, after=after, limit=batch_size)
                if not ids:
                    break
                found = [(rule, f) for f in facts for rule, test in enabled if rule.subject_type == subject_type
                         and test(f)]
                new, updated = write_detections(conn, tenant_id, found, now)
                conn.execute(t.detection_queue.delete().where(
                    q.tenant_id == tenant_id, q.subject_type == subject_type, q.subject_id.in_(ids)))
            after = ids[-1]
            result.evaluated += len(ids)
            result.new += new
            result.updated += updated
            for rule, _ in found:
                result.per_rule[rule.rule_key] = result.per_rule.get(rule.rule_key, 0) + 1
    refresh_statistics(engine, [t.detection.name], result.new + result.updated)
    refresh_statistics(engine, [t.detection_queue.name], result.evaluated, vacuum=True)  # drained
    log.info("detection for tenant %s: %d subjects evaluated against %d enabled rules; %d new, %d updated",
             tenant_id, result.evaluated, result.rules_enabled, result.new, result.updated)
    return result


def sync_rules(conn: Connection, tenant_id: str, catalog: Catalog, now: datetime) -> list[DetectionRule]:
    """Write the rules in force to ``detection_rule``; mark rules no longer present as removed."""
    r = t.code42_alert_rule.c
    alert_rules = [dict(row._mapping) for row in conn.execute(
        sa.select(r.rule_id, r.name, r.description, r.is_enabled, r.lesson_id).where(r.tenant_id == tenant_id))]
    rules = catalog.with_alert_rules(alert_rules)
    d = t.detection_rule.c
    stored = {(row.tenant_id, row.rule_key): row
              for row in conn.execute(sa.select(t.detection_rule).where(d.tenant_id == tenant_id))}
    # a rule that comes back after removal is written again (removed_at cleared)
    stored = {k: v for k, v in stored.items() if v.removed_at is None}
    upsert_changed(conn, t.detection_rule,
                   [{**rule.row(tenant_id), "updated_at": now, "removed_at": None} for rule in rules], stored)
    conn.execute(
        t.detection_rule.update()
        .where(d.tenant_id == tenant_id, d.rule_key.not_in([rule.rule_key for rule in rules]), d.removed_at.is_(None))
        .values(removed_at=now, enabled=False, updated_at=now)
    )
    sync_vocabulary(conn, tenant_id, catalog)
    return rules


def sync_vocabulary(conn: Connection, tenant_id: str, catalog: Catalog) -> None:
    """Mirror the indicator vocabulary to ``risk_indicator_vocabulary`` (for rpt_vendor_events)."""
    v = t.risk_indicator_vocabulary
    rows = [{"tenant_id": tenant_id, "indicator_name": name, **meaning.model_dump()}
            for name, meaning in catalog.vocabulary.indicators.items()]
    upsert(conn, v, rows)
    conn.execute(v.delete().where(v.c.tenant_id == tenant_id,
                                  v.c.indicator_name.not_in([r["indicator_name"] for r in rows])))


def load_facts(conn: Connection, tenant_id: str, catalog: Catalog, subject_type: str, *, after: str = "",
               limit: int = BATCH_SIZE) -> tuple[list[str], list[Facts]]:
    """The next ``limit`` queued subjects of one type, in key order after ``after``, joined to their
    facts: returns the queued ids and the facts (a subject since deleted has an id but no facts).

    One join per batch from the queue to the fact tables (the database walks the queue's key range
    and looks each subject up), not an ``IN`` list of ids."""
    q = t.detection_queue.c
    batch = (sa.select(q.tenant_id, q.subject_id)
             .where(q.tenant_id == tenant_id, q.subject_type == subject_type, q.subject_id > after)
             .order_by(q.subject_id).limit(limit).subquery("batch"))
    if subject_type == "session":
        return _session_facts(conn, catalog, batch)
    return _alert_facts(conn, catalog, batch)


def _session_facts(conn: Connection, catalog: Catalog, batch: sa.Subquery) -> tuple[list[str], list[Facts]]:
    vocab = catalog.vocabulary
    s, ri, a = t.code42_session.c, t.code42_session_risk_indicator.c, t.code42_actor.c
    names: dict[str, set[str]] = {}
    for row in conn.execute(
            sa.select(ri.session_id, ri.name).select_from(batch.join(
                t.code42_session_risk_indicator,
                sa.and_(ri.tenant_id == batch.c.tenant_id, ri.session_id == batch.c.subject_id)))):
        if row.name:
            names.setdefault(row.session_id, set()).add(row.name)
    rows = conn.execute(
        sa.select(batch.c.subject_id.label("queued_id"), *_without_raw(t.code42_session), a.department)
        .select_from(batch
                     .outerjoin(t.code42_session,
                                sa.and_(s.tenant_id == batch.c.tenant_id, s.session_id == batch.c.subject_id))
                     .outerjoin(t.code42_actor, sa.and_(a.tenant_id == s.tenant_id, a.actor_id == s.actor_id)))
        .order_by(batch.c.subject_id)
    ).all()
    facts: list[Facts] = []
    known: dict[frozenset[str], dict[str, frozenset[str]]] = {}
    for row in rows:
        if row.session_id is None:
            continue
        indicators = frozenset(names.get(row.session_id, ()))
        terms = known.get(indicators)
        if terms is None:  # the same few indicator combinations recur: resolve each once
            terms = known[indicators] = vocab.terms(indicators)
        facts.append(Facts(
            subject_type="session", subject_id=row.session_id, actor_id=row.actor_id,
            severity=row.severity or 0, occurred_at=as_utc(row.end_time or row.begin_time),
            version=as_utc(row.last_updated), summary=row.exfiltration_summary, department=row.department,
            indicators=indicators, **terms,
            event_count=(row.no_risk_events or 0) + (row.low_events or 0) + (row.moderate_events or 0)
            + (row.high_events or 0) + (row.critical_events or 0),
        ))
    return [row.queued_id for row in rows], facts


def _alert_facts(conn: Connection, catalog: Catalog, batch: sa.Subquery) -> tuple[list[str], list[Facts]]:
    vocab = catalog.vocabulary
    al, r, a = t.code42_alert.c, t.code42_alert_rule.c, t.code42_actor.c
    rows = conn.execute(
        sa.select(batch.c.subject_id.label("queued_id"), *_without_raw(t.code42_alert), a.department,
                  r.name.label("rule_name"))
        .select_from(batch
                     .outerjoin(t.code42_alert,
                                sa.and_(al.tenant_id == batch.c.tenant_id, al.alert_id == batch.c.subject_id))
                     .outerjoin(t.code42_actor, sa.and_(a.tenant_id == al.tenant_id, a.actor_id == al.actor_id))
                     .outerjoin(t.code42_alert_rule, sa.and_(r.tenant_id == al.tenant_id, r.rule_id == al.rule_id)))
        .order_by(batch.c.subject_id)
    ).all()
    facts: list[Facts] = []
    for row in rows:
        if row.alert_id is None:
            continue
        types = {w.get("type") for w in (row.watchlists or []) if isinstance(w, dict)}
        facts.append(Facts(
            subject_type="alert", subject_id=row.alert_id, actor_id=row.actor_id,
            severity=_alert_severity(row.risk_severity), occurred_at=as_utc(row.created_at),
            version=as_utc(row.state_last_modified_at or row.created_at), summary=row.name,
            department=row.department,
            watchlists=frozenset(vocab.watchlist_types[x] for x in types if x in vocab.watchlist_types),
            alert_rule_id=row.rule_id, alert_rule_name=row.rule_name or row.name,
        ))
    return [row.queued_id for row in rows], facts


def _without_raw(table: sa.Table) -> list[sa.Column]:
    return [c for c in table.columns if c.name != "raw"]


def _alert_severity(value: str | None) -> int:
    try:
        return severity_number(value or 0)
    except ValueError:
        return 0


def write_detections(conn: Connection, tenant_id: str, found: list[tuple[DetectionRule, Facts]],
                     now: datetime) -> tuple[int, int]:
    """Insert new detections, update changed ones in place; returns (new, updated)."""
    if not found:
        return 0, 0
    rows = [{"tenant_id": tenant_id, "rule_key": rule.rule_key, "subject_type": f.subject_type,
             "subject_id": f.subject_id, "actor_id": f.actor_id, "severity": f.severity,
             "occurred_at": f.occurred_at, "first_seen_at": now, "last_changed_at": now,
             "subject_version": f.version, "summary": f.summary, "evidence": f.evidence}
            for rule, f in found]
    # The database compares with what it holds: a detection whose severity, version and summary are
    # unchanged is left alone, a changed one keeps its first_seen_at; only written rows come back.
    written = upsert(conn, t.detection, rows, only_if_changed=("severity", "subject_version", "summary"),
                     keep=("first_seen_at",), returning=("first_seen_at",))
    new = sum(1 for row in written if as_utc(row.first_seen_at) == now)
    return new, len(written) - new

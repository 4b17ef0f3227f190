"""The detection task: enabled rules over the sessions and alerts the load found new or changed.

The load step queues every session and alert it inserted or changed (``stg_detection_queue``, in
the same transaction as the facts). ``detect`` takes the queue batch by batch (a key range) and
evaluates the rules inside the database, on SQLite and PostgreSQL alike: each rule's criteria
compile to a SQLAlchemy Core condition over the batch's subjects joined to their facts
(``_Subjects``), and one ``INSERT ... SELECT ... ON CONFLICT`` writes the ``detection`` rows of
every rule and subject that match (``write_detections``), evidence included; then the batch leaves
the queue, all in one transaction per batch. No subject passes through Python. A detection is keyed by (tenant, rule,
subject): a look-back re-read or a rerun finds the same key and at most updates it (an escalated
session raises its severity); ``first_seen_at`` never moves, so coaching decisions made on it hold.
Detections are recorded for every actor, mapped or not: they join the user's timeline once mapped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.engine import Connection, Engine

from securitycoach.detection.catalog import Catalog, DetectionRule, Vocabulary, severity_number
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.engine import refresh_statistics
from securitycoach.warehouse.schema import Ts
from securitycoach.warehouse.upsert import upsert, upsert_changed

log = logging.getLogger(__name__)

BATCH_SIZE = 2000


@dataclass
class DetectResult:
    evaluated: int = 0
    new: int = 0
    updated: int = 0
    rules_enabled: int = 0


def detect(engine: Engine, tenant_id: str, catalog: Catalog, *, now: datetime | None = None,
           batch_size: int = BATCH_SIZE) -> DetectResult:
    """Evaluate the queued sessions and alerts of ``tenant_id``; returns what it did."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        rules = sync_rules(conn, tenant_id, catalog, now)
        context = Context(catalog.vocabulary, _departments(conn, tenant_id))
    enabled = [r for r in rules if r.enabled]
    result = DetectResult(rules_enabled=len(enabled))
    q = t.detection_queue.c
    for subject_type in ("session", "alert"):
        after = ""  # the queue is read in key order, each batch after the last (no rescans of done rows)
        while True:
            with engine.begin() as conn:
                ids = conn.execute(sa.select(q.subject_id).where(
                    q.tenant_id == tenant_id, q.subject_type == subject_type, q.subject_id > after)
                    .order_by(q.subject_id).limit(batch_size)).scalars().all()
                if not ids:
                    break
                severities = _risk_severities(conn, tenant_id, after, ids[-1]) if subject_type == "alert" else ()
                subjects = _Subjects(conn.dialect.name, subject_type, context, tenant_id, after, ids[-1], severities)
                found = subjects.detections(enabled, now)
                new, updated = (0, 0) if found is None else write_detections(conn, found, now)
                conn.execute(t.detection_queue.delete().where(
                    q.tenant_id == tenant_id, q.subject_type == subject_type, q.subject_id.in_(ids)))
            after = ids[-1]
            result.evaluated += len(ids)
            result.new += new
            result.updated += updated
    refresh_statistics(engine, [t.detection.name], result.new + result.updated)
    refresh_statistics(engine, [t.detection_queue.name], result.evaluated, vacuum=True)  # drained
    log.info("detection for tenant %s: %d subjects evaluated against %d enabled rules; %d new, %d updated",
             tenant_id, result.evaluated, result.rules_enabled, result.new, result.updated)
    return result


def _departments(conn: Connection, tenant_id: str) -> tuple[str | None, ...]:
    a = t.code42_actor.c
    return tuple(conn.execute(sa.select(a.department).where(a.tenant_id == tenant_id).distinct()).scalars())


def _risk_severities(conn: Connection, tenant_id: str, after: str, upto: str) -> list[str | None]:
    """The distinct ``riskSeverity`` values of a batch of queued alerts (a handful: Python reads them
    as numbers exactly as ``severity_number`` does, the database is handed the answer)."""
    q, al = t.detection_queue.c, t.code42_alert.c
    return list(conn.execute(
        sa.select(al.risk_severity).distinct().select_from(t.detection_queue.join(
            t.code42_alert, sa.and_(al.tenant_id == q.tenant_id, al.alert_id == q.subject_id)))
        .where(q.tenant_id == tenant_id, q.subject_type == "alert", q.subject_id > after, q.subject_id <= upto)
    ).scalars())


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


# --- detection inside the database: criteria as SQLAlchemy Core conditions -------------------------
@dataclass(frozen=True)
class Context:
    """What compiling criteria needs besides the rule: the vocabulary, and the values of the small
    domains Python decides on exactly (case-folded department names; alert severity names)."""

    vocabulary: Vocabulary
    departments: tuple[str | None, ...] = ()  # the tenant's actors' departments, as stored


class _Subjects:
    """The queued subjects of one batch, with what rules ask of them, as one row per subject
    (``facts``: a CTE), and the conditions each criterion puts on it."""

    def __init__(self, dialect: str, subject_type: str, context: Context, tenant_id: str,
                 after: str, upto: str, risk_severities: Sequence[str | None] = ()) -> None:
        self.dialect, self.subject_type, self.context = dialect, subject_type, context
        q = t.detection_queue.c
        self.batch = sa.and_(q.tenant_id == tenant_id, q.subject_type == subject_type,
                             q.subject_id > after, q.subject_id <= upto)
        self.facts = (self._sessions() if subject_type == "session" else self._alerts(risk_severities)).cte("facts")

    # the facts -------------------------------------------------------------------------------------
    def _term_arrays(self) -> dict[str, sa.ColumnElement]:
        """Per session: the JSON array of its indicator names, and of the vectors, destination and
        file categories and watchlists they stand for (null when none)."""
        s, ri = t.code42_session.c, t.code42_session_risk_indicator.c
        vocab = self.context.vocabulary
        terms: dict[str, sa.ColumnElement] = {"indicators": ri.name}
        for key, attr in _TERMS.items():
            meaning = {name: getattr(m, attr) for name, m in vocab.indicators.items() if getattr(m, attr)}
            if meaning:
                terms[key] = sa.case(meaning, value=ri.name)
        return {key: self._sorted_set(
                    sa.select(term).where(ri.tenant_id == s.tenant_id, ri.session_id == s.session_id,
                                          ri.name.is_not(None), ri.name != ""),
                    t.code42_session)
                for key, term in terms.items()}

    def _sorted_set(self, values: sa.Select, outer: sa.Table) -> sa.ColumnElement:
        """The distinct non-null values of ``values`` (one column, correlated to ``outer``: one
        subject's rows, looked up by key) as a JSON array sorted by code point, as Python sorts
        strings; null when there are none."""
        value = values.selected_columns[0]
        values = values.where(value.is_not(None)).distinct().correlate(outer)
        if self.dialect == "postgresql":
            v = values.subquery("v").c[0]
            return (sa.select(sa.func.jsonb_agg(aggregate_order_by(v, v.collate("C"))))
                    .select_from(v.table).scalar_subquery())
        # SQLite (no ORDER BY inside an aggregate before 3.44) aggregates the rows in the order given
        ordered = values.order_by(value).subquery("v")
        return sa.func.json(sa.select(sa.func.nullif(sa.func.json_group_array(ordered.c[0]), "[]"))
                            .select_from(ordered).scalar_subquery())

    def _sessions(self) -> sa.Select:
        q, s, a = t.detection_queue.c, t.code42_session.c, t.code42_actor.c
        severity = sa.func.coalesce(s.severity, 0)
        events = sum((sa.func.coalesce(c, 0) for c in (s.no_risk_events, s.low_events, s.moderate_events,
                                                        s.high_events, s.critical_events)), sa.literal(0))
        arrays = self._term_arrays()
        parts = [("severity", severity)]
        parts += [(key, arrays.get(key, sa.null())) for key in ("indicators", *_TERMS)]
        parts.append(("event_count", events))
        return (sa.select(s.session_id.label("subject_id"), s.tenant_id, s.actor_id, severity.label("severity"),
                          sa.func.coalesce(s.end_time, s.begin_time).label("occurred_at"),
                          s.last_updated.label("version"), s.exfiltration_summary.label("summary"),
                          a.department, events.label("event_count"),
                          self._object(parts, always=()).label("evidence"))
                .select_from(t.detection_queue
                             .join(t.code42_session, sa.and_(s.tenant_id == q.tenant_id, s.session_id == q.subject_id))
                             .outerjoin(t.code42_actor, sa.and_(a.tenant_id == s.tenant_id, a.actor_id == s.actor_id)))
                .where(self.batch))

    def _alerts(self, risk_severities: Sequence[str | None]) -> sa.Select:
        q, al, r, a = t.detection_queue.c, t.code42_alert.c, t.code42_alert_rule.c, t.code42_actor.c
        numbers = {v: _alert_severity(v) for v in risk_severities if isinstance(v, str)}
        numbers = {v: n for v, n in numbers.items() if n}
        severity = sa.case(numbers, value=al.risk_severity, else_=0) if numbers else sa.literal(0)
        rule_name = sa.func.coalesce(sa.func.nullif(r.name, ""), al.name)
        shown_rule = sa.func.coalesce(sa.func.nullif(r.name, ""), sa.func.nullif(al.name, ""), al.rule_id)
        keys = self.context.vocabulary.watchlist_types
        joined = (t.detection_queue
                  .join(t.code42_alert, sa.and_(al.tenant_id == q.tenant_id, al.alert_id == q.subject_id))
                  .outerjoin(t.code42_actor, sa.and_(a.tenant_id == al.tenant_id, a.actor_id == al.actor_id))
                  .outerjoin(t.code42_alert_rule, sa.and_(r.tenant_id == al.tenant_id, r.rule_id == al.rule_id)))
        watchlists = sa.null()
        if keys:
            entries, kind = self._watchlist_types(al.watchlists)
            watchlists = self._sorted_set(sa.select(sa.case(keys, value=kind)).select_from(entries), t.code42_alert)
        return (sa.select(al.alert_id.label("subject_id"), al.tenant_id, al.actor_id, severity.label("severity"),
                          al.created_at.label("occurred_at"),
                          sa.func.coalesce(al.state_last_modified_at, al.created_at).label("version"),
                          al.name.label("summary"), a.department, al.rule_id, rule_name.label("rule_name"),
                          self._object([("severity", severity), ("watchlists", watchlists)],
                                       always=(("alert_rule", shown_rule),)).label("evidence"))
                .select_from(joined)
                .where(self.batch))

    def _watchlist_types(self, watchlists: sa.ColumnElement) -> tuple[sa.FromClause, sa.ColumnElement]:
        """The entries of an alert's ``watchlists`` (an array; anything else has none) as a FROM item
        (a table-valued function, which may read the FROM items before it) and each entry's ``type``
        (an object's; any other entry has none)."""
        if self.dialect == "postgresql":
            array = sa.case((sa.func.jsonb_typeof(watchlists) == "array", watchlists),
                            else_=sa.cast(sa.literal("[]"), JSONB))
            e = sa.func.jsonb_array_elements(array).table_valued(sa.column("value", JSONB)).alias("w")
            return e, e.c.value.op("->>", return_type=sa.Text)(sa.literal("type"))
        array = sa.case((sa.func.json_type(watchlists) == "array", watchlists), else_="[]")
        e = sa.func.json_each(array).table_valued("value", "type").alias("w")
        return e, sa.case((e.c.type == "object", sa.func.json_extract(e.c.value, "$.type")))

    def _object(self, parts: list[tuple[str, sa.ColumnElement]], always: Sequence[tuple[str, sa.ColumnElement]]):
        """A JSON object of ``parts`` without the null ones, then ``always`` (null or not)."""
        if self.dialect == "postgresql":
            pairs = [x for key, value in parts for x in (sa.literal(key), value)]
            built = sa.func.jsonb_strip_nulls(sa.func.jsonb_build_object(*pairs))
            for key, value in always:
                built = built.op("||", return_type=JSONB)(sa.func.jsonb_build_object(key, value))
            return built
        # SQLite: json() marks the arrays (text by now) as JSON again; null members are dropped by
        # merging the object into an empty one (RFC 7396)
        pairs = [x for key, value in parts for x in (sa.literal(key), sa.func.json(value))]
        built = sa.func.json_patch("{}", sa.func.json_object(*pairs))
        for key, value in always:
            built = sa.func.json_set(built, f"$.{key}", value)
        return built

    # the conditions --------------------------------------------------------------------------------
    def _has_indicator(self, names: Iterable[str]) -> sa.ColumnElement[bool]:
        names = sorted({n for n in names if n})
        if not names:
            return sa.false()
        ri = t.code42_session_risk_indicator.alias("ri")
        return sa.exists().where(ri.c.tenant_id == self.facts.c.tenant_id, ri.c.session_id == self.facts.c.subject_id,
                                 ri.c.name.in_(names))

    def _named(self, attr: str, wanted: Iterable[str]) -> list[str]:
        wanted = set(wanted)
        return [n for n, m in self.context.vocabulary.indicators.items() if getattr(m, attr) in wanted]

    def condition(self, criteria: dict[str, Any]) -> sa.ColumnElement[bool]:
        """Every criterion given holds (list criteria: any of the values), as one SQL condition."""
        return sa.and_(sa.true(), *(self.criterion(name, value) for name, value in criteria.items()))

    def criterion(self, name: str, value: Any) -> sa.ColumnElement[bool]:
        """One criterion as a condition on the batch's facts (``self.facts``)."""
        f = self.facts.c
        if name in _BOUNDS:
            column, at_least = _BOUNDS[name]
            return f[column] >= value if at_least else f[column] <= value
        if name == "risk_indicators_any":
            return self._has_indicator(value)
        if name == "risk_indicators_all":
            if "" in value:
                return sa.false()
            return sa.and_(sa.true(), *(self._has_indicator([n]) for n in value))
        if name in _TERMS:
            if name == "watchlists" and self.subject_type == "alert":
                types = [k for k, w in self.context.vocabulary.watchlist_types.items() if w in set(value)]
                if not types:
                    return sa.false()
                al = t.code42_alert.alias("al")
                entries, kind = self._watchlist_types(al.c.watchlists)
                return sa.exists(sa.select(sa.literal(1)).select_from(al.join(entries, sa.true())).where(
                    al.c.tenant_id == f.tenant_id, al.c.alert_id == f.subject_id, kind.in_(types)))
            return self._has_indicator(self._named(_TERMS[name], value))
        if name == "departments":
            folded = {d.casefold() for d in value}
            stored = sorted({d for d in self.context.departments if d and d.casefold() in folded})
            condition = f.department.in_(stored) if stored else sa.false()
            if "" in folded:  # no department (or no actor) reads as ""
                condition = sa.or_(condition, f.department.is_(None), f.department == "")
            return condition
        if name == "alert_rules":
            return sa.or_(f.rule_id.in_(value), f.rule_name.in_(value))
        raise ValueError(f"unknown criterion {name!r}")

    def detections(self, rules: Sequence[DetectionRule], now: datetime) -> sa.Select | None:
        """The detection rows of every (rule, subject) that matches, as one SELECT."""
        f = self.facts.c
        selects = [sa.select(f.tenant_id, sa.literal(rule.rule_key, sa.String).label("rule_key"),
                             sa.literal(self.subject_type, sa.String).label("subject_type"), f.subject_id,
                             f.actor_id, f.severity, f.occurred_at,
                             sa.literal(now, Ts).label("first_seen_at"), sa.literal(now, Ts).label("last_changed_at"),
                             f.version.label("subject_version"), f.summary, f.evidence)
                   .where(self.condition(rule.criteria))
                   for rule in rules if rule.subject_type == self.subject_type]
        if not selects:
            return None
        return sa.union_all(*selects) if len(selects) > 1 else selects[0]


def _alert_severity(value: str | None) -> int:
    try:
        return severity_number(value or 0)
    except ValueError:
        return 0


_BOUNDS = {"min_severity": ("severity", True), "max_severity": ("severity", False),
           "min_event_count": ("event_count", True)}  # criterion -> (fact, at least?)
_TERMS = {"vectors": "vector", "destination_categories": "destination_category",
          "file_categories": "file_category", "watchlists": "watchlist"}
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def write_detections(conn: Connection, found: sa.Select, now: datetime) -> tuple[int, int]:
    """Insert the detections ``found`` selects, update changed ones in place; returns (new, updated).

    The database compares with what it holds: a detection whose severity, version and summary are
    unchanged is left alone, a changed one keeps its first_seen_at; only written rows come back."""
    d = t.detection
    names = ["tenant_id", "rule_key", "subject_type", "subject_id", "actor_id", "severity", "occurred_at",
             "first_seen_at", "last_changed_at", "subject_version", "summary", "evidence"]
    rows = found.subquery("found")
    # ``WHERE true``: SQLite reads an ON CONFLICT after a SELECT without WHERE as part of a join
    insert = _INSERTS[conn.dialect.name](d).from_select(names, sa.select(*rows.c).where(sa.true()))
    keys = [c.name for c in d.primary_key.columns]
    changed = sa.or_(*(d.c[c].is_distinct_from(insert.excluded[c]) for c in ("severity", "subject_version", "summary")))
    statement = insert.on_conflict_do_update(
        index_elements=keys, set_={n: insert.excluded[n] for n in names if n not in keys and n != "first_seen_at"},
        where=changed).returning(d.c.first_seen_at)
    written = conn.execute(statement).scalars().all()
    new = sum(1 for first_seen in written if as_utc(first_seen) == now)
    return new, len(written) - new

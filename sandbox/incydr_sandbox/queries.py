"""Query semantics of ``GET /v1/sessions`` and ``POST /v1/alerts/query-alerts`` over the lazy tenant.

A query first narrows the session index range by time (arithmetic on begin times), then scans
that range for the per-session facts its filters and its order need; the matches of a query are
cached by ``SandboxState.queries`` so paging through them does not rescan.

``GET /v1/sessions`` as Code42 documents it (OpenAPI ``/v1/sessions``; the incydr SDK's
``sessions.v1.get_page``): ``has_alerts`` "Defaults to 'true'" and filters both ways (``false``:
only sessions without a visible alert); with no ``order_by`` "results are ordered by end time",
``sort_direction`` is ``ASC`` or ``DESC`` and "If not provided, results are sorted descending".
A session still gaining events has an endTime that grows with the clock, so that order moves.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import UTC, datetime

from incydr_sandbox.config import DAY_MS
from incydr_sandbox.errors import ApiError
from incydr_sandbox.rand import iso_ms
from incydr_sandbox.tenant import MAX_ALERT_DELAY_MS, MAX_LATE_MS, SessionPlan, Tenant
from incydr_sandbox.tenant import catalog as c

SESSION_STATES = frozenset({"OPEN", "IN_PROGRESS", "OPEN_NEW_DATA", "CLOSED", "CLOSED_TP", "CLOSED_TP_BENIGN",
                            "CLOSED_FP"})
INSPECTION_STATUSES = frozenset({"PENDING", "FOUND", "NOT_FOUND"})


# --- sessions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionQuery:
    on_or_after: int | None = None
    before: int | None = None
    actor_id: str | None = None
    has_alerts: bool = True
    states: frozenset[str] = frozenset()
    severities: frozenset[int] = frozenset()
    rule_ids: frozenset[str] = frozenset()
    watchlist_ids: frozenset[str] = frozenset()
    risk_indicators: frozenset[str] = frozenset()
    inspection: frozenset[str] = frozenset()
    type: str | None = None
    order_by: str | None = None  # None: end time (the API's default), then sessionId
    descending: bool = True

    def __post_init__(self) -> None:
        bad_states = self.states - SESSION_STATES
        if bad_states:
            raise ApiError(400, "Bad Request", f"state must be one of {sorted(SESSION_STATES)}, got {sorted(bad_states)}")
        if any(not 0 <= s <= 4 for s in self.severities):
            raise ApiError(400, "Bad Request", "severity must be 0 (no risk) to 4 (critical)")
        if self.inspection - INSPECTION_STATUSES:
            raise ApiError(400, "Bad Request", f"content_inspection_status must be one of {sorted(INSPECTION_STATUSES)}")
        if self.order_by not in (None, "end_time", "score"):
            raise ApiError(400, "Bad Request", "order_by must be end_time or score")

    @property
    def only_time_and_alerts(self) -> bool:
        """No filter but the time window and has_alerts, ordered by end time."""
        return not (self.actor_id or self.states or self.severities or self.rule_ids or self.watchlist_ids
                    or self.risk_indicators or self.inspection or self.type) and self.order_by in (None, "end_time")

    def matches(self, tenant: Tenant, p: SessionPlan, clock: int) -> bool:
        if p.observed > clock:
            return False  # not observed yet (a late session of an offline device)
        if self.actor_id is not None and p.actor.actor_id != self.actor_id:
            return False
        if self.has_alerts != (p.alerts_visible(clock) > 0):
            return False
        if self.type is not None and p.type != self.type:
            return False
        if self.states and p.state_at(clock) not in self.states:
            return False
        if self.severities and c.severity_of(p.score_at(clock)) not in self.severities:
            return False
        if self.rule_ids:
            visible = {tenant.rule_id(r) for r, t in zip(p.rules, p.alert_times(), strict=True) if t <= clock}
            if not visible & self.rule_ids:
                return False
        if self.watchlist_ids:
            on = {tenant.watchlist_id(k) for k in p.actor.watchlists(p.begin)}
            if not on & self.watchlist_ids:
                return False
        if self.risk_indicators and not self.risk_indicators <= {i.id for i in p.indicators_at(clock)}:
            return False  # every listed indicator must be present
        return not (self.inspection and p.inspection_status(clock) not in self.inspection)


def session_indices(tenant: Tenant, query: SessionQuery, clock: int) -> array:
    """Indices of the matching sessions, in answer order (ties broken by index, i.e. begin time)."""
    indices = tenant.index_range(query.on_or_after, query.before, clock)
    if query.only_time_and_alerts:  # the sync's listings: from the facts arrays, no plan per session
        facts = tenant.facts
        facts.ensure(indices.start, indices.stop)
        alerted = query.has_alerts
        matched = [i for i in indices if facts.visible(i, clock) and facts.alerted(i, clock) == alerted]
        matched.sort(key=lambda i: (facts.end_at(i, clock), i), reverse=query.descending)
        return array("q", matched)
    matched = [i for i in indices if query.matches(tenant, tenant.plan(i), clock)]
    if query.order_by == "score":
        matched.sort(key=lambda i: (tenant.plan(i).score_at(clock), i), reverse=query.descending)
    else:  # end_time, the default
        matched.sort(key=lambda i: (tenant.plan(i).end_at(clock), i), reverse=query.descending)
    return array("q", matched)


# --- alerts -------------------------------------------------------------------------------------
_FIELDS = {"AlertId": "id", "Type": "type", "Name": "name", "Description": "description", "Actor": "actor",
           "ActorId": "actorId", "Target": "target", "RiskSeverity": "riskSeverity", "State": "state",
           "StateLastModifiedBy": "stateLastModifiedBy", "LastModifiedBy": "stateLastModifiedBy",
           "RuleId": "ruleId", "AlertSeverity": "severity", "CreatedAt": "createdAt",
           "StateLastModifiedAt": "stateLastModifiedAt", "LastModifiedTime": "stateLastModifiedAt"}
_DATE_TERMS = frozenset({"CreatedAt", "StateLastModifiedAt", "LastModifiedTime"})
_DATE_OPS = frozenset({"ON_OR_AFTER", "ON_OR_BEFORE", "ON"})
_VALUE_OPS = frozenset({"IS", "IS_NOT", "CONTAINS", "DOES_NOT_CONTAIN"})
TERMS = frozenset(_FIELDS) | {"HasAuthSignificantWatchlist"}


def parse_time(value) -> int:
    """Epoch ms of an ISO-8601 value (``...Z``) or of an epoch-ms number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    moment = datetime.fromisoformat(str(value).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class AlertFilter:
    term: str
    operator: str
    value: object

    def test(self, alert: dict) -> bool:
        if self.term == "HasAuthSignificantWatchlist":
            actual = any(w.get("isSignificant") for w in alert["watchlists"] or [])
            wanted = self.value if isinstance(self.value, bool) else str(self.value).lower() == "true"
            return (actual == wanted) == (self.operator == "IS")
        raw = alert.get(_FIELDS[self.term])
        if self.operator in _DATE_OPS:
            if raw is None:
                return False
            at, bound = parse_time(raw), self.value
            if self.operator == "ON_OR_AFTER":
                return at >= bound
            if self.operator == "ON_OR_BEFORE":
                return at <= bound
            return bound <= at < bound + DAY_MS
        text, wanted = str(raw if raw is not None else "").lower(), str(self.value).lower()
        if self.operator == "IS":
            return text == wanted
        if self.operator == "IS_NOT":
            return text != wanted
        if self.operator == "CONTAINS":
            return wanted in text
        return wanted not in text


@dataclass(frozen=True)
class AlertQuery:
    group_clause: str
    groups: tuple[tuple[str, tuple[AlertFilter, ...]], ...]
    sort_key: str
    descending: bool

    @classmethod
    def from_body(cls, body: dict) -> AlertQuery:
        problems = []
        groups = []
        for group in body.get("groups") or []:
            filters = []
            for raw in group.get("filters") or []:
                term, op, value = raw.get("term"), raw.get("operator"), raw.get("value")
                if term not in TERMS:
                    problems.append({"type": "IllegalValue", "badFilter": raw, "description": f"unknown term {term!r}"})
                    continue
                if op not in (_DATE_OPS if term in _DATE_TERMS else _VALUE_OPS):
                    problems.append({"type": "IllegalOperator", "badFilter": raw,
                                     "description": f"operator {op!r} cannot be used on {term}"})
                    continue
                if op in _DATE_OPS:
                    try:
                        value = parse_time(value)
                    except (TypeError, ValueError):
                        problems.append({"type": "IllegalValue", "badFilter": raw,
                                         "description": f"{value!r} is not an ISO-8601 time"})
                        continue
                filters.append(AlertFilter(term, op, value))
            groups.append((str(group.get("filterClause", "AND")).upper(), tuple(filters)))
        sort_key = body.get("srtKey") or "CreatedAt"
        if sort_key not in _FIELDS:
            problems.append({"type": "IllegalValue", "badFilter": None, "description": f"cannot sort by {sort_key!r}"})
        direction = body.get("srtDirection") or "ASC"  # the OpenAPI enum ASC / DESC, default ASC
        if direction not in ("ASC", "DESC"):
            problems.append({"type": "IllegalValue", "badFilter": None,
                             "description": f"srtDirection must be ASC or DESC, got {direction!r}"})
        if problems:
            raise ApiError(400, "Bad Request", "the alert query has problems", {"problems": problems})
        return cls(str(body.get("groupClause", "AND")).upper(), tuple(groups), sort_key, direction == "DESC")

    def test(self, alert: dict) -> bool:
        results = []
        for clause, filters in self.groups:
            if not filters:
                continue
            hits = (f.test(alert) for f in filters)
            results.append(any(hits) if clause == "OR" else all(hits))
        if not results:
            return True
        return any(results) if self.group_clause == "OR" else all(results)

    def created_bounds(self) -> tuple[int | None, int | None]:
        """CreatedAt bounds every match must satisfy (only from AND-combined filters)."""
        lo = hi = None
        groups = self.groups if self.group_clause == "AND" or len(self.groups) == 1 else ()
        for clause, filters in groups:
            if clause == "OR" and len(filters) > 1:
                continue
            for f in filters:
                if f.term != "CreatedAt":
                    continue
                if f.operator in ("ON_OR_AFTER", "ON"):
                    lo = f.value if lo is None else max(lo, f.value)
                if f.operator == "ON_OR_BEFORE":
                    hi = f.value if hi is None else min(hi, f.value)
                if f.operator == "ON":
                    hi = f.value + DAY_MS - 1 if hi is None else min(hi, f.value + DAY_MS - 1)
        return lo, hi

    @property
    def only_created_at(self) -> bool:
        return self.sort_key == "CreatedAt" and all(f.term == "CreatedAt" for _, fs in self.groups for f in fs)


def alert_keys(tenant: Tenant, query: AlertQuery, clock: int) -> list[tuple[int, int]]:
    """(session index, rule slot) of every matching alert visible at ``clock``, in answer order."""
    lo, hi = query.created_bounds()
    earliest = lo - MAX_ALERT_DELAY_MS if lo is not None else None
    indices = list(tenant.index_range(earliest, hi + 1 if hi is not None else None, clock))
    if earliest is not None:  # late sessions raise their alerts once observed, days after they began
        indices = tenant.late_indices(earliest - MAX_LATE_MS, earliest, clock) + indices
    slots = {rule.key: k for k, rule in enumerate(c.RULES)}
    found = []
    if query.only_created_at:  # from the facts arrays: no plan per session
        facts = tenant.facts
        if indices:
            facts.ensure(min(indices), max(indices) + 1)
        for i in indices:
            for slot, created in facts.alerts(i):
                if created > clock:
                    break
                alert = {"createdAt": iso_ms(created), "id": tenant.alert_id(i, c.RULES[slot])}
                if query.test(alert):
                    found.append((created, alert["id"], i, slot))
        found.sort(key=lambda item: (item[0], item[1]), reverse=query.descending)
        return [(i, slot) for _, _, i, slot in found]
    for i in indices:
        plan = tenant.plan(i)
        for rule, created in zip(plan.rules, plan.alert_times(), strict=True):
            if created > clock:
                continue
            alert = tenant.alert(plan, slots[rule.key], clock)
            sort_value = created if query.sort_key == "CreatedAt" else (alert.get(_FIELDS[query.sort_key]) or "")
            if query.test(alert):
                found.append((sort_value, alert["id"], i, slots[rule.key]))
    found.sort(key=lambda item: (item[0], item[1]), reverse=query.descending)
    return [(i, slot) for _, _, i, slot in found]

"""Sessions: what happened (a ``SessionPlan``, fixed by seed and index) and what the API shows of it
at a given clock (late alerts, scoring, triage, re-opening all happen after the session begins)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from incydr_sandbox.config import DAY_MS, HOUR_MS, MINUTE_MS
from incydr_sandbox.identities import Actor
from incydr_sandbox.rand import indexed_id, iso_ms, rng, unit, uuid_for, weighted
from incydr_sandbox.tenant import catalog as c

if TYPE_CHECKING:
    from incydr_sandbox.tenant import Tenant

OBSERVE_LAG_MS = 2 * MINUTE_MS  # a session is visible this long after it begins...
# ...unless its device was offline: this share of sessions is first observed (``firstObserved``)
# between MIN_LATE_MS and MAX_LATE_MS after it began, when the device reconnects and uploads.
LATE_SHARE = 0.03
MIN_LATE_MS, MAX_LATE_MS = 30 * HOUR_MS, 8 * DAY_MS
MIN_ALERT_DELAY_MS = 15 * MINUTE_MS
# Latest createdAt after beginTime, counted from the moment the session was seen (begin + lag).
MAX_ALERT_DELAY_MS = 3 * HOUR_MS + len(c.RULES) * 1000
ALERT_PROBABILITY = 0.86  # of a session that some enabled rule matches
# This share of triaged alerted sessions is triaged within about two hours of the alert (an analyst on
# shift): with the rest (hours to days later) the demo's fresh day holds tips Code42 already cleared.
QUICK_TRIAGE_SHARE = 0.3
CLOSED_STATES = (("CLOSED_TP", 0.35), ("CLOSED_FP", 0.25), ("CLOSED_TP_BENIGN", 0.2), ("CLOSED", 0.2))
SESSION_TYPES = (("STANDARD", 0.98), ("ACCOUNT_TAKE_OVER", 0.02))
CONTENT_TYPES = (("PII",), ("PCI",), ("PII", "PHI"), ("Credentials",))


@dataclass(frozen=True)
class Change:
    at: int
    state: str
    analyst: int
    note: str


@dataclass(frozen=True)
class SessionPlan:
    """Everything about session ``index`` that does not depend on the clock."""

    index: int
    session_id: str
    actor: Actor
    type: str
    begin: int
    end: int  # of its last event; an open session's endTime grows towards it (``end_at``)
    observed: int  # firstObserved: when Code42 first saw it (nothing about it is visible before)
    vector: c.Vector
    destination: str
    file_categories: tuple[str, ...]
    initial: tuple[c.Indicator, ...]  # known when first observed
    indicators: tuple[c.Indicator, ...]  # all of them, known once scored
    scored_at: int
    n_events: int
    rules: tuple[c.RuleDef, ...]  # rules that alert on it (empty: no alert)
    alert_at: int | None
    inspection: tuple[int, tuple[str, ...]] | None  # (done at, content types found)
    changes: tuple[Change, ...]  # triage and re-opening, in time order

    @property
    def late(self) -> bool:
        return self.observed - self.begin > OBSERVE_LAG_MS

    def end_at(self, clock: int) -> int:
        """endTime as shown at ``clock``: a session still gaining events ends at the clock."""
        return min(self.end, max(clock, self.observed))

    @property
    def initial_score(self) -> int:
        return sum(i.weight for i in self.initial)

    @property
    def final_score(self) -> int:
        return sum(i.weight for i in self.indicators)

    def score_at(self, clock: int) -> int:
        return self.final_score if clock >= self.scored_at else self.initial_score

    def indicators_at(self, clock: int) -> tuple[c.Indicator, ...]:
        return self.indicators if clock >= self.scored_at else self.initial

    def alert_times(self) -> tuple[int, ...]:
        """createdAt of each alert (one per rule, a second apart)."""
        if self.alert_at is None:
            return ()
        return tuple(self.alert_at + k * 1000 + self.index % 997 for k in range(len(self.rules)))

    def alerts_visible(self, clock: int) -> int:
        return sum(1 for t in self.alert_times() if t <= clock)

    def state_at(self, clock: int) -> str:
        state = "OPEN"
        for change in self.changes:
            if change.at <= clock:
                state = change.state
        return state

    def inspection_status(self, clock: int) -> str | None:
        if self.inspection is None or self.alert_at is None or self.alert_at > clock:
            return None
        done, found = self.inspection
        if clock < done:
            return "PENDING"
        return "FOUND" if found else "NOT_FOUND"

    def last_updated(self, clock: int) -> int:
        """New events (a growing endTime), scoring, alerts, triage and inspection all update it."""
        times = [self.observed, self.end_at(clock), self.scored_at, *self.alert_times(),
                 *(ch.at for ch in self.changes)]
        if self.inspection is not None and self.alert_at is not None:
            times.append(self.inspection[0])
        return max(t for t in times if t <= clock)


def plan_session(tenant: Tenant, i: int) -> SessionPlan:
    seed = tenant.seed
    r = rng(seed, "session", i)
    begin = tenant.begin_time(i)
    observed = tenant.observed_time(i)
    seen = observed - OBSERVE_LAG_MS  # what follows (scoring, alerts, triage) starts once it is seen
    actor = tenant.pick_actor(r, begin)
    vector = _pick_vector(r, actor)
    categories = tuple(dict.fromkeys(r.choice(vector.file_categories) for _ in range(r.choice((1, 1, 2)))))
    file_indicators = [c.FILE_CATEGORY_INDICATOR[cat] for cat in categories]
    if r.random() < 0.07:
        file_indicators.append(c.FILE_MISMATCH)
    user_indicators = []
    if actor.person is not None:
        if actor.person.departing(begin):
            user_indicators.append(c.DEPARTING)
        if actor.person.high_impact:
            user_indicators.append(c.HIGH_IMPACT)
        if actor.person.employee_type == "contractor":
            user_indicators.append(c.CONTRACTOR)
    hour = datetime.fromtimestamp(begin / 1000, tz=UTC).hour
    activity = []
    if (hour < 7 or hour >= 19) and r.random() < 0.7:
        activity.append(c.OFF_HOURS)
    if r.random() < 0.35:
        activity.append(c.REMOTE)
    if r.random() < 0.15:
        activity.append(c.FIRST_USE)
    initial = (vector.indicator, *user_indicators)
    indicators = tuple(dict.fromkeys((vector.indicator, *file_indicators, *user_indicators, *activity)))
    end = begin + r.randint(2, 90) * MINUTE_MS
    scored_at = seen + r.randint(5, 14) * MINUTE_MS

    keys = frozenset(ind.key for ind in indicators)
    final_severity = c.severity_of(sum(ind.weight for ind in indicators))
    matched = tuple(rule for rule in c.RULES if rule.matches(vector, keys, final_severity))
    alerted = bool(matched) and r.random() < ALERT_PROBABILITY
    alert_at = seen + r.randint(MIN_ALERT_DELAY_MS // 1000, 3 * HOUR_MS // 1000) * 1000 if alerted else None
    inspection = None
    if alerted:
        found = weighted(r, ((None, 0.6), *((t, 0.1) for t in CONTENT_TYPES)))
        inspection = (alert_at + r.randint(5, 45) * MINUTE_MS, found or ())
    return SessionPlan(
        index=i, session_id=indexed_id(seed, "session", i), actor=actor, type=weighted(r, SESSION_TYPES),
        begin=begin, end=end, observed=observed, vector=vector, destination=r.choice(vector.destinations), file_categories=categories,
        initial=tuple(dict.fromkeys(initial)), indicators=indicators, scored_at=scored_at,
        n_events=min(25, 1 + int(r.expovariate(1 / 5))), rules=matched if alerted else (), alert_at=alert_at,
        inspection=inspection,
        changes=_changes(r, seen, alert_at, quick=unit(seed, "quick-triage", i) < QUICK_TRIAGE_SHARE),
    )


def _pick_vector(r, actor: Actor) -> c.Vector:
    if actor.person is None:  # service accounts sync to cloud storage or push code
        return c.VECTORS[1] if r.random() < 0.7 else c.VECTORS[5]
    return weighted(r, tuple((v, v.share) for v in c.VECTORS))


def _changes(r, begin: int, alert_at: int | None, *, quick: bool = False) -> tuple[Change, ...]:
    """Triage (most alerted sessions, a few others) and sometimes re-opening on new data. A
    ``quick`` alerted session is triaged 1-2 h after its alert instead of hours to days later (the
    same random draws either way, so nothing else about the session changes)."""
    if alert_at is not None and r.random() < 0.85:
        delay_h = min(r.expovariate(1 / 18), 120)
        at = alert_at + int((delay_h / 120 if quick else delay_h) * HOUR_MS) + HOUR_MS
        state = weighted(r, CLOSED_STATES)
    elif alert_at is None and r.random() < 0.2:
        at, state = begin + r.randint(2, 7 * 24) * HOUR_MS, "CLOSED"
    else:
        return ()
    analyst = r.randrange(3)
    notes = {"CLOSED_TP": "Confirmed exfiltration; coaching assigned.", "CLOSED_FP": "Sanctioned destination.",
             "CLOSED_TP_BENIGN": "Real activity, business justified.", "CLOSED": "No action needed."}
    changes = [Change(at, state, analyst, notes[state])]
    if r.random() < 0.12:
        changes.append(Change(at + r.randint(1, 72) * HOUR_MS, "OPEN_NEW_DATA", analyst,
                              "New activity after closing."))
    return tuple(changes)


# --- rendering ----------------------------------------------------------------------------------
def analyst_id(seed: int, k: int) -> str:
    return uuid_for(seed, "analyst", k)


def render_session(tenant: Tenant, p: SessionPlan, clock: int) -> dict:
    """The session as ``GET /v1/sessions`` shows it at ``clock`` (every key present)."""
    seed = tenant.seed
    shown = p.indicators_at(clock)
    events = [e for e in event_cores(seed, p) if e.at <= clock]
    by_severity = [0] * 5
    counts: dict[str, int] = {}
    for event in events:
        by_severity[c.severity_of(event.score)] += 1
        for ind in event.indicators:
            counts[ind.key] = counts.get(ind.key, 0) + 1
    scores = [{"score": p.initial_score, "severity": c.severity_of(p.initial_score), "sourceTimestamp": p.observed}]
    if clock >= p.scored_at and p.final_score != p.initial_score:
        scores.append({"score": p.final_score, "severity": c.severity_of(p.final_score),
                       "sourceTimestamp": p.scored_at})
    states = [{"state": "OPEN", "stateV2": "OPEN", "sourceTimestamp": p.observed, "userId": None}]
    notes = []
    for k, change in enumerate(p.changes):
        if change.at <= clock:
            user = analyst_id(seed, change.analyst)
            states.append({"state": change.state, "stateV2": change.state, "sourceTimestamp": change.at,
                           "userId": user})
            notes.append({"id": uuid_for(seed, "note", p.index, k), "content": change.note,
                          "sourceTimestamp": change.at, "userId": user})
    triggered = []
    for rule, created in zip(p.rules, p.alert_times(), strict=True):
        if created <= clock:
            triggered.append({"alertId": tenant.alert_id(p.index, rule), "ruleId": tenant.rule_id(rule),
                              "ruleName": rule.name, "lessonId": tenant.lesson_id(rule)})
    found = p.inspection[1] if p.inspection_status(clock) == "FOUND" else ()
    n_files = len(events)
    return {
        "sessionId": p.session_id,
        "tenantId": tenant.tenant_id,
        "actorId": p.actor.actor_id,
        "actorName": p.actor.name,
        "userId": None,
        "type": p.type,
        "beginTime": p.begin,
        "endTime": p.end_at(clock),
        "firstObserved": p.observed,
        "lastUpdated": p.last_updated(clock),
        "noRiskEvents": by_severity[0],
        "lowEvents": by_severity[1],
        "moderateEvents": by_severity[2],
        "highEvents": by_severity[3],
        "criticalEvents": by_severity[4],
        "contextSummary": _context_summary(p, shown),
        "exfiltrationSummary": f"{p.actor.name} {p.vector.phrase.format(n=n_files)} ({p.destination}).",
        "riskIndicators": [{"id": ind.id, "name": ind.name, "weight": ind.weight, "eventCount": counts.get(ind.key, 0)}
                           for ind in shown],
        "scores": scores,
        "states": states,
        "triggeredAlerts": triggered,
        "notes": notes,
        "contentInspectionResults": {"detectedOnAlerts": list(found)},
    }


def _context_summary(p: SessionPlan, shown: tuple[c.Indicator, ...]) -> str | None:
    context = [ind.name.lower() for ind in shown if ind.category in ("user", "activity")]
    return f"Context: {', '.join(context)}." if context else None


def render_alerts(tenant: Tenant, p: SessionPlan, clock: int) -> list[dict]:
    """The session's alerts created at or before ``clock``, as ``query-alerts`` shows them."""
    out = []
    for rule, created in zip(p.rules, p.alert_times(), strict=True):
        if created <= clock:
            out.append(render_alert(tenant, p, rule, created, clock))
    return out


def render_alert(tenant: Tenant, p: SessionPlan, rule: c.RuleDef, created: int, clock: int) -> dict:
    closing = next((ch for ch in reversed(p.changes) if ch.at <= clock), None)
    resolved = closing is not None and closing.state.startswith("CLOSED")
    on = p.actor.watchlists(created)
    watchlists = [{"id": tenant.watchlist_id(wl.key), "name": wl.name, "type": wl.type,
                   "isSignificant": rule.watchlist == wl.key} for wl in c.WATCHLISTS if wl.key in on]
    return {
        "tenantId": tenant.tenant_id,
        "type": rule.rule_type,
        "id": tenant.alert_id(p.index, rule),
        "createdAt": iso_ms(created),
        "state": "RESOLVED" if resolved else "OPEN",
        "stateLastModifiedBy": analyst_id(tenant.seed, closing.analyst) if resolved else None,
        "stateLastModifiedAt": iso_ms(closing.at) if resolved else None,
        "name": rule.name,
        "description": rule.description,
        "actor": p.actor.name,
        "actorId": p.actor.actor_id,
        "target": "N/A",
        "severity": rule.severity,
        "riskSeverity": c.RISK_SEVERITY_NAMES[c.severity_of(p.final_score)],
        "ruleId": tenant.rule_id(rule),
        "watchlists": watchlists,
    }


# --- file events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventCore:
    at: int
    category: str
    indicators: tuple[c.Indicator, ...]

    @property
    def score(self) -> int:
        return sum(i.weight for i in self.indicators)


def event_cores(seed: int, p: SessionPlan) -> list[EventCore]:
    r = rng(seed, "events", p.index)
    session_wide = tuple(i for i in p.indicators if i.category in ("user", "activity"))
    mismatch = c.FILE_MISMATCH in p.indicators
    times = sorted(p.begin + r.randint(0, p.end - p.begin) for _ in range(p.n_events))
    out = []
    for j, at in enumerate(times):
        category = p.file_categories[j % len(p.file_categories)] if j < len(p.file_categories) else \
            r.choice(p.file_categories)
        inds = [p.vector.indicator, c.FILE_CATEGORY_INDICATOR[category]]
        if mismatch and (j == 0 or r.random() < 0.3):
            inds.append(c.FILE_MISMATCH)
        out.append(EventCore(at, category, tuple(dict.fromkeys((*inds, *session_wide)))))
    return out


def render_file_events(tenant: Tenant, p: SessionPlan, clock: int) -> list[dict]:
    """The session's file events observed by ``clock`` (an open session keeps gaining them)."""
    seed = tenant.seed
    r = rng(seed, "event-files", p.index)
    user_uid = uuid_for(seed, "user", p.actor.actor_id)
    device = uuid_for(seed, "device", p.actor.actor_id)[:18]
    out = []
    for j, ev in enumerate(event_cores(seed, p)):
        if ev.at > clock:
            break  # the random draws of earlier events do not depend on later ones
        ext = r.choice(c.FILE_EXTENSIONS[ev.category])
        real_ext = "exe" if c.FILE_MISMATCH in ev.indicators else ext
        name = f"{r.choice(c.FILE_STEMS)}-{r.randint(1, 999)}.{ext}"
        digest = hashlib.sha256(f"{seed}/{p.index}/{j}/{name}".encode()).hexdigest()
        severity = c.severity_of(ev.score)
        out.append({
            "@timestamp": iso_ms(ev.at),
            "event": {"id": f"0_{uuid_for(seed, 'fe', p.index, j)}_{p.index}_{j}", "action": p.vector.action,
                      "vector": p.vector.event_vector, "observer": p.vector.observer,
                      "inserted": iso_ms(ev.at + 40_000 + r.randint(0, 60_000)), "shareType": None},
            "user": {"email": p.actor.name, "id": user_uid, "actorId": p.actor.actor_id, "deviceUid": device},
            "file": {"name": name, "directory": "/Users/" + p.actor.name.split("@")[0] + "/Documents/",
                     "category": ev.category, "categoryByExtension": ev.category,
                     "categoryByBytes": "Executable" if real_ext != ext else ev.category,
                     "mimeTypeByExtension": None, "sizeInBytes": r.randint(2_000, 80_000_000),
                     "hash": {"sha256": digest, "md5": digest[:32]}, "url": None},
            "destination": {"category": p.vector.destination_category, "name": p.destination},
            "source": {"category": "Device" if p.vector.observer == "Endpoint" else "Cloud Storage",
                       "name": f"{p.actor.name.split('@')[0]}-laptop" if p.vector.observer == "Endpoint"
                       else "Google Drive (corporate)"},
            "risk": {"score": ev.score, "severity": c.RISK_SEVERITY_NAMES[severity], "trusted": False,
                     "indicators": [{"id": ind.id, "name": ind.name, "weight": ind.weight}
                                    for ind in ev.indicators]},
        })
    return out

"""The synthetic tenant: actors, alert rules, sessions, alerts and file events.

Everything is a pure function of (seed, index, clock). Sessions are never materialised: session
``i`` begins at ``span_start + i * slot + jitter(i)`` with ``jitter < slot``, so begin times grow
with ``i`` and a time range maps to an index range by bisection; a page is generated on demand.

Sessions change after they start, as real ones do: each has a schedule of later changes (a late
alert 15 min - 3 h after it begins, a state change hours to days later). What the API shows
depends on the sandbox clock: ``lastUpdated`` is the latest change at or before the clock, and
alerts created after the clock are not visible yet.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from incydr_sandbox.config import TenantConfig
from incydr_sandbox.identities import Person, people

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
MAX_ALERT_DELAY_MS = 180 * MINUTE_MS


@dataclass(frozen=True)
class Indicator:
    id: str
    name: str
    weight: int
    vector: str
    destination_category: str
    file_category: str


INDICATORS = (
    Indicator("removable-media", "Removable media", 3, "REMOVABLE_MEDIA", "Removable Media", "Document"),
    Indicator("personal-cloud", "Personal cloud storage", 3, "CLOUD_SYNC", "Cloud Storage", "Document"),
    Indicator("web-upload", "Web upload to personal destination", 2, "WEB_UPLOAD", "Personal Web", "Spreadsheet"),
    Indicator("public-link", "Public link share", 4, "CLOUD_SHARE", "Public Link", "Presentation"),
    Indicator("source-code", "Source code", 3, "GIT_PUSH", "Source Code Repository", "SourceCode"),
    Indicator("departing-employee", "Departing employee", 4, "ANY", "Any", "Any"),
    Indicator("file-mismatch", "File type mismatch", 2, "ENDPOINT", "Endpoint", "Archive"),
    Indicator("off-hours", "Off-hours activity", 1, "ENDPOINT", "Endpoint", "Document"),
    Indicator("zip-file", "Zip file", 1, "ENDPOINT", "Endpoint", "Archive"),
    Indicator("personal-email", "Email to personal account", 2, "EMAIL", "Personal Email", "Document"),
)

# (id, name, type, severity, vectors matched by indicator ids, system rule, enabled)
RULES = (
    ("rule-removable-media", "Removable Media Exfiltration", "FED_ENDPOINT_EXFILTRATION", "HIGH",
     ("removable-media",), True, True),
    ("rule-cloud-upload", "Personal Cloud Upload", "FED_ENDPOINT_EXFILTRATION", "MEDIUM",
     ("personal-cloud", "web-upload"), True, True),
    ("rule-public-share", "Cloud Share Made Public", "FED_CLOUD_SHARE_PERMISSIONS", "HIGH",
     ("public-link",), True, True),
    ("rule-source-code", "Source Code Exfiltration", "FED_FILE_TYPE_MISMATCH", "HIGH", ("source-code",), False, True),
    ("rule-departing", "Departing Employee Exfiltration", "FED_COMPOSITE", "HIGH",
     ("departing-employee",), False, True),
    ("rule-mismatch", "File Type Mismatch", "FED_FILE_TYPE_MISMATCH", "LOW", ("file-mismatch",), True, True),
    ("rule-personal-email", "Email to Personal Account", "FED_ENDPOINT_EXFILTRATION", "MEDIUM",
     ("personal-email",), False, True),
    ("rule-zip", "Zip Files Moved", "FED_FILE_NAME_MATCH", "LOW", ("zip-file",), False, False),
)

STATE_CHANGES = (("CLOSED_TP", 0.35), ("CLOSED_FP", 0.25), ("OPEN_NEW_DATA", 0.15), ("CLOSED_TP_BENIGN", 0.1))
SESSION_TYPES = ("ENDPOINT", "CLOUD", "EMAIL")
SEVERITY_NAMES = ("NO_RISK", "LOW", "MODERATE", "HIGH", "CRITICAL")


def _rule_vectors(indicator_ids: tuple[str, ...]) -> dict:
    vectors: dict = {}
    ids = set(indicator_ids)
    if ids & {"removable-media", "departing-employee", "file-mismatch", "zip-file"}:
        vectors["removableMedia"] = {"isEnabled": True, "criteriaOrder": 0}
    if ids & {"personal-cloud", "web-upload", "departing-employee"}:
        vectors["fileUpload"] = {"cloudStorage": {"observeAll": True, "destinations": []},
                                 "advancedSettings": {"observeUncategorized": True}, "criteriaOrder": 0}
    if "source-code" in ids:
        vectors["fileUpload"] = {"sourceCodeRepository": {"observeAll": True, "destinations": []}, "criteriaOrder": 0}
    if "public-link" in ids:
        share = {"observeAll": False, "publicLinkShare": True, "directShare": False}
        vectors["cloudSharing"] = {"observeAll": False, "box": share, "googleDrive": share, "oneDrive": share,
                                   "criteriaOrder": 0}
    if "personal-email" in ids:
        vectors["email"] = {"observeAll": False, "gmail": True, "microsoft365": True, "criteriaOrder": 0}
    return vectors


def severity_of(score: int) -> int:
    """Risk-score bands: 0 no risk, 1-3 low, 4-6 moderate, 7-8 high, 9+ critical."""
    if score <= 0:
        return 0
    if score <= 3:
        return 1
    if score <= 6:
        return 2
    if score <= 8:
        return 3
    return 4


def iso_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _rng(seed: int, *parts) -> random.Random:
    digest = hashlib.blake2b(f"{seed}/{'/'.join(map(str, parts))}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _session_id(rng: random.Random, i: int) -> str:
    """UUID-shaped, random-looking, with the index in the last group (O(1) lookups)."""
    return f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-a{rng.getrandbits(12):03x}-{i:012x}"


@dataclass(frozen=True)
class SessionPlan:
    """Everything about session i that does not depend on the clock."""

    index: int
    session_id: str
    person: Person
    type: str
    begin: int
    end: int
    indicators: tuple[tuple[Indicator, int], ...]  # (indicator, event count)
    initial_score: int
    final_score: int
    alert_delay: int | None  # ms after begin when its alerts are created (None: no alert)
    rules: tuple[tuple, ...]
    alert_ids: tuple[str, ...]
    state_change: tuple[int, str] | None  # (ms after begin, new state)


class Tenant:
    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        rng = _rng(config.seed, "tenant")
        self.tenant_id = _uuid(rng)
        self.slot = (config.days * 86_400_000) / max(config.sessions, 1)

    # --- people --------------------------------------------------------------------------------
    @cached_property
    def people(self) -> list[Person]:
        return people(self.config.seed, self.config.actors)

    @cached_property
    def actors_by_id(self) -> dict[str, Person]:
        return {p.actor_id: p for p in self.people}

    def actor(self, person: Person) -> dict:
        return person.code42_actor()

    # --- alert rules ---------------------------------------------------------------------------
    @cached_property
    def alert_rules(self) -> list[dict]:
        """Rules in the shape of ``GET /v2/alert-rules`` (vectors and filters as objects)."""
        created = iso_ms(self.config.span_start_ms - 90 * 86_400_000)
        rules = []
        for rule_id, name, rtype, severity, indicator_ids, system, enabled in RULES:
            names = [i.name for i in INDICATORS if i.id in indicator_ids]
            filters = {
                "riskIndicator": {"categories": [], "indicators": names, "criteriaOrder": 1},
                "riskSeverity": {"low": severity == "LOW", "moderate": severity != "HIGH", "high": True,
                                 "critical": True, "criteriaOrder": 2},
            }
            if "departing-employee" in indicator_ids:
                filters["watchlist"] = {"watchlists": [{"id": "wl-departing"}], "criteriaOrder": 3}
            if "source-code" in indicator_ids:
                filters["fileCategory"] = {"categories": ["SourceCode"], "criteriaOrder": 3}
            if "file-mismatch" in indicator_ids:
                filters["fileTypeMismatch"] = {"isEnabled": True, "criteriaOrder": 3}
            rules.append({
                "id": rule_id, "name": name, "description": f"Alert on {name.lower()}.",
                "severity": severity, "isEnabled": enabled, "source": "Alerting",
                "notifications": {"isEnabled": False, "contacts": []},
                "education": {"lessonId": f"lesson-{rule_id.removeprefix('rule-')}", "messagingMethod": None},
                "vectors": _rule_vectors(indicator_ids),
                "filters": filters,
                "createdAt": created, "createdBy": "admin@example.com",
                "modifiedAt": created, "modifiedBy": "admin@example.com",
                "isSystemRule": system,
            })
        return rules

    # --- sessions ------------------------------------------------------------------------------
    def begin_time(self, i: int) -> int:
        jitter = _rng(self.config.seed, "j", i).random() * 0.9
        return int(self.config.span_start_ms + (i + jitter) * self.slot)

    def index_range(self, on_or_after: int | None, before: int | None) -> range:
        """Indices of sessions with on_or_after <= beginTime < before."""
        return range(self._first_at_or_after(on_or_after), self._first_at_or_after(before))

    def _first_at_or_after(self, t: int | None) -> int:
        n = self.config.sessions
        if t is None:
            return n
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.begin_time(mid) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def plan(self, i: int) -> SessionPlan:
        rng = _rng(self.config.seed, "s", i)
        people_ = self.people
        person = people_[min(int(len(people_) * rng.random() ** 1.6), len(people_) - 1)]
        begin = self.begin_time(i)
        picked = rng.sample(INDICATORS, rng.choice((1, 1, 2, 2, 3)))
        if person.departing and not any(ind.id == "departing-employee" for ind in picked):
            picked.append(INDICATORS[5])
        indicators = tuple((ind, rng.randint(1, 40)) for ind in picked)
        final = sum(ind.weight for ind, _ in indicators)
        initial = max(1, final - rng.choice((0, 0, 1, 2)))
        rules = tuple(r for r in RULES if r[6] and any(ind.id in r[4] for ind, _ in indicators))
        has_alert = bool(rules) and rng.random() < 0.8
        alert_delay = rng.randint(15, 180) * MINUTE_MS if has_alert else None
        alert_ids = tuple(_uuid(rng) for _ in rules) if has_alert else ()
        change = None
        roll, acc = rng.random(), 0.0
        for state, p in STATE_CHANGES:
            acc += p
            if roll < acc:
                change = (rng.randint(2, 72) * HOUR_MS, state)
                break
        return SessionPlan(
            index=i, session_id=_session_id(rng, i), person=person, type=rng.choice(SESSION_TYPES), begin=begin,
            end=begin + rng.randint(2, 90) * MINUTE_MS, indicators=indicators, initial_score=initial,
            final_score=final, alert_delay=alert_delay, rules=rules if has_alert else (), alert_ids=alert_ids,
            state_change=change,
        )

    def session(self, plan: SessionPlan, clock: int) -> dict:
        """The session as the API shows it at ``clock``."""
        p = plan
        observed = p.begin + 30_000
        changes = [observed]
        scores = [{"score": p.initial_score, "severity": severity_of(p.initial_score), "sourceTimestamp": observed}]
        states = [{"state": "OPEN", "stateV2": "OPEN", "sourceTimestamp": observed, "userId": None}]
        triggered = []
        if p.alert_delay is not None and p.begin + p.alert_delay <= clock:
            at = p.begin + p.alert_delay
            changes.append(at)
            if p.final_score != p.initial_score:
                scores.append({"score": p.final_score, "severity": severity_of(p.final_score), "sourceTimestamp": at})
            triggered = [
                {"alertId": aid, "ruleId": r[0], "ruleName": r[1], "lessonId": f"lesson-{r[0].removeprefix('rule-')}"}
                for aid, r in zip(p.alert_ids, p.rules, strict=True)
            ]
        notes = []
        if p.state_change and p.begin + p.state_change[0] <= clock:
            at, state = p.begin + p.state_change[0], p.state_change[1]
            changes.append(at)
            states.append({"state": state, "stateV2": state, "sourceTimestamp": at, "userId": "analyst-1"})
            notes.append({"id": f"note-{p.session_id[:8]}", "content": f"Reviewed: {state}",
                          "sourceTimestamp": at, "userId": "analyst-1"})
        score = scores[-1]["score"]
        by_severity = [0, 0, 0, 0, 0]
        for ind, count in p.indicators:
            by_severity[severity_of(ind.weight * 2)] += count
        names = ", ".join(ind.name for ind, _ in p.indicators)
        return {
            "sessionId": p.session_id,
            "tenantId": self.tenant_id,
            "actorId": p.person.actor_id,
            "actorName": p.person.code42_name,
            "userId": None,
            "type": p.type,
            "beginTime": p.begin,
            "endTime": p.end,
            "firstObserved": observed,
            "lastUpdated": max(t for t in changes if t <= clock),
            "noRiskEvents": by_severity[0],
            "lowEvents": by_severity[1],
            "moderateEvents": by_severity[2],
            "highEvents": by_severity[3],
            "criticalEvents": by_severity[4],
            "contextSummary": f"{p.person.code42_name} activity: {names}",
            "exfiltrationSummary": f"{sum(c for _, c in p.indicators)} file events; score {score}",
            "riskIndicators": [
                {"id": ind.id, "name": ind.name, "weight": ind.weight, "eventCount": count}
                for ind, count in p.indicators
            ],
            "scores": scores,
            "states": states,
            "triggeredAlerts": triggered,
            "notes": notes,
            "contentInspectionResults": {"detectedOnAlerts": ["PII"] if triggered and score >= 7 else []},
        }

    def alerts(self, plan: SessionPlan, clock: int) -> list[dict]:
        p = plan
        if p.alert_delay is None or p.begin + p.alert_delay > clock:
            return []
        created = p.begin + p.alert_delay
        closed = p.state_change is not None and p.begin + p.state_change[0] <= clock \
            and p.state_change[1].startswith("CLOSED")
        severity = SEVERITY_NAMES[severity_of(p.final_score)]
        watchlists = [{"id": "wl-departing", "name": "Departing Employees", "type": "DEPARTING_EMPLOYEE",
                       "isSignificant": True}] if p.person.departing else []
        out = []
        for aid, rule in zip(p.alert_ids, p.rules, strict=True):
            out.append({
                "tenantId": self.tenant_id, "type": rule[2], "id": aid, "createdAt": iso_ms(created),
                "state": "RESOLVED" if closed else "OPEN",
                "stateLastModifiedBy": "analyst-1" if closed else None,
                "stateLastModifiedAt": iso_ms(p.begin + p.state_change[0]) if closed else None,
                "name": rule[1], "description": f"Alert on {rule[1].lower()}.",
                "actor": p.person.code42_name, "actorId": p.person.actor_id, "target": "N/A",
                "severity": rule[3], "riskSeverity": severity, "ruleId": rule[0], "watchlists": watchlists,
            })
        return out

    def file_events(self, plan: SessionPlan) -> list[dict]:
        p = plan
        rng = _rng(self.config.seed, "fe", p.index)
        events = []
        for ind, count in p.indicators:
            for k in range(min(count, 5)):
                at = p.begin + rng.randint(0, max(p.end - p.begin, 1))
                name = f"{ind.file_category.lower()}-{rng.randint(1000, 9999)}.{rng.choice(('docx', 'xlsx', 'zip', 'py'))}"
                events.append({
                    "@timestamp": iso_ms(at),
                    "event": {"id": f"{p.session_id[:8]}-{ind.id}-{k}", "action": "file-moved",
                              "vector": ind.vector, "observer": "Endpoint", "inserted": iso_ms(at + 5000)},
                    "user": {"email": p.person.code42_name, "actorId": p.person.actor_id, "deviceUid": None},
                    "file": {"name": name, "category": ind.file_category,
                             "hash": {"sha256": hashlib.sha256(name.encode()).hexdigest(), "md5": None},
                             "sizeInBytes": rng.randint(1_000, 50_000_000), "url": None},
                    "destination": {"category": ind.destination_category, "name": ind.destination_category},
                    "source": {"category": "Corporate", "name": "Laptop"},
                    "risk": {"score": ind.weight, "severity": SEVERITY_NAMES[severity_of(ind.weight * 2)],
                             "indicators": [{"name": ind.name, "weight": ind.weight}]},
                })
        events.sort(key=lambda e: (e["@timestamp"], e["event"]["id"]))
        return events

    def find_session(self, session_id: str) -> SessionPlan | None:
        """The session's index is the id's last group, so a lookup needs no scan."""
        try:
            i = int(session_id.rsplit("-", 1)[1], 16)
        except (IndexError, ValueError):
            return None
        if not 0 <= i < self.config.sessions:
            return None
        plan = self.plan(i)
        return plan if plan.session_id == session_id else None

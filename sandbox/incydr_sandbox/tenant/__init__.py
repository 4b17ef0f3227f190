"""The synthetic tenant: actors, alert rules, sessions, alerts and file events.

Everything is a pure function of (seed, index, clock). Sessions are never materialised: session
``i`` begins at ``span_start + (i + jitter(i)) * slot`` with ``0 <= jitter < 0.9``, so begin times
grow with ``i``, a time range maps to an index range by arithmetic, and a page is generated on
demand. Sessions keep coming at the same rate after the anchor, visible once the sandbox clock
reaches them (``POST /_sandbox/advance``). A few are first observed days after they began (an
offline device): which ones is a hash of the index too, so a listing finds them without planning.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

from incydr_sandbox.config import DAY_MS, TenantConfig
from incydr_sandbox.identities import Actor, Directory, build_directory
from incydr_sandbox.rand import indexed_id, parse_indexed_id, rng, unit, uuid_for
from incydr_sandbox.tenant import catalog
from incydr_sandbox.tenant.facts import SessionFacts
from incydr_sandbox.tenant.rules import render_rules
from incydr_sandbox.tenant.sessions import (
    LATE_SHARE,
    MAX_ALERT_DELAY_MS,
    MAX_LATE_MS,
    MIN_LATE_MS,
    OBSERVE_LAG_MS,
    SessionPlan,
    plan_session,
    render_alert,
    render_alerts,
    render_file_events,
    render_session,
)

__all__ = ["MAX_ALERT_DELAY_MS", "MAX_LATE_MS", "SessionPlan", "Tenant"]
_RULE_SLOT = {rule.key: k for k, rule in enumerate(catalog.RULES)}


class Tenant:
    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.tenant_id = uuid_for(config.seed, "tenant")
        self.span_start = config.span_start_ms
        self.slot = (config.days * DAY_MS - OBSERVE_LAG_MS) / config.sessions
        self.directory: Directory = build_directory(config.seed, config.actors, config.anchor_ms, self.span_start)
        self.actors: list[Actor] = self.directory.actors
        self.actors_by_id = {a.actor_id: a for a in self.actors}
        self.actors_by_name = {a.name.lower(): a for a in self.actors}
        # Activity is heavy-tailed: a few actors cause many sessions; service accounts few.
        order = list(range(len(self.actors)))
        rng(config.seed, "activity").shuffle(order)
        weights = [0.0] * len(self.actors)
        for rank, k in enumerate(order):
            weights[k] = (0.15 if self.actors[k].person is None else 1.0) / (rank + 3) ** 0.9
        total, acc = sum(weights), 0.0
        self._cumulative = []
        for w in weights:
            acc += w / total
            self._cumulative.append(acc)
        self.alert_rules: list[dict] = render_rules(config.seed, self.span_start, self.rule_id, self.lesson_id,
                                                    self.watchlist_id)
        self.alert_rules_by_id = {r["id"]: r for r in self.alert_rules}
        self.plan = lru_cache(maxsize=8192)(self._plan)
        self.facts = SessionFacts(self._plan, _RULE_SLOT)

    def warm(self, clock: int) -> int:
        """Plan every session begun by ``clock`` into ``facts`` now (listings then need no plans)."""
        end = self.visible_end(clock)
        self.facts.ensure(0, end)
        return end

    # --- ids ------------------------------------------------------------------------------------
    def rule_id(self, rule: catalog.RuleDef) -> str:
        return uuid_for(self.seed, "rule", rule.key)

    def lesson_id(self, rule: catalog.RuleDef) -> str | None:
        """The rule's Instructor lesson, or None when Code42 Instructor does not educate for it.

        Instructor sends its own lesson when the rule's education ``messagingMethod`` is Email,
        Slack or Teams; ``ThirdPartyIntegration`` hands education to an integration (such as
        SecurityCoach) and no messaging method means no education: neither carries a lesson. The
        rule's ``education.lessonId`` and each triggered alert's ``lessonId`` follow this.
        """
        if rule.messaging not in catalog.INSTRUCTOR_MESSAGING:
            return None
        return uuid_for(self.seed, "lesson", rule.key)

    def watchlist_id(self, key: str) -> str:
        return uuid_for(self.seed, "watchlist", key)

    def alert_id(self, index: int, rule: catalog.RuleDef) -> str:
        return indexed_id(self.seed, "alert", index, _RULE_SLOT[rule.key])

    # --- time <-> index -------------------------------------------------------------------------
    def begin_time(self, i: int) -> int:
        return self.span_start + int((i + 0.9 * unit(self.seed, "jitter", i)) * self.slot)

    def is_late(self, i: int) -> bool:
        return unit(self.seed, "late", i) < LATE_SHARE

    def observed_time(self, i: int) -> int:
        """firstObserved of session ``i``: 2 minutes after it began, or days later for a late one."""
        if not self.is_late(i):
            return self.begin_time(i) + OBSERVE_LAG_MS
        return self.begin_time(i) + MIN_LATE_MS + int(unit(self.seed, "late-by", i) * (MAX_LATE_MS - MIN_LATE_MS))

    def late_indices(self, on_or_after: int, before: int, clock: int) -> list[int]:
        """The late sessions begun in [on_or_after, before) and observed by ``clock``."""
        found = self.index_range(on_or_after, before, clock)
        return [i for i in found if self.is_late(i) and self.observed_time(i) <= clock]

    def first_at_or_after(self, t: int) -> int:
        """The smallest index whose session begins at or after ``t`` (begin times grow with the index)."""
        i = max(0, int((t - self.span_start) / self.slot) - 1)
        while self.begin_time(i) < t:
            i += 1
        while i > 0 and self.begin_time(i - 1) >= t:
            i -= 1
        return i

    def visible_end(self, clock: int) -> int:
        """Sessions ``visible_end(clock)`` and later have not been observed by ``clock`` (of those
        before it, the late ones are observed only from their ``observed_time``)."""
        return self.first_at_or_after(clock - OBSERVE_LAG_MS + 1)

    def index_range(self, on_or_after: int | None, before: int | None, clock: int) -> range:
        """Indices of the sessions with on_or_after <= beginTime < before that may be visible at
        ``clock`` (a late one among them is visible only once ``plan.observed <= clock``)."""
        lo = self.first_at_or_after(on_or_after) if on_or_after is not None else 0
        hi = self.visible_end(clock)
        if before is not None:
            hi = min(hi, self.first_at_or_after(before))
        return range(lo, max(lo, hi))

    # --- sessions, alerts, events ---------------------------------------------------------------
    def pick_actor(self, r, at_ms: int) -> Actor:
        for _ in range(8):
            actor = self.actors[min(bisect.bisect_right(self._cumulative, r.random()), len(self.actors) - 1)]
            if actor.person is None or actor.person.employed(at_ms):
                return actor
        return self.actors[0]

    def _plan(self, i: int) -> SessionPlan:
        return plan_session(self, i)

    def session(self, plan: SessionPlan, clock: int) -> dict:
        return render_session(self, plan, clock)

    def alerts(self, plan: SessionPlan, clock: int) -> list[dict]:
        return render_alerts(self, plan, clock)

    def alert(self, plan: SessionPlan, slot: int, clock: int) -> dict | None:
        rule = catalog.RULES[slot]
        for r, created in zip(plan.rules, plan.alert_times(), strict=True):
            if r is rule and created <= clock:
                return render_alert(self, plan, rule, created, clock)
        return None

    def file_events(self, plan: SessionPlan, clock: int) -> list[dict]:
        return render_file_events(self, plan, clock)

    def find_session(self, session_id: str, clock: int) -> SessionPlan | None:
        """The plan of a session visible at ``clock``; its index is in the id, so there is no scan."""
        parsed = parse_indexed_id(session_id)
        if parsed is None or parsed[1] != 0 or not 0 <= parsed[0] < self.visible_end(clock):
            return None
        plan = self.plan(parsed[0])
        return plan if plan.session_id == session_id and plan.observed <= clock else None

    def find_alert(self, alert_id: str, clock: int) -> tuple[SessionPlan, int] | None:
        parsed = parse_indexed_id(alert_id)
        if parsed is None or not 0 <= parsed[1] < len(catalog.RULES):
            return None
        index, slot = parsed
        if not 0 <= index < self.visible_end(clock):
            return None
        plan = self.plan(index)
        return (plan, slot) if self.alert_id(index, catalog.RULES[slot]) == alert_id else None

    # --- actors ---------------------------------------------------------------------------------
    def parent_of(self, actor: Actor) -> Actor:
        return self.actors_by_id.get(actor.parent_actor_id or "", actor)

    def family_of(self, actor: Actor) -> dict:
        parent = self.parent_of(actor)
        children = [a.api() for a in self.actors if a.parent_actor_id == parent.actor_id]
        return {"parent": parent.api(), "children": children}

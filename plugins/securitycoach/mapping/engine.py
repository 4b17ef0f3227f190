"""The mapping decision, pure Python: actors x KSAT users x rules (+ CSV overrides) -> decisions.

For each actor, enabled rules run in order; the first rule that finds candidates decides:
exactly one KSAT user maps the actor (recording the rule and the evidence), two or more leave it
unmapped with reason "ambiguous" (never guessed), none passes to the next rule. Lookups go
through dictionaries built once, so 100k actors x 100k users is a linear pass.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from securitycoach.mapping.rules import (
    Code42AlternateName,
    CsvOverride,
    ExactEmail,
    FieldMatch,
    KsatAlias,
    ParentActor,
    RuleSet,
    Transform,
)


@dataclass(frozen=True)
class ActorIdentity:
    actor_id: str
    name: str | None
    alternate_names: tuple[str, ...] = ()
    parent_actor_id: str | None = None
    fields: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class KsatIdentity:
    ksat_user_id: int
    email: str
    aliases: tuple[str, ...] = ()
    fields: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Decision:
    actor_id: str
    ksat_user_id: int | None
    rule: str | None
    evidence: str
    reason: str | None = None  # for unmapped actors: "ambiguous" or "no_match"


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


class _Index:
    def __init__(self, users: Iterable[KsatIdentity]) -> None:
        self.by_email: dict[str, set[int]] = defaultdict(set)
        self.by_alias: dict[str, set[int]] = defaultdict(set)
        self.by_field: dict[tuple[str, str], set[int]] = defaultdict(set)
        for user in users:
            self.by_email[_norm(user.email)].add(user.ksat_user_id)
            for alias in user.aliases:
                self.by_alias[_norm(alias)].add(user.ksat_user_id)
            for name, value in user.fields.items():
                if value not in (None, ""):
                    self.by_field[(name, _norm(str(value)))].add(user.ksat_user_id)

    def email_or_alias(self, address: str) -> set[int]:
        return self.by_email.get(address, set()) | self.by_alias.get(address, set())


def _transformed(rule: Transform, address: str) -> str | None:
    local, at, domain = address.partition("@")
    if not at:
        return None
    if rule.strip_plus_tag:
        local = local.split("+", 1)[0]
    domain = rule.domain_rewrite.get(domain, domain)
    result = f"{local}@{domain}"
    if rule.regex is not None:
        match = re.fullmatch(rule.regex, result, flags=re.IGNORECASE)
        if not match:
            return None
        result = rule.replace.format(*match.groups(), **match.groupdict())
    result = _norm(result)
    return result if result != address else None


def map_actors(
    actors: list[ActorIdentity],
    users: Iterable[KsatIdentity],
    ruleset: RuleSet,
    overrides: dict[str, str] | None = None,
) -> list[Decision]:
    """Decide every actor. ``overrides``: CSV rows, Code42 identifier -> KSAT email."""
    index = _Index(users)
    overrides = {_norm(k): _norm(v) for k, v in (overrides or {}).items()}
    rules = ruleset.enabled
    first = {a.actor_id: _decide(a, index, rules, overrides, None) for a in actors}
    if not any(isinstance(r, ParentActor) for r in rules):
        return list(first.values())
    return [_decide(a, index, rules, overrides, first) for a in actors]


def _decide(actor: ActorIdentity, index: _Index, rules: list, overrides: dict[str, str],
            parents: dict[str, Decision] | None) -> Decision:
    name = _norm(actor.name)
    for rule in rules:
        found: dict[int, str] = {}  # candidate -> evidence
        if isinstance(rule, CsvOverride):
            for key in (_norm(actor.actor_id), name, *map(_norm, actor.alternate_names)):
                if key and key in overrides:
                    for uid in index.by_email.get(overrides[key], ()):
                        found[uid] = f"CSV upload row {key!r} -> KSAT email {overrides[key]!r}"
                    break
        elif isinstance(rule, ExactEmail):
            for uid in index.by_email.get(name, ()):
                found[uid] = f"Code42 name {actor.name!r} = KSAT email (case-insensitive)"
        elif isinstance(rule, KsatAlias):
            for uid in index.by_alias.get(name, ()):
                found[uid] = f"Code42 name {actor.name!r} is a KSAT alias"
        elif isinstance(rule, Code42AlternateName):
            for alt in actor.alternate_names:
                for uid in index.email_or_alias(_norm(alt)):
                    found[uid] = f"Code42 alternate name {alt!r} = KSAT email or alias"
        elif isinstance(rule, Transform):
            rewritten = _transformed(rule, name)
            if rewritten:
                for uid in index.email_or_alias(rewritten):
                    found[uid] = f"Code42 name {actor.name!r} rewritten to {rewritten!r} = KSAT email or alias"
        elif isinstance(rule, FieldMatch):
            if rule.code42_field == "alternate_names":
                values = actor.alternate_names
            else:
                values = (actor.actor_id if rule.code42_field == "actor_id" else actor.fields.get(rule.code42_field),)
            for value in values:
                if value not in (None, ""):
                    for uid in index.by_field.get((rule.ksat_field, _norm(str(value))), ()):
                        found[uid] = f"Code42 {rule.code42_field} {value!r} = KSAT {rule.ksat_field}"
        elif isinstance(rule, ParentActor) and parents is not None and actor.parent_actor_id:
            parent = parents.get(actor.parent_actor_id)
            if parent is not None and parent.ksat_user_id is not None:
                found[parent.ksat_user_id] = (f"parent actor {actor.parent_actor_id} mapped by "
                                              f"{parent.rule!r}: {parent.evidence}")
        if len(found) == 1:
            (uid, evidence), = found.items()
            return Decision(actor.actor_id, uid, rule.name, evidence)
        if len(found) > 1:
            ids = ", ".join(str(u) for u in sorted(found))
            return Decision(actor.actor_id, None, rule.name, f"rule {rule.name!r} found KSAT users {ids}",
                            reason="ambiguous")
    return Decision(actor.actor_id, None, None, "no rule found a KSAT user", reason="no_match")

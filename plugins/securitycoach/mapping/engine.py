"""The mapping decision, pure Python: actors x KSAT users x rules (+ CSV overrides) -> decisions.

For each actor, enabled rules run in order; the first rule that finds candidates decides:
exactly one KSAT user maps the actor (recording the rule and the evidence), two or more leave it
unmapped with reason "ambiguous" (never guessed), none passes to the next rule. Lookups go
through dictionaries built once, so 100k actors x 100k users is a linear pass.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class _Asking:
    """What the rules look at for one actor: the actor, its normalised name and what they search."""

    actor: ActorIdentity
    name: str
    index: _Index
    overrides: dict[str, str]
    parents: dict[str, Decision] | None


def _by_csv(rule: CsvOverride, a: _Asking) -> dict[int, str]:
    for key in (_norm(a.actor.actor_id), a.name, *map(_norm, a.actor.alternate_names)):
        if key and key in a.overrides:
            return {uid: f"CSV upload row {key!r} -> KSAT email {a.overrides[key]!r}"
                    for uid in a.index.by_email.get(a.overrides[key], ())}
    return {}


def _by_email(rule: ExactEmail, a: _Asking) -> dict[int, str]:
    return {uid: f"Code42 name {a.actor.name!r} = KSAT email (case-insensitive)"
            for uid in a.index.by_email.get(a.name, ())}


def _by_alias(rule: KsatAlias, a: _Asking) -> dict[int, str]:
    return {uid: f"Code42 name {a.actor.name!r} is a KSAT alias" for uid in a.index.by_alias.get(a.name, ())}


def _by_alternate_name(rule: Code42AlternateName, a: _Asking) -> dict[int, str]:
    return {uid: f"Code42 alternate name {alt!r} = KSAT email or alias"
            for alt in a.actor.alternate_names for uid in a.index.email_or_alias(_norm(alt))}


def _by_transform(rule: Transform, a: _Asking) -> dict[int, str]:
    rewritten = _transformed(rule, a.name)
    if not rewritten:
        return {}
    return {uid: f"Code42 name {a.actor.name!r} rewritten to {rewritten!r} = KSAT email or alias"
            for uid in a.index.email_or_alias(rewritten)}


def _by_field(rule: FieldMatch, a: _Asking) -> dict[int, str]:
    if rule.code42_field == "alternate_names":
        values = a.actor.alternate_names
    elif rule.code42_field == "actor_id":
        values = (a.actor.actor_id,)
    else:
        values = (a.actor.fields.get(rule.code42_field),)
    return {uid: f"Code42 {rule.code42_field} {value!r} = KSAT {rule.ksat_field}"
            for value in values if value not in (None, "")
            for uid in a.index.by_field.get((rule.ksat_field, _norm(str(value))), ())}


def _by_parent(rule: ParentActor, a: _Asking) -> dict[int, str]:
    if a.parents is None or not a.actor.parent_actor_id:
        return {}
    parent = a.parents.get(a.actor.parent_actor_id)
    if parent is None or parent.ksat_user_id is None:
        return {}
    return {parent.ksat_user_id: f"parent actor {a.actor.parent_actor_id} mapped by {parent.rule!r}: "
                                 f"{parent.evidence}"}


# Each kind of rule: the KSAT users it finds for an actor (candidate -> evidence).
_CANDIDATES: dict[type, Callable[[Any, _Asking], dict[int, str]]] = {
    CsvOverride: _by_csv, ExactEmail: _by_email, KsatAlias: _by_alias,
    Code42AlternateName: _by_alternate_name, Transform: _by_transform, FieldMatch: _by_field,
    ParentActor: _by_parent,
}


def _decide(actor: ActorIdentity, index: _Index, rules: list, overrides: dict[str, str],
            parents: dict[str, Decision] | None) -> Decision:
    """The first rule that finds exactly one KSAT user maps the actor; one that finds several makes
    it ambiguous (no later rule is tried); none: no match."""
    asking = _Asking(actor, _norm(actor.name), index, overrides, parents)
    for rule in rules:
        found = _CANDIDATES[type(rule)](rule, asking)
        if len(found) == 1:
            (uid, evidence), = found.items()
            return Decision(actor.actor_id, uid, rule.name, evidence)
        if len(found) > 1:
            ids = ", ".join(str(u) for u in sorted(found))
            return Decision(actor.actor_id, None, rule.name, f"rule {rule.name!r} found KSAT users {ids}",
                            reason="ambiguous")
    return Decision(actor.actor_id, None, None, "no rule found a KSAT user", reason="no_match")

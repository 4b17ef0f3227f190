"""People of the synthetic tenant, as Code42 sees them (actors) and as KnowBe4 KSAT sees them.

Identity is messy on purpose, the way real directories are: each person gets a *kind* that says
how (or whether) their Code42 identity can be matched to a KSAT user, and ``ground_truth`` records
the right answer for every actor so mapping can be scored.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

FIRST = ("Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lea", "Mo",
         "Nia", "Omar", "Pia", "Quinn", "Ravi", "Sara", "Tom", "Uma", "Vic", "Wen", "Xavi", "Yara", "Zoe")
LAST = ("Lee", "Smith", "Garcia", "Okafor", "Nguyen", "Muller", "Rossi", "Khan", "Silva", "Novak", "Berg",
        "Ito", "Mendes", "Walsh", "Haddad", "Park", "Costa", "Jensen", "Moreau", "Ahmed")
DEPARTMENTS = ("Engineering", "Sales", "Finance", "Marketing", "Support", "Legal")
DOMAIN, OLD_DOMAIN, CONTRACTOR_DOMAIN = "example.com", "example-corp.com", "partners.example.com"

# How a person's Code42 identity relates to their KSAT account.
KINDS = (
    "exact",          # same email
    "case",           # same email, different case
    "plus_tag",       # Code42 name has a +tag
    "old_domain",     # Code42 still uses the old email domain
    "ksat_alias",     # KSAT primary differs; the Code42 email is one of the KSAT aliases
    "c42_alternate",  # Code42 primary differs; the KSAT email is one of the actor's alternateNames
    "contractor",     # Code42 identity is a personal address; KSAT has the actor id in custom_field_1
    "parent",         # a secondary Code42 actor whose parent actor maps
    "ambiguous",      # two KSAT users have the Code42 name as an alias: must stay unmapped
    "archived",       # KSAT account archived (mapped, not coachable)
    "none",           # no KSAT account at all
    "exact",
)


@dataclass
class Person:
    index: int
    actor_id: str
    first: str
    last: str
    kind: str
    department: str
    departing: bool
    code42_name: str
    alternate_names: list[str] = field(default_factory=list)
    parent_actor_id: str | None = None
    employee_type: str = "full-time"

    @property
    def canonical_email(self) -> str:
        return f"{self.first}.{self.last}{self.index}@{DOMAIN}".lower()

    def code42_actor(self) -> dict:
        return {
            "actorId": self.actor_id,
            "name": self.code42_name,
            "alternateNames": list(self.alternate_names),
            "country": "US",
            "department": self.department,
            "division": "Corporate",
            "employeeType": self.employee_type,
            "endDate": "2026-12-31" if self.departing else None,
            "firstName": self.first,
            "lastName": self.last,
            "inScope": True,
            "locality": "Minneapolis",
            "managerActorId": None,
            "notes": None,
            "parentActorId": self.parent_actor_id,
            "region": "Minnesota",
            "startDate": "2021-03-01",
            "title": "Analyst",
            "active": True,
        }


def _rng(seed: int, *parts) -> random.Random:
    digest = hashlib.blake2b(f"{seed}/{'/'.join(map(str, parts))}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def people(seed: int, count: int) -> list[Person]:
    out: list[Person] = []
    for k in range(count):
        rng = _rng(seed, "person", k)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        kind = KINDS[k % len(KINDS)] if k else "exact"
        person = Person(
            index=k, actor_id=str(10**17 + rng.randrange(9 * 10**17)), first=first, last=last, kind=kind,
            department=rng.choice(DEPARTMENTS), departing=rng.random() < 0.08, code42_name="",
        )
        email = person.canonical_email
        local = email.split("@")[0]
        person.code42_name = {
            "case": email,
            "ambiguous": f"{first[0]}.{last}{k}@{DOMAIN}".lower(),
            "plus_tag": f"{local}+c42@{DOMAIN}",
            "old_domain": f"{local}@{OLD_DOMAIN}",
            "c42_alternate": f"{first[0]}{last}{k}@{DOMAIN}".lower(),
            "contractor": f"{first}{last}{k}.home@gmail.com".lower(),
        }.get(kind, email)
        if kind == "c42_alternate":
            person.alternate_names = [email]
        if kind == "contractor":
            person.employee_type = "contractor"
        if kind == "parent" and out:
            parent = next((p for p in out if p.kind == "exact"), out[0])
            person.parent_actor_id = parent.actor_id
            person.code42_name = f"{parent.first}.{parent.last}{parent.index}.laptop@{DOMAIN}".lower()
            person.first, person.last = parent.first, parent.last
        out.append(person)
    return out


def _user(uid: int, person: Person, email: str, *, status="active", aliases=(), custom1=None) -> dict:
    return {
        "id": uid,
        "employee_number": f"E{100000 + person.index}",
        "first_name": person.first,
        "last_name": person.last,
        "job_title": "Analyst",
        "email": email,
        "location": "Minneapolis",
        "division": "Corporate",
        "manager_name": None,
        "manager_email": None,
        "groups": [GROUP_IDS["All Users"], GROUP_IDS.get(person.department, GROUP_IDS["All Users"])]
        + ([GROUP_IDS["Contractors"]] if person.employee_type == "contractor" else []),
        "aliases": list(aliases),
        "status": status,
        "department": person.department,
        "joined_on": "2021-03-01T00:00:00.000Z",
        "archived_at": "2026-06-30T00:00:00.000Z" if status == "archived" else None,
        "custom_field_1": custom1,
        "custom_field_2": None,
        "custom_field_3": None,
        "custom_field_4": None,
    }


GROUP_NAMES = ("All Users", *DEPARTMENTS, "Contractors")
GROUP_IDS = {name: 5000 + i for i, name in enumerate(GROUP_NAMES)}


def ksat_directory(persons: list[Person]) -> tuple[list[dict], dict[str, dict]]:
    """(KSAT users sorted by id, ground truth actor_id -> {"ksat_user_id", "kind"})."""
    users: list[dict] = []
    truth: dict[str, dict] = {}
    next_id = 900001
    by_actor = {p.actor_id: p for p in persons}
    for person in persons:
        email = person.canonical_email
        local = email.split("@")[0]
        kind = person.kind
        if kind in ("none", "parent"):
            continue
        uid = next_id
        next_id += 1
        if kind == "case":
            users.append(_user(uid, person, f"{person.first}.{person.last}{person.index}@{DOMAIN.upper()}"))
        elif kind == "ksat_alias":
            users.append(_user(uid, person, f"{local[0]}{person.last.lower()}{person.index}@{DOMAIN}", aliases=[email]))
        elif kind == "contractor":
            users.append(_user(uid, person, f"{local}@{CONTRACTOR_DOMAIN}", custom1=person.actor_id))
        elif kind == "archived":
            users.append(_user(uid, person, email, status="archived"))
        elif kind == "ambiguous":  # two KSAT users claim the short address Code42 knows them by
            namesake = Person(index=person.index, actor_id="", first="Alex", last=person.last, kind="namesake",
                              department=person.department, departing=False, code42_name="")
            users.append(_user(uid, person, email, aliases=[person.code42_name]))
            users.append(_user(next_id, namesake, f"alex.{person.last}{person.index}@{DOMAIN}".lower(),
                               aliases=[person.code42_name]))
            next_id += 1
            truth[person.actor_id] = {"ksat_user_id": None, "kind": kind}
            continue
        else:
            users.append(_user(uid, person, email))
        truth[person.actor_id] = {"ksat_user_id": uid, "kind": kind}
    for person in persons:
        if person.kind == "none":
            truth[person.actor_id] = {"ksat_user_id": None, "kind": "none"}
        elif person.kind == "parent":
            parent = truth.get(person.parent_actor_id or "", {})
            truth[person.actor_id] = {"ksat_user_id": parent.get("ksat_user_id"), "kind": "parent"}
    # people in KSAT only (no Code42 actor): noise a mapping must not latch onto
    for j in range(max(2, len(persons) // 10)):
        ghost = Person(index=10_000 + j, actor_id="", first="Temp", last=f"Worker{j}", kind="ksat_only",
                       department="Support", departing=False, code42_name="")
        users.append(_user(next_id, ghost, ghost.canonical_email))
        next_id += 1
    assert all(a in by_actor for a in truth)
    return users, truth


def ksat_groups(users: list[dict]) -> list[dict]:
    counts = {gid: 0 for gid in GROUP_IDS.values()}
    for user in users:
        if user["status"] == "active":
            for gid in user["groups"]:
                counts[gid] += 1
    return [
        {"id": gid, "name": name, "group_type": "console_group", "member_count": counts[gid], "status": "active"}
        for name, gid in GROUP_IDS.items()
    ]

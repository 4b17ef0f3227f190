"""Who is who: the Code42 actors, the KnowBe4 KSAT user directory, and the ground truth linking them.

Identity data is messy on purpose, the way real directories are. Every actor gets a *kind*: a small
recipe below that decides its Code42 identity, the KSAT account(s) that go with it, and the answer a
user-mapping step should reach (the ground truth). To add a new kind of mess, write a recipe and list
it in ``KINDS``; the directory, the API responses and ``--write-truth`` pick it up.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from incydr_sandbox.config import DAY_MS
from incydr_sandbox.people import NEW_LAST, Person, make_people
from incydr_sandbox.rand import iso_date, iso_ms, key64, rng, weighted

DOMAIN = "example.com"
OLD_DOMAIN = "example-corp.com"  # the company's domain before its rebrand
PARTNER_DOMAIN = "partners.example.com"
PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com")
SERVICE_NAMES = ("svc-backup", "svc-jenkins", "svc-etl", "svc-scanner", "svc-reports", "svc-print")
NONE = "none"  # ground truth for "no KSAT user"


# --- the three record types ---------------------------------------------------------------------
@dataclass
class Actor:
    """A Code42 actor (``GET /v1/actors/actor/...``) plus the sandbox's bookkeeping."""

    index: int
    actor_id: str
    kind: str
    name: str
    person: Person | None  # None for service accounts
    alternate_names: list[str] = field(default_factory=list)
    parent_actor_id: str | None = None
    manager_actor_id: str | None = None
    active: bool = True
    notes: str | None = None

    def watchlists(self, at_ms: int) -> tuple[str, ...]:
        """Keys of the watchlists (``catalog.WATCHLISTS``) the actor is on at ``at_ms``."""
        p = self.person
        if p is None:
            return ()
        keys = []
        if p.departing(at_ms):
            keys.append("departing")
        if p.high_impact:
            keys.append("high-impact")
        if p.employee_type == "contractor":
            keys.append("contractors")
        return tuple(keys)

    def api(self) -> dict:
        p = self.person
        return {
            "actorId": self.actor_id,
            "name": self.name,
            "alternateNames": list(self.alternate_names),
            "active": self.active,
            "country": p.country if p else None,
            "department": p.department if p else None,
            "division": p.division if p else None,
            "employeeType": p.employee_type if p else None,
            "endDate": iso_date(p.end_ms) if p and p.end_ms else None,
            "firstName": p.first if p else None,
            "inScope": True,
            "lastName": p.last if p else None,
            "locality": p.locality if p else None,
            "managerActorId": self.manager_actor_id,
            "notes": self.notes,
            "parentActorId": self.parent_actor_id,
            "region": p.region if p else None,
            "startDate": iso_date(p.start_ms) if p else None,
            "title": p.title if p else None,
        }


@dataclass
class KsatUser:
    """A KnowBe4 KSAT user before ids are handed out (``ref`` links it to the truth)."""

    ref: int
    person: Person
    email: str
    first: str
    last: str
    status: str = "active"
    aliases: list[str] = field(default_factory=list)
    employee_number: str | None = None
    custom_field_1: str | None = None
    archived_ms: int | None = None
    id: int = 0


@dataclass(frozen=True)
class Truth:
    kind: str
    reason: str
    ksat_ref: int | None  # the KsatUser this actor maps to, or None


# --- recipes ------------------------------------------------------------------------------------
class Builder:
    """Accumulates actors, KSAT users and truths while the recipes run."""

    def __init__(self, seed: int, anchor_ms: int, span_start_ms: int) -> None:
        self.seed, self.anchor_ms, self.span_start_ms = seed, anchor_ms, span_start_ms
        self.actors: list[Actor] = []
        self.users: list[KsatUser] = []
        self.truth: dict[str, Truth] = {}
        self.emails: set[str] = set()

    def unique(self, local: str, domain: str) -> str:
        """``local@domain``, with a digit added if that address is taken (case-insensitively)."""
        candidate, n = f"{local}@{domain}", 1
        while candidate.lower() in self.emails:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self.emails.add(candidate.lower())
        return candidate

    def user(self, person: Person, email: str, **kw) -> KsatUser:
        kw.setdefault("employee_number", person.employee_number)
        user = KsatUser(ref=len(self.users), person=person, email=email, first=kw.pop("first", person.first),
                        last=kw.pop("last", person.last), **kw)
        self.users.append(user)
        return user

    def personal_address(self, person: Person, salt: str) -> str:
        r = rng(self.seed, "personal", person.index, salt)
        local = r.choice((f"{person.first}{person.last}", f"{person.first}.{person.last}", f"{person.first[0]}{person.last}"))
        return self.unique(f"{local}{r.randint(1, 99)}".lower(), r.choice(PERSONAL_DOMAINS))


Recipe = Callable[[Builder, Actor], Truth]


def corp(b: Builder, a: Actor) -> str:
    return b.unique(a.person.local, DOMAIN)


def _exact(b: Builder, a: Actor) -> Truth:
    a.name = corp(b, a)
    u = b.user(a.person, a.name)
    if rng(b.seed, "alt", a.index).random() < 0.4:  # HR-synced actors also carry the employee number
        a.alternate_names.append(a.person.employee_number)
    return Truth("exact", "same email in Code42 and KSAT", u.ref)


def _local(email: str) -> str:
    """The local part as actually handed out (``unique`` may have added a digit)."""
    return email.split("@", 1)[0]


def _case(b: Builder, a: Actor) -> Truth:
    a.name = corp(b, a)
    p = a.person
    u = b.user(p, f"{_local(a.name).title()}@{DOMAIN.title()}")
    return Truth("case", "same email, different letter case", u.ref)


def _plus_tag(b: Builder, a: Actor) -> Truth:
    email = corp(b, a)
    tag = rng(b.seed, "tag", a.index).choice(("laptop", "mac", "dev", "sso"))
    a.name = email.replace("@", f"+{tag}@")
    u = b.user(a.person, email)
    return Truth("plus_tag", f"Code42 name carries a +{tag} sub-address", u.ref)


def _domain_rewrite(b: Builder, a: Actor) -> Truth:
    email = corp(b, a)
    old = f"{_local(email)}@{OLD_DOMAIN}"
    if rng(b.seed, "domain", a.index).random() < 0.5:
        a.name, ksat_email, side = old, email, "Code42"
    else:
        a.name, ksat_email, side = email, old, "KSAT"
    u = b.user(a.person, ksat_email)
    return Truth("domain_rewrite", f"{side} still uses the old domain {OLD_DOMAIN}", u.ref)


def _short_form(b: Builder, p: Person) -> str:
    return b.unique(f"{p.first[0]}{p.last}".lower(), DOMAIN)


def _ksat_alias(b: Builder, a: Actor) -> Truth:
    a.name = corp(b, a)
    u = b.user(a.person, _short_form(b, a.person), aliases=[a.name])
    return Truth("ksat_alias", "KSAT primary email differs; the Code42 name is one of its aliases", u.ref)


def _c42_alternate(b: Builder, a: Actor) -> Truth:
    email = corp(b, a)
    a.name = _short_form(b, a.person)
    a.alternate_names.append(email)
    u = b.user(a.person, email)
    return Truth("c42_alternate", "Code42 name differs; the KSAT email is one of the actor's alternateNames",
                 u.ref)


def _employee_number(b: Builder, a: Actor) -> Truth:
    p = a.person
    a.name = corp(b, a)
    a.alternate_names.append(p.employee_number)
    new_last = NEW_LAST[key64(b.seed, "married", a.index) % len(NEW_LAST)]
    u = b.user(p, b.unique(f"{p.first}.{new_last}".lower(), DOMAIN), last=new_last)
    return Truth("employee_number", f"name changed in KSAT ({p.last} -> {new_last}); only employee_number "
                 f"{p.employee_number} (an actor alternateName) links them", u.ref)


def _contractor(b: Builder, a: Actor) -> Truth:
    p = a.person = replace(a.person, employee_type="contractor")
    contractor_id = f"C{200000 + a.index:06d}"
    a.name = b.personal_address(p, "contractor")
    a.alternate_names.append(contractor_id)
    u = b.user(p, b.unique(p.local, PARTNER_DOMAIN), employee_number=None, custom_field_1=contractor_id)
    return Truth("contractor", f"Code42 sees a personal address; KSAT custom_field_1 {contractor_id} is an "
                 "actor alternateName", u.ref)


def _child_actor(b: Builder, a: Actor) -> Truth:
    parents = [x for x in b.actors if x.kind in MAPPABLE_PARENTS and x.parent_actor_id is None]
    parent = parents[key64(b.seed, "parent", a.index) % len(parents)]
    a.person = parent.person
    a.name = b.personal_address(parent.person, f"child{a.index}")
    a.parent_actor_id = parent.actor_id
    parent_truth = b.truth[parent.actor_id]
    return Truth("child_actor", f"secondary actor (personal account) whose parent {parent.name} maps",
                 parent_truth.ksat_ref)


def _archived(b: Builder, a: Actor) -> Truth:
    days = (b.anchor_ms - b.span_start_ms) // DAY_MS
    left = b.span_start_ms + (days * 2 // 5 + key64(b.seed, "left", a.index) % max(days // 3, 1)) * DAY_MS
    a.person = replace(a.person, end_ms=left)
    a.active = False
    a.name = corp(b, a)
    u = b.user(a.person, a.name, status="archived", archived_ms=left + DAY_MS)
    return Truth("archived", "left the company: the only KSAT account is archived (mapped, not coachable)", u.ref)


def _duplicate_archived(b: Builder, a: Actor) -> Truth:
    a.name = corp(b, a)
    b.user(a.person, b.unique(_local(a.name), OLD_DOMAIN), status="archived", employee_number=None,
           archived_ms=b.span_start_ms - 200 * DAY_MS)
    u = b.user(a.person, a.name)
    return Truth("duplicate_archived", "an archived pre-rebrand KSAT account and an active one: use the active",
                 u.ref)


def _ambiguous_duplicate(b: Builder, a: Actor) -> Truth:
    a.name = corp(b, a)
    first = b.user(a.person, a.name)
    second = b.user(a.person, f"{_local(a.name).title()}@{DOMAIN}")
    return Truth("ambiguous_duplicate", f"two active KSAT accounts share this email case-insensitively "
                 f"(refs {first.ref}, {second.ref}): leave unmapped", None)


def _ambiguous_name(b: Builder, a: Actor, namesakes: list[Person]) -> Truth:
    p = a.person
    a.name = b.personal_address(p, "ambiguous")
    b.user(p, corp(b, a))
    twin = replace(namesakes.pop(), first=p.first, last=p.last)
    b.user(twin, b.unique(f"{p.first}.{p.last}".lower(), DOMAIN))
    return Truth("ambiguous_name", f"personal address; two active KSAT users are named {p.full_name}: "
                 "leave unmapped", None)


def _no_ksat(b: Builder, a: Actor) -> Truth:
    a.person = replace(a.person, start_ms=b.anchor_ms - 10 * DAY_MS)  # new hire, not provisioned yet
    a.name = corp(b, a)
    return Truth("no_ksat", "new hire with no KSAT account yet", None)


def _service_account(b: Builder, a: Actor) -> Truth:
    a.person = None
    a.name = b.unique(SERVICE_NAMES[a.index % len(SERVICE_NAMES)], DOMAIN)
    a.notes = "Service account"
    return Truth("service_account", "non-human service account", None)


MAPPABLE_PARENTS = ("exact", "case", "plus_tag", "domain_rewrite", "ksat_alias", "c42_alternate")
# kind -> (recipe, weight when filling the remaining slots)
KINDS: dict[str, tuple[Callable, float]] = {
    "exact": (_exact, 10.0),
    "case": (_case, 2.0),
    "plus_tag": (_plus_tag, 1.5),
    "domain_rewrite": (_domain_rewrite, 1.5),
    "ksat_alias": (_ksat_alias, 1.5),
    "c42_alternate": (_c42_alternate, 1.5),
    "employee_number": (_employee_number, 1.0),
    "contractor": (_contractor, 1.5),
    "child_actor": (_child_actor, 1.5),
    "archived": (_archived, 1.0),
    "duplicate_archived": (_duplicate_archived, 1.0),
    "ambiguous_duplicate": (_ambiguous_duplicate, 0.6),
    "ambiguous_name": (_ambiguous_name, 0.6),
    "no_ksat": (_no_ksat, 1.0),
    "service_account": (_service_account, 0.6),
}


def assign_kinds(seed: int, count: int) -> list[str]:
    """Slot 0 is plain; every kind appears at least once when there are enough slots; the rest by weight."""
    others = [k for k in KINDS if k != "exact"]
    r = rng(seed, "kinds")
    r.shuffle(others)
    table = tuple((k, w) for k, (_, w) in KINDS.items())
    kinds = ["exact", *others[:max(count - 1, 0)]]
    kinds += [weighted(r, table) for _ in range(count - len(kinds))]
    tail = kinds[1:]
    r.shuffle(tail)
    kinds = kinds[:1] + tail
    # a child actor needs a mappable parent before it
    for k, kind in enumerate(kinds):
        if kind == "child_actor" and not any(x in MAPPABLE_PARENTS for x in kinds[:k]):
            kinds[k] = "exact"
    return kinds


# --- the directory ------------------------------------------------------------------------------
GROUPS = ("All Users", "Engineering", "Sales", "Finance", "Marketing", "Support", "Legal", "Research",
          "Contractors", "New Hires")


@dataclass
class Directory:
    seed: int
    anchor_ms: int
    actors: list[Actor]
    ksat_users: list[KsatUser]  # sorted by id
    truth: dict[str, Truth]  # actor_id -> truth
    people: dict[int, Person]  # by person index

    @property
    def group_ids(self) -> dict[str, int]:
        return {name: 28000 + (key64(self.seed, "group", name) % 900) * 10 + i for i, name in enumerate(GROUPS)}

    def groups_of(self, user: KsatUser) -> list[int]:
        ids, p = self.group_ids, user.person
        groups = [ids["All Users"], ids[p.department]]
        if p.employee_type == "contractor":
            groups.append(ids["Contractors"])
        if p.start_ms >= self.anchor_ms - 90 * DAY_MS:
            groups.append(ids["New Hires"])
        return groups

    def ksat_json(self, user: KsatUser) -> dict:
        """A user as ``GET /v1/users`` shows it (KnowBe4 Reporting API field names)."""
        p = user.person
        manager = self.people.get(p.manager_index) if p.manager_index is not None else None
        return {
            "id": user.id,
            "employee_number": user.employee_number,
            "first_name": user.first,
            "last_name": user.last,
            "job_title": p.title,
            "email": user.email,
            "phone_number": None,
            "location": p.locality,
            "division": p.division,
            "manager_name": manager.full_name if manager else None,
            "manager_email": f"{manager.local}@{DOMAIN}" if manager else None,
            "adi_manageable": False,
            "adi_guid": None,
            "groups": self.groups_of(user),
            "current_risk_score": round(10 + key64(self.seed, "risk", user.ref) % 7000 / 100, 2),
            "aliases": list(user.aliases),
            "joined_on": iso_ms(p.start_ms + DAY_MS),
            "last_sign_in": None,
            "status": user.status,
            "organization": "Example Corp",
            "department": p.department,
            "language": "English - United States",
            "comment": None,
            "employee_start_date": iso_ms(p.start_ms),
            "archived_at": iso_ms(user.archived_ms) if user.archived_ms else None,
            "custom_field_1": user.custom_field_1,
            "custom_field_2": None,
            "custom_field_3": None,
            "custom_field_4": None,
        }

    def ksat_groups(self) -> list[dict]:
        counts = {gid: 0 for gid in self.group_ids.values()}
        for user in self.ksat_users:
            if user.status == "active":
                for gid in self.groups_of(user):
                    counts[gid] += 1
        return [{"id": gid, "name": name, "group_type": "smart_group" if name == "New Hires" else "console_group",
                 "provisioning_guid": None, "member_count": counts[gid], "status": "active"}
                for name, gid in sorted(self.group_ids.items(), key=lambda item: item[1])]

    def truth_records(self) -> list[dict]:
        by_ref = {u.ref: u for u in self.ksat_users}
        out = []
        for actor in self.actors:
            t = self.truth[actor.actor_id]
            user = by_ref.get(t.ksat_ref) if t.ksat_ref is not None else None
            out.append({"actor_id": actor.actor_id, "code42_name": actor.name, "kind": t.kind,
                        "ksat_user_id": user.id if user else NONE, "ksat_email": user.email if user else None,
                        "reason": t.reason})
        return out

    def truth_json(self) -> dict:
        return {r["actor_id"]: {k: v for k, v in r.items() if k != "actor_id"} for r in self.truth_records()}


def build_directory(seed: int, count: int, anchor_ms: int, span_start_ms: int) -> Directory:
    extra = max(2, count // 10)  # KSAT users with no Code42 actor
    people = make_people(seed, count + extra + count, anchor_ms, span_start_ms)
    ksat_only, namesakes = people[count:count + extra], people[count + extra:]
    b = Builder(seed, anchor_ms, span_start_ms)
    for k, kind in enumerate(assign_kinds(seed, count)):
        actor = Actor(index=k, actor_id=str(10**17 + key64(seed, "actor", k) % (9 * 10**17)), kind=kind, name="",
                      person=people[k])
        recipe = KINDS[kind][0]
        truth = recipe(b, actor, namesakes) if kind == "ambiguous_name" else recipe(b, actor)
        if actor.person is not None and actor.person.departing(anchor_ms) and actor.notes is None:
            actor.notes = "Resignation received; on the departing employees watchlist"
        b.actors.append(actor)
        b.truth[actor.actor_id] = truth
    for p in ksat_only:
        b.user(p, b.unique(p.local, DOMAIN))
    _link_managers(b.actors)
    _hand_out_ids(seed, b.users)
    return Directory(seed=seed, anchor_ms=anchor_ms, actors=b.actors, ksat_users=sorted(b.users, key=lambda u: u.id),
                     truth=b.truth, people={p.index: p for p in people[:count]}
                     | {a.person.index: a.person for a in b.actors if a.person and a.parent_actor_id is None})


def _link_managers(actors: list[Actor]) -> None:
    primary = {a.person.index: a.actor_id for a in actors if a.person and a.parent_actor_id is None}
    for a in actors:
        if a.person and a.person.manager_index is not None:
            a.manager_actor_id = primary.get(a.person.manager_index)


def _hand_out_ids(seed: int, users: list[KsatUser]) -> None:
    """KSAT ids are increasing integers with gaps, in an order unrelated to the actors."""
    order = list(users)
    r = rng(seed, "ksat-ids")
    r.shuffle(order)
    next_id = 640000 + r.randint(0, 9999)
    for u in order:
        u.id = next_id
        next_id += r.randint(1, 97)


def truth_text(directory: Directory, fmt: str) -> str:
    """The ground truth as JSON (``{actor_id: {...}}``) or CSV (one row per actor)."""
    if fmt == "json":
        return json.dumps(directory.truth_json(), indent=1, sort_keys=True) + "\n"
    if fmt != "csv":
        raise ValueError(f"unknown truth format {fmt!r} (json or csv)")
    out = io.StringIO()
    columns = ("actor_id", "code42_name", "ksat_user_id", "ksat_email", "kind", "reason")
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in directory.truth_records():
        writer.writerow({k: "" if record[k] is None else record[k] for k in columns})
    return out.getvalue()

"""The people of the synthetic company (HR facts only; how they look in Code42 and KnowBe4 is
decided in :mod:`incydr_sandbox.identities`)."""

from __future__ import annotations

from dataclasses import dataclass

from incydr_sandbox.config import DAY_MS
from incydr_sandbox.rand import rng

FIRST = ("Aisha", "Ben", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara",
         "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei",
         "Ximena", "Yusuf", "Zoe", "Anna", "Bilal", "Chloe", "Dmitri", "Eva", "Felix", "Gita", "Hannah",
         "Ivan", "Julia", "Kofi", "Lena", "Mateo", "Nadia")
LAST = ("Anders", "Baker", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ibrahim",
        "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi",
        "Schmidt", "Tanaka", "Ueda", "Varga", "Walsh", "Xu", "Yilmaz", "Zhou", "Silva", "Novak", "Khan",
        "Murphy")
# Married-name changes use these (never a LAST name, so the new email cannot collide).
NEW_LAST = ("Whitfield", "Okonkwo", "Lindqvist", "Marchetti", "Arakawa", "Delacroix")
DEPARTMENTS = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"),
    "Sales": ("Account Executive", "Sales Engineer", "Regional Sales Director"),
    "Finance": ("Financial Analyst", "Controller", "Payroll Specialist"),
    "Marketing": ("Marketing Manager", "Content Strategist", "Product Marketing Manager"),
    "Support": ("Support Engineer", "Customer Success Manager"),
    "Legal": ("Corporate Counsel", "Paralegal"),
    "Research": ("Research Scientist", "Data Scientist"),
}
DIVISIONS = {"Engineering": "Product", "Research": "Product", "Sales": "Go To Market",
             "Marketing": "Go To Market", "Support": "Go To Market", "Finance": "G&A", "Legal": "G&A"}
OFFICES = (("Minneapolis", "Minnesota", "United States"), ("Austin", "Texas", "United States"),
           ("Denver", "Colorado", "United States"), ("Dublin", "Leinster", "Ireland"),
           ("London", "England", "United Kingdom"), ("Toronto", "Ontario", "Canada"))


@dataclass(frozen=True)
class Person:
    index: int
    first: str
    last: str
    local: str  # email local part on the corporate domain, unique in the company
    department: str
    title: str
    division: str
    locality: str
    region: str
    country: str
    employee_number: str
    start_ms: int
    end_ms: int | None  # last day; None while employed
    employee_type: str  # full-time | part-time | contractor
    manager_index: int | None
    high_impact: bool

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"

    def departing(self, at_ms: int) -> bool:
        """Has given notice: leaves within 30 days after ``at_ms``."""
        return self.end_ms is not None and at_ms <= self.end_ms <= at_ms + 30 * DAY_MS

    def employed(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms and (self.end_ms is None or at_ms <= self.end_ms + DAY_MS)


def make_people(seed: int, count: int, anchor_ms: int, span_start_ms: int) -> list[Person]:
    """``count`` distinct people; names are unique (a numeric suffix only once the pool runs out)."""
    combos = [(f, last) for f in FIRST for last in LAST]
    rng(seed, "names").shuffle(combos)
    people = []
    for k in range(count):
        r = rng(seed, "person", k)
        first, last = combos[k % len(combos)]
        suffix = str(k // len(combos) + 1) if k >= len(combos) else ""
        department = r.choice(tuple(DEPARTMENTS))
        locality, region, country = r.choice(OFFICES)
        employee_type = "contractor" if r.random() < 0.08 else ("part-time" if r.random() < 0.05 else "full-time")
        start = span_start_ms - r.randint(60, 6 * 365) * DAY_MS
        end = None
        if r.random() < 0.08:  # has given notice: leaves a few days to a month after the anchor
            end = anchor_ms + r.randint(3, 28) * DAY_MS
        people.append(Person(
            index=k, first=first, last=last, local=f"{first}.{last}{suffix}".lower(), department=department,
            title=r.choice(DEPARTMENTS[department]), division=DIVISIONS[department], locality=locality,
            region=region, country=country, employee_number=f"E{100000 + (k * 7919) % 900000:06d}",
            start_ms=start, end_ms=end, employee_type=employee_type,
            manager_index=r.randrange(k) if k >= 3 else None, high_impact=r.random() < 0.1,
        ))
    return people

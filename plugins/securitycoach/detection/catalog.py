"""The detection rule catalog (YAML): system rules, the Code42 alert-rule rules, custom rules.

A rule decides whether a Code42 session or alert is coachable behaviour. The file is validated
whole before anything runs; errors name the file, the rule (position and name) and the field, e.g.
``include/config/detection_rules.yaml: rule 9 ("USB by engineers"): when.vectors: ...``.

Risk indicators are how Code42 describes a session. The file's ``vocabulary`` says how indicator
names read as an exfiltration vector, a destination category, a file category or a watchlist, so
rules can be written in those terms (and adjusted when a tenant names its indicators differently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from securitycoach.yamlfile import StrictModel, load_model

SEVERITIES = ("NO_RISK", "LOW", "MODERATE", "HIGH", "CRITICAL")
# Alerts say NO_RISK_INDICATED where sessions say NO_RISK.
SEVERITY_ALIASES = {"NO_RISK_INDICATED": 0, **{name: i for i, name in enumerate(SEVERITIES)}}
SESSION_ONLY = ("risk_indicators_any", "risk_indicators_all", "vectors", "destination_categories",
                "file_categories", "min_event_count")
ALERT_ONLY = ("alert_rules",)


def severity_number(value: Any) -> int:
    """0..4 from a number or a Code42 severity name (``HIGH``, ``NO_RISK_INDICATED``)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4:
        return value
    if isinstance(value, str) and value.strip().upper() in SEVERITY_ALIASES:
        return SEVERITY_ALIASES[value.strip().upper()]
    raise ValueError(f"severity must be a name {list(SEVERITIES)} or 0..4, got {value!r}")


class IndicatorMeaning(StrictModel):
    vector: str | None = None
    destination_category: str | None = None
    file_category: str | None = None
    watchlist: str | None = None

    @model_validator(mode="after")
    def _something(self) -> IndicatorMeaning:
        if not any((self.vector, self.destination_category, self.file_category, self.watchlist)):
            raise ValueError("give at least one of vector, destination_category, file_category, watchlist")
        return self


class Vocabulary(StrictModel):
    indicators: dict[str, IndicatorMeaning] = Field(default_factory=dict)
    # alert watchlist types (DEPARTING_EMPLOYEE, ...) -> the watchlist keys rules use
    watchlist_types: dict[str, str] = Field(default_factory=dict)

    def terms(self, indicator_names: frozenset[str]) -> dict[str, frozenset[str]]:
        """What a set of indicator names means: the vectors, destination and file categories and
        watchlists they stand for (names not in the vocabulary mean nothing)."""
        meanings = [self.indicators[n] for n in indicator_names if n in self.indicators]
        return {"vectors": frozenset(m.vector for m in meanings if m.vector),
                "destination_categories": frozenset(m.destination_category for m in meanings
                                                    if m.destination_category),
                "file_categories": frozenset(m.file_category for m in meanings if m.file_category),
                "watchlists": frozenset(m.watchlist for m in meanings if m.watchlist)}

    def values(self, attr: str) -> set[str]:
        found = {getattr(m, attr) for m in self.indicators.values() if getattr(m, attr)}
        if attr == "watchlist":
            found |= set(self.watchlist_types.values())
        return found


class Lesson(StrictModel):
    title: str = Field(min_length=1)
    id: str | None = None
    url: str | None = None


class Criteria(StrictModel):
    """Every criterion given must hold (AND); list criteria match when any listed value does."""

    min_severity: int | None = None
    max_severity: int | None = None
    risk_indicators_any: list[str] | None = Field(default=None, min_length=1)
    risk_indicators_all: list[str] | None = Field(default=None, min_length=1)
    vectors: list[str] | None = Field(default=None, min_length=1)
    destination_categories: list[str] | None = Field(default=None, min_length=1)
    file_categories: list[str] | None = Field(default=None, min_length=1)
    watchlists: list[str] | None = Field(default=None, min_length=1)
    min_event_count: int | None = Field(default=None, ge=1)
    departments: list[str] | None = Field(default=None, min_length=1)
    alert_rules: list[str] | None = Field(default=None, min_length=1)  # Code42 alert rule names or ids

    @field_validator("min_severity", "max_severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> int | None:
        return None if value is None else severity_number(value)

    @model_validator(mode="after")
    def _sane(self) -> Criteria:
        if not self.model_fields_set:
            raise ValueError("a rule needs at least one criterion under 'when'")
        if self.min_severity is not None and self.max_severity is not None and self.min_severity > self.max_severity:
            raise ValueError(f"min_severity {self.min_severity} is above max_severity {self.max_severity}")
        return self

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RuleSpec(StrictModel):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = Field(min_length=1)
    kind: Literal["system", "custom"] = "custom"
    on: Literal["session", "alert"] = "session"
    enabled: bool = True
    description: str | None = None
    lesson: Lesson
    when: Criteria

    @model_validator(mode="after")
    def _fields_fit_subject(self) -> RuleSpec:
        wrong = ALERT_ONLY if self.on == "session" else SESSION_ONLY
        used = sorted(set(self.when.given()) & set(wrong))
        if used:
            raise ValueError(f"{', '.join(used)} cannot be used by a rule on {self.on}s")
        return self


class AlertRuleRules(StrictModel):
    """How every Code42 alert rule becomes a detection rule (kind ``alert_rule``)."""

    name: str = "{name} Detected by Code42"
    enabled: Literal["mirror"] | bool = "mirror"  # mirror = enabled exactly when the Code42 rule is
    overrides: dict[str, bool] = Field(default_factory=dict)  # Code42 rule name or id -> enabled

    @field_validator("name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may use only the placeholder {name}") from None
        return value


class CatalogFile(StrictModel):
    version: Literal[1]
    lesson_url: str = Field(min_length=1)  # "{lesson_id}" is replaced by the lesson's id
    vocabulary: Vocabulary
    alert_rules: AlertRuleRules = Field(default_factory=AlertRuleRules)
    rules: list[RuleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class DetectionRule:
    """A rule in force: what the detection task evaluates and what ``detection_rule`` stores."""

    rule_key: str
    name: str
    kind: str  # system | alert_rule | custom
    subject_type: str  # session | alert
    enabled: bool
    criteria: dict[str, Any]
    lesson_title: str | None
    lesson_url: str | None
    description: str | None = None
    code42_rule_id: str | None = None

    def row(self, tenant_id: str) -> dict[str, Any]:
        return {"tenant_id": tenant_id, "rule_key": self.rule_key, "name": self.name, "kind": self.kind,
                "subject_type": self.subject_type, "enabled": self.enabled, "description": self.description,
                "lesson_title": self.lesson_title, "lesson_url": self.lesson_url,
                "code42_rule_id": self.code42_rule_id, "criteria": self.criteria}


@dataclass
class Catalog:
    path: Path
    spec: CatalogFile
    rules: list[DetectionRule] = field(default_factory=list)

    @property
    def vocabulary(self) -> Vocabulary:
        return self.spec.vocabulary

    def lesson_link(self, lesson_id: str | None) -> str | None:
        return self.spec.lesson_url.replace("{lesson_id}", lesson_id) if lesson_id else None

    def with_alert_rules(self, alert_rules: list[dict[str, Any]]) -> list[DetectionRule]:
        """The file's rules plus one per Code42 alert rule (rows of ``code42_alert_rule``)."""
        derived = []
        settings = self.spec.alert_rules
        for rule in sorted(alert_rules, key=lambda r: r["rule_id"]):
            enabled = bool(rule.get("is_enabled")) if settings.enabled == "mirror" else settings.enabled
            for ref in (rule["rule_id"], rule.get("name")):
                if ref in settings.overrides:
                    enabled = settings.overrides[ref]
            derived.append(DetectionRule(
                rule_key=f"code42-alert-rule:{rule['rule_id']}",
                name=settings.name.format(name=rule.get("name") or rule["rule_id"]),
                kind="alert_rule", subject_type="alert", enabled=enabled,
                criteria={"alert_rules": [rule["rule_id"]]},
                lesson_title=rule.get("name"),
                lesson_url=self.lesson_link(rule.get("lesson_id")),
                description=rule.get("description"), code42_rule_id=rule["rule_id"],
            ))
        return [*self.rules, *derived]


class CatalogError(ValueError):
    pass


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate the catalog; raises ``CatalogError`` naming file, rule and field."""
    path = Path(path)
    spec = load_model(path, CatalogFile, what="detection rule file", list_key="rules", error=CatalogError)
    problems = _vocabulary_problems(spec)
    keys = [r.key for r in spec.rules]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        problems.append(f"rule keys must be unique; repeated: {repeated}")
    if problems:
        raise CatalogError("\n".join(f"{path}: {p}" for p in problems))
    rules = [
        DetectionRule(
            rule_key=r.key, name=r.name, kind=r.kind, subject_type=r.on, enabled=r.enabled,
            criteria=r.when.given(), lesson_title=r.lesson.title,
            lesson_url=r.lesson.url or (spec.lesson_url.replace("{lesson_id}", r.lesson.id) if r.lesson.id else None),
            description=r.description,
        )
        for r in spec.rules
    ]
    return Catalog(path=path, spec=spec, rules=rules)


_VOCABULARY_FIELDS = {"vectors": "vector", "destination_categories": "destination_category",
                      "file_categories": "file_category", "watchlists": "watchlist"}


def _vocabulary_problems(spec: CatalogFile) -> list[str]:
    """Criteria in vocabulary terms must use words the vocabulary defines (typos fail loudly)."""
    problems = []
    for index, rule in enumerate(spec.rules, 1):
        given = rule.when.given()
        for criterion, attr in _VOCABULARY_FIELDS.items():
            known = spec.vocabulary.values(attr)
            unknown = [v for v in given.get(criterion, []) if v not in known]
            if unknown:
                problems.append(f"rule {index} ({rule.name!r}): when.{criterion}: unknown {unknown}; "
                                f"the vocabulary defines {sorted(known)}")
    return problems


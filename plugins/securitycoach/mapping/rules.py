"""The mapping rule file (YAML): an ordered list of rules, validated before anything runs.

Errors name the file, the rule (position and name) and the field, e.g.
``include/config/mapping_rules.yaml: rule 5 ("Domain rewrite"): domain_rewrite: ...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from securitycoach.yamlfile import load_model

KSAT_FIELDS = ("employee_number", "custom_field_1", "custom_field_2", "custom_field_3", "custom_field_4")
CODE42_FIELDS = ("actor_id", "alternate_names", "name", "first_name", "last_name", "title", "notes", "department")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    enabled: bool = True


class CsvOverride(_Rule):
    type: Literal["csv_override"]


class ExactEmail(_Rule):
    type: Literal["exact_email"]


class KsatAlias(_Rule):
    type: Literal["ksat_alias"]


class Code42AlternateName(_Rule):
    type: Literal["code42_alternate_name"]


class Transform(_Rule):
    """Rewrite the Code42 identity, then look it up among KSAT emails and aliases."""

    type: Literal["transform"]
    strip_plus_tag: bool = False
    domain_rewrite: dict[str, str] = Field(default_factory=dict)
    regex: str | None = None
    replace: str | None = None

    @field_validator("domain_rewrite")
    @classmethod
    def _domains(cls, value: dict[str, str]) -> dict[str, str]:
        for old, new in value.items():
            if "@" in old or "@" in new or not old or not new:
                raise ValueError(f"map bare domains (old.example -> new.example), got {old!r}: {new!r}")
        return {old.lower(): new.lower() for old, new in value.items()}

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> Transform:
        if (self.regex is None) != (self.replace is None):
            raise ValueError("regex and replace go together")
        if not (self.strip_plus_tag or self.domain_rewrite or self.regex):
            raise ValueError("a transform needs strip_plus_tag, domain_rewrite or regex+replace")
        return self


class FieldMatch(_Rule):
    """A KSAT field (employee number, custom field) equals a Code42 actor field."""

    type: Literal["field_match"]
    code42_field: Literal[CODE42_FIELDS]  # type: ignore[valid-type]
    ksat_field: Literal[KSAT_FIELDS]  # type: ignore[valid-type]


class ParentActor(_Rule):
    """A secondary Code42 actor maps to whatever its parent actor maps to."""

    type: Literal["parent_actor"]


Rule = Annotated[
    CsvOverride | ExactEmail | KsatAlias | Code42AlternateName | Transform | FieldMatch | ParentActor,
    Field(discriminator="type"),
]


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    rules: list[Rule] = Field(min_length=1)

    @property
    def enabled(self) -> list:
        return [r for r in self.rules if r.enabled]


class RuleFileError(ValueError):
    pass


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    ruleset = load_model(path, RuleSet, what="mapping rule file", list_key="rules", error=RuleFileError,
                         field_offset=3)  # rules are a union tagged by "type": the tag is in the path
    names = [r.name for r in ruleset.rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuleFileError(f"{path}: rule names must be unique; repeated: {duplicates}")
    return ruleset


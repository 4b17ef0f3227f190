"""Reading the project's YAML config files (mapping rules, detection rules, campaigns) into their
pydantic models, with errors that name the file, the entry (position and name) and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)



class StrictModel(BaseModel):
    """A model of a YAML file's part: unknown keys are errors (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def load_model(path: str | Path, model: type[M], *, what: str, list_key: str, error: type[ValueError],
               field_offset: int = 2) -> M:
    """Parse ``path`` and validate it as ``model``; any problem raises ``error`` with the file named.

    ``list_key`` is the file's list of entries (``rules``, ``campaigns``): errors inside it say
    ``rule 3 ('Name'): when.vectors: ...``. ``field_offset`` is where the field path starts in a
    pydantic error location (3 when entries are a discriminated union: the tag is in the path).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping with 'version' and '{list_key}'")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_errors(path, data, list_key, exc, field_offset)) from None


def describe_errors(path: Path, data: dict, list_key: str, exc: ValidationError, field_offset: int = 2) -> str:
    """One line per pydantic error: ``file: rule N ('name'): field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        if loc[:1] == [list_key] and len(loc) > 1 and isinstance(loc[1], int):
            index = loc[1]
            raw: Any = data.get(list_key) or []
            name = raw[index].get("name") if index < len(raw) and isinstance(raw[index], dict) else None
            where = f"{list_key[:-1]} {index + 1}" + (f" ({name!r})" if name else "")
            field_path = ".".join(str(p) for p in loc[field_offset:]) or f"({list_key[:-1]})"
            lines.append(f"{path}: {where}: {field_path}: {err['msg']}")
        else:
            lines.append(f"{path}: {'.'.join(map(str, loc)) or '(file)'}: {err['msg']}")
    return "\n".join(lines)

"""Connection extras the API hooks read, declared once: each setting is one field of a settings
dataclass, with its type (the annotation), default, label, help text and bounds (``setting(...)``).

The same declaration validates a connection's extras (``from_extra``) and gives Airflow's connection
form its typed fields (``conn_fields``: the provider info's ``conn-fields``, a JSON Schema per
field). A new setting is one new field here. Airflow-free: provider discovery imports it.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from apiclient.errors import ConfigError
from apiclient.throttle import store_problem

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string"}


def setting(default: Any, label: str, description: str, *, minimum: float | None = None,
            maximum: float | None = None, check: Callable[[Any], str | None] | None = None) -> Any:
    """One setting: a dataclass field with its form label, help text and inclusive bounds; ``check``
    says what is wrong with a parsed value (None: nothing)."""
    return field(default=default, metadata={"label": label, "description": description,
                                            "minimum": minimum, "maximum": maximum, "check": check})


@dataclass(frozen=True)
class Setting:
    """A setting as read off its dataclass field."""

    name: str
    kind: type
    nullable: bool
    default: Any
    label: str
    description: str
    minimum: float | None
    maximum: float | None
    check: Callable[[Any], str | None] | None = None

    def parse(self, value: Any, where: str) -> Any:
        """``value`` from a connection's extra as this setting's type, within its bounds; ``where``
        names the connection in the one-line error (a ``ValueError``)."""
        parsed = _as(self.kind, value)
        if parsed is None:
            raise ValueError(f"{where}: extra {self.name}={value!r} is not {_TYPE_NAMES[self.kind]}")
        if self.minimum is not None and parsed < self.minimum:
            raise ValueError(f"{where}: extra {self.name}={value!r} must be at least {self.minimum:g}")
        if self.maximum is not None and parsed > self.maximum:
            raise ValueError(f"{where}: extra {self.name}={value!r} must be at most {self.maximum:g}")
        if isinstance(parsed, str):
            parsed = parsed.strip()
        if self.check is not None and (problem := self.check(parsed)):
            raise ValueError(f"{where}: extra {self.name}: {problem}")
        return parsed

    @property
    def optional(self) -> bool:
        """The form may leave it empty: nullable, or a text whose default is empty (e.g. no store)."""
        return self.nullable or (self.kind is str and not self.default)

    def form_field(self, default: Any) -> dict:
        """This setting as an Airflow ``conn-fields`` entry (label, help, JSON Schema)."""
        schema: dict[str, Any] = {"type": [_JSON_TYPES[self.kind], "null"] if self.optional else _JSON_TYPES[self.kind]}
        if default is not None and default != "":
            schema["default"] = default
        schema.update({key: getattr(self, key) for key in ("minimum", "maximum") if getattr(self, key) is not None})
        return {"label": self.label, "description": self.description, "schema": schema}


def _as(kind: type, value: Any) -> Any:
    """``value`` as ``kind``, or None if it is not one (a bool is never a number, 2.5 never an int)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else None
        return {"true": True, "false": False}.get(text) if text else None
    if kind is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


class ExtraSettings:
    """Base of a settings dataclass whose fields are ``setting(...)`` declarations."""

    @classmethod
    def settings(cls) -> list[Setting]:
        hints = get_type_hints(cls)
        out = []
        for f in fields(cls):  # type: ignore[arg-type]
            hint = hints[f.name]
            args = hint.__args__ if isinstance(hint, types.UnionType) else (hint,)
            kind = next(a for a in args if a is not type(None))
            out.append(Setting(f.name, kind, type(None) in args, f.default, **f.metadata))
        return out

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict[str, Any], *, error: type[ConfigError] = ConfigError,
                   besides: tuple[type[ExtraSettings], ...] = (), **defaults: Any):
        """The settings in ``extra`` over ``defaults`` (a connection type's own defaults) over the
        declared ones; ``error`` (the API's config error) refuses a bad one in one line. Keys not
        declared here nor in ``besides`` (read by another settings class) are refused: typos fail."""
        where = f"connection {conn_id!r}"
        allowed = cls.names().union(*(other.names() for other in besides))
        unknown = sorted(set(extra) - allowed)
        if unknown:
            raise error(f"{where}: unknown extra field(s) {unknown}; allowed: {sorted(allowed)}")
        values = dict(defaults)
        for s in cls.settings():
            if extra.get(s.name) is None:  # absent, or null: a field the connection form left empty
                continue
            try:
                values[s.name] = s.parse(extra[s.name], where)
            except ValueError as exc:
                raise error(str(exc)) from None
        return cls(**values)

    @classmethod
    def conn_fields(cls, **defaults: Any) -> dict[str, dict]:
        """The provider info's ``conn-fields`` for these settings, with a connection type's own
        ``defaults`` over the declared ones."""
        return {s.name: s.form_field(defaults.get(s.name, s.default)) for s in cls.settings()}


@dataclass(frozen=True)
class ApiSettings(ExtraSettings):
    """The transport settings every API hook reads from its connection's extras."""

    rate_limit_per_minute: float = setting(
        120.0, "Rate limit (requests per minute)",
        "Requests per minute this API client may make, shared by every task on this host that uses it.",
        minimum=0.001)
    max_retries: int = setting(
        6, "Max retries", "Retries of a call that failed with 429, 5xx or a broken connection (0: none).",
        minimum=0)
    connect_timeout: float = setting(10.0, "Connect timeout (s)", "Seconds to wait for a connection.",
                                     minimum=0.001)
    read_timeout: float = setting(60.0, "Read timeout (s)", "Seconds to wait for an answer.", minimum=0.001)
    retry_backoff: float = setting(
        1.0, "Retry backoff (s)", "First wait before a retry; it doubles each time, with jitter "
        "(a Retry-After header wins).", minimum=0.001)
    verify: bool = setting(True, "Verify TLS certificates", "Check the server's certificate (keep on).")
    pages_in_flight: int = setting(
        4, "Pages in flight", "Pages of one listing fetched at once once its size is known.", minimum=1)
    rate_limit_store: str = setting(
        "", "Rate limit store", "Where the rate limit's schedule lives: empty = a file lock on this host; "
        "redis://host:port/db = one schedule for every worker on every host.", check=store_problem)

"""Declared field maps: which API field fills which warehouse column, written once per table.

A ``FieldMap`` lists a table's columns, each as ``Field(column, path, converter, type)``: where the
value sits in the API item (a key, or a path of keys), how it becomes the column's value, and the
column's SQL type. From that one declaration come

- the table's columns (``FieldMap.columns``: ``schema.py`` builds the ``Table`` from them),
- the Python row builder (``FieldMap.row``: the load on SQLite, and the reference data),
- the PostgreSQL projection (``FieldMap.select``: the same values computed inside the database
  from the staged JSONB payload, so a PostgreSQL load never brings the items through Python).

Adding an API field is one ``Field`` line in ``schema.py`` plus a migration adding the column.

A field may read from ``Latest(array, by)`` instead of the item itself: the entry of that array
with the greatest ``by`` (the first such entry on ties; a session keeps histories of its scores and
states). A field with several paths takes the first that is not null. A ``FieldMap`` with ``each``
makes one row per entry of that array (a session's risk indicators), keyed by the parent's key
and its own: an entry repeated in the array is written once, the last one listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, distinct_on

from securitycoach.timeutil import from_epoch_ms, from_iso

Path = tuple[str, ...]
Sql = sa.ColumnElement[Any]


@dataclass(frozen=True)
class Converter:
    """How a JSON value becomes a column value: in Python, and in PostgreSQL from a JSONB value."""

    name: str
    python: Callable[[Any], Any]
    sql: Callable[[Sql], Sql]  # the JSONB value at the path -> the column's value


def _as_text(value: Sql) -> Sql:
    # ``value`` is a JSONB expression (``p -> 'k'``): ``#>> '{}'`` is its text, as ``->>`` would give.
    return value.op("#>>")(sa.cast(sa.literal("{}"), sa.ARRAY(sa.Text)))


_EPOCH = sa.cast(sa.literal("epoch"), sa.DateTime(timezone=True))
_MILLISECOND = sa.cast(sa.literal("1 millisecond"), sa.Interval)

AS_IS = Converter("as_is", lambda v: v, _as_text)
"""Text as the API sent it (``->>`` in PostgreSQL)."""
TEXT = Converter("text", lambda v: None if v is None else str(v), _as_text)
"""Any value as text (numbers too)."""
INT = Converter("int", lambda v: v, lambda j: sa.cast(sa.cast(_as_text(j), sa.Numeric), sa.Integer))
EPOCH_MS = Converter("epoch_ms", from_epoch_ms,
                     lambda j: _EPOCH + sa.cast(_as_text(j), sa.Float) * _MILLISECOND)
ISO = Converter("iso", from_iso, lambda j: sa.cast(sa.func.nullif(_as_text(j), ""), sa.DateTime(timezone=True)))
"""ISO-8601 text; without an offset it is UTC (the PostgreSQL load sets its time zone to UTC)."""
JSON = Converter("json", lambda v: v, lambda j: sa.func.coalesce(j, sa.cast(sa.literal("null"), JSONB)))
"""The JSON value itself (absent: JSON null)."""


@dataclass(frozen=True)
class Latest:
    """The entry of the item's array ``array`` with the greatest ``by`` (first on ties)."""

    array: str
    by: str

    def pick(self, item: dict) -> dict:
        entries = item.get(self.array)
        if not entries or not isinstance(entries, list):  # not an array: no entry (as in PostgreSQL)
            return {}
        return max(entries, key=lambda e: (e.get(self.by) if isinstance(e, dict) else None) or 0)


@dataclass(frozen=True)
class Field:
    column: str
    path: str | Path | Sequence[Path]  # "key", ("a", "b"), or [("k1",), ("k2",)]: the first not null
    convert: Converter
    type: sa.types.TypeEngine
    key: bool = False
    nullable: bool = True
    within: Latest | None = None

    @property
    def paths(self) -> list[Path]:
        if isinstance(self.path, str):
            return [(self.path,)]
        if not self.path or isinstance(self.path[0], str):
            return [tuple(self.path)]
        return [tuple(p) for p in self.path]

    def column_object(self) -> sa.Column:
        return sa.Column(self.column, self.type, primary_key=self.key, nullable=self.nullable and not self.key)


def _at(item: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(item, dict):
            return None
        item = item.get(key)
    return item


def _json_at(value: Sql, path: Path) -> Sql:
    for key in path:
        value = value.op("->", return_type=JSONB)(sa.literal(key, sa.Text))
    return value


@dataclass(frozen=True)
class FieldMap:
    """The columns of one table, each filled from the API item (or from each entry of ``each``)."""

    fields: tuple[Field, ...]
    each: str | None = None  # one row per entry of this array of the item

    def columns(self) -> list[sa.Column]:
        return [f.column_object() for f in self.fields]

    @property
    def keys(self) -> list[str]:
        return [f.column for f in self.fields if f.key]

    # --- Python ---------------------------------------------------------------------------------
    def row(self, item: dict, **given: Any) -> dict[str, Any]:
        """The row for one item (``given``: columns not from the item, e.g. ``tenant_id``)."""
        row = dict(given)
        picked: dict[Latest, dict] = {}
        for f in self.fields:
            source = item
            if f.within is not None:
                source = picked.get(f.within)
                if source is None:
                    source = picked[f.within] = f.within.pick(item)
            value = None
            for path in f.paths:
                value = _at(source, path)
                if value is not None:
                    break
            row[f.column] = f.convert.python(value)
        return row

    def rows(self, item: dict, **given: Any) -> list[dict[str, Any]]:
        """One row per entry of ``each`` (the last of repeated keys wins, in first-seen order)."""
        rows: dict[tuple, dict[str, Any]] = {}
        entries = item.get(self.each)
        for entry in entries if isinstance(entries, list) else []:  # not an array: no rows
            row = self.row(entry, **given)
            rows[tuple(row[k] for k in self.keys)] = row
        return list(rows.values())

    # --- PostgreSQL -----------------------------------------------------------------------------
    def _value(self, f: Field, source: Sql) -> Sql:
        expressions = [f.convert.sql(_json_at(source, path)) for path in f.paths]
        return (expressions[0] if len(expressions) == 1 else sa.func.coalesce(*expressions)).label(f.column)

    def select(self, source: sa.FromClause, payload: Sql, **given: Sql) -> sa.Select:
        """The rows computed inside PostgreSQL from ``payload`` (a JSONB column of ``source``), in
        the order of ``names(given)``; ``given`` are the values not taken from the item."""
        laterals: dict[Latest, sa.Subquery] = {}
        for f in self.fields:
            if f.within is not None and f.within not in laterals:
                laterals[f.within] = _latest_lateral(payload, f.within, f"_{f.within.array}")
        values = [given[f.column].label(f.column) if f.column in given
                  else self._value(f, payload if f.within is None else laterals[f.within].c.e)
                  for f in self.fields]
        joined = source
        for lateral in laterals.values():
            joined = joined.outerjoin(lateral, sa.true())
        return sa.select(*_extra(given, self.fields), *values).select_from(joined)

    def value(self, column: str, payload: Sql) -> Sql:
        """One column's value computed from ``payload`` (a field read from the item itself)."""
        field = next(f for f in self.fields if f.column == column)
        if field.within is not None:
            raise ValueError(f"{column} is read from {field.within.array}: use select()")
        return self._value(field, payload).element

    def select_each(self, source: sa.FromClause, payload: Sql, parent: Sequence[Sql], **given: Sql) -> sa.Select:
        """One row per entry of ``each`` of ``payload``: for each ``parent`` key, the last entry
        listed of each key of this map."""
        entries = _elements(_json_at(payload, (self.each,)), "_entry")
        values = [given[f.column].label(f.column) if f.column in given else self._value(f, entries.c.e)
                  for f in self.fields]
        keys = [*parent, *(v.element for v in values if v.name in self.keys)]
        return (sa.select(*_extra(given, self.fields), *values)
                .select_from(source.join(entries, sa.true()))
                .ext(distinct_on(*keys))
                .order_by(*keys, entries.c.n.desc()))

    def names(self, **given: Any) -> list[str]:
        """The column names ``select``/``select_each`` produce, in order."""
        own = [f.column for f in self.fields]
        return [name for name in given if name not in own] + own


def _extra(given: dict[str, Sql], fields: Sequence[Field]) -> list:
    """The ``given`` columns that are not fields of the map (e.g. ``tenant_id``), labelled."""
    names = {f.column for f in fields}
    return [value.label(name) for name, value in given.items() if name not in names]


def _elements(array: Sql, name: str) -> sa.TableValuedAlias:
    """``jsonb_array_elements(array) WITH ORDINALITY AS name (e, n)``, laterally; not an array: no rows."""
    guarded = sa.case((sa.func.jsonb_typeof(array) == "array", array),
                      else_=sa.cast(sa.literal("[]"), JSONB))
    return (sa.func.jsonb_array_elements(guarded)
            .table_valued(sa.column("e", JSONB), with_ordinality="n")
            .render_derived(name=name)
            .lateral())


def _latest_lateral(payload: Sql, latest: Latest, name: str) -> sa.Subquery:
    x = _elements(_json_at(payload, (latest.array,)), f"{name}_x")
    by = sa.func.coalesce(sa.cast(_as_text(_json_at(x.c.e, (latest.by,))), sa.Float), 0)
    return sa.select(x.c.e).select_from(x).order_by(by.desc(), x.c.n).limit(1).lateral(name)

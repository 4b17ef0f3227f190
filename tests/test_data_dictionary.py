"""docs/warehouse.md describes exactly the migrated schema: every table, view and column, nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

DOC = Path(__file__).resolve().parents[1] / "docs" / "warehouse.md"
HEADING = re.compile(r"^### `(\w+)` \((table|view)\)\s*$")
COLUMN = re.compile(r"^\| `(\w+)` \|(.*)\|\s*$")


def documented(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(kind, name): {column: description}} from the document's headings and column tables."""
    objects: dict[tuple[str, str], dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if heading := HEADING.match(line):
            current = (heading.group(2), heading.group(1))
            assert current not in objects, f"docs/warehouse.md: {current[0]} {current[1]} is described twice"
            objects[current] = {}
        elif (column := COLUMN.match(line)) and current:
            assert column.group(1) not in objects[current], \
                f"docs/warehouse.md: {current[0]} {current[1]}: column {column.group(1)} is described twice"
            objects[current][column.group(1)] = column.group(2).strip()
        elif line.startswith("## "):
            current = None
    return objects


def migrated(engine) -> dict[tuple[str, str], list[str]]:
    inspector = sa.inspect(engine)
    found = {}
    for kind, names in (("table", inspector.get_table_names()), ("view", inspector.get_view_names())):
        for name in names:
            found[(kind, name)] = [c["name"] for c in inspector.get_columns(name)]
    return found


def differences(doc: dict[tuple[str, str], dict[str, str]], schema: dict[tuple[str, str], list[str]]) -> list[str]:
    problems = []
    names_doc = {name: kind for kind, name in doc}
    for kind, name in sorted(set(schema) - set(doc)):
        if name in names_doc:
            problems.append(f"{name} is a {kind} but docs/warehouse.md describes it as a {names_doc[name]}")
        else:
            problems.append(f"{kind} {name} is missing from docs/warehouse.md")
    names_schema = {name for _, name in schema}
    for kind, name in sorted(set(doc) - set(schema)):
        if name not in names_schema:
            problems.append(f"docs/warehouse.md describes {kind} {name}, which the schema does not have")
    for key in sorted(set(doc) & set(schema)):
        kind, name = key
        for column in schema[key]:
            if column not in doc[key]:
                problems.append(f"{kind} {name}: column {column} is missing from docs/warehouse.md")
            elif not doc[key][column]:
                problems.append(f"{kind} {name}: column {column} has no description")
        for column in doc[key]:
            if column not in schema[key]:
                problems.append(f"{kind} {name}: docs/warehouse.md describes column {column}, which it does not have")
    return problems


def test_document_matches_the_migrated_schema(warehouse):
    problems = differences(documented(DOC.read_text(encoding="utf-8")), migrated(warehouse))
    assert problems == [], "docs/warehouse.md and the schema disagree:\n" + "\n".join(problems)


def test_the_comparison_names_each_difference():
    doc = documented("## Tables\n### `t1` (table)\n| `a` | one |\n| `gone` | old |\n| `b` |  |\n"
                     "### `v1` (table)\n| `x` | y |\n### `old_table` (table)\n| `c` | z |\n")
    schema = {("table", "t1"): ["a", "b", "new"], ("view", "v1"): ["x"], ("table", "t2"): ["a"]}
    assert differences(doc, schema) == [
        "table t2 is missing from docs/warehouse.md",
        "v1 is a view but docs/warehouse.md describes it as a table",
        "docs/warehouse.md describes table old_table, which the schema does not have",
        "table t1: column b has no description",
        "table t1: column new is missing from docs/warehouse.md",
        "table t1: docs/warehouse.md describes column gone, which it does not have",
    ]

"""Reports from the warehouse: SQL from include/sql/reports, HTML from include/templates (Jinja,
autoescaped so every value that came from the API is rendered as text)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.paths import include_dir, sql_dir
from securitycoach.sync import table_counts
from securitycoach.warehouse.schema import Ts


def run_report_query(engine: Engine, name: str, params: dict[str, Any] | None = None,
                     types: dict[str, Any] | None = None) -> list[dict]:
    """Run ``include/sql/reports/<name>.sql`` with bound parameters (datetimes bound as the warehouse's
    timestamp type, ``types`` for result columns); numbers come back as int/float, not Decimal."""
    params = params or {}
    stmt = sa.text((sql_dir() / "reports" / f"{name}.sql").read_text(encoding="utf-8"))
    stmt = stmt.bindparams(*[sa.bindparam(key, type_=Ts) for key, value in params.items()
                             if isinstance(value, datetime)])
    if types:
        stmt = stmt.columns(**types)
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(stmt, params).mappings()]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, Decimal):
                row[key] = int(value) if value == value.to_integral_value() else float(value)
    return rows


def template_environment() -> jinja2.Environment:
    """The reports' Jinja environment: include/templates, autoescaped, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(include_dir() / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def write_sync_report(engine: Engine, path: Path) -> Path:
    """A self-contained HTML page: rows per table and the sync audit per tenant."""
    html = template_environment().get_template("sync_report.html.j2").render(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        counts=table_counts(engine),
        audit=run_report_query(engine, "sync_summary"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path

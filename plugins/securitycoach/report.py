"""Reports from the warehouse: SQL from include/sql/reports, HTML from include/templates (Jinja,
autoescaped so every value that came from the API is rendered as text)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.paths import include_dir, sql_dir
from securitycoach.sync import table_counts


def run_report_query(engine: Engine, name: str) -> list[dict]:
    query = (sql_dir() / "reports" / f"{name}.sql").read_text(encoding="utf-8")
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.text(query)).mappings()]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(include_dir() / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def write_sync_report(engine: Engine, path: Path) -> Path:
    """A self-contained HTML page: rows per table and the sync audit per tenant."""
    html = _environment().get_template("sync_report.html.j2").render(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        counts=table_counts(engine),
        audit=run_report_query(engine, "sync_summary"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path

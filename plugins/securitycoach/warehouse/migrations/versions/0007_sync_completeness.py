"""Version 7: completeness in sync_audit (per stream, the API's totalCount and the warehouse's rows).

``sessions_api_total`` / ``sessions_rows`` and ``alerts_api_total`` / ``alerts_rows``: what the API
said the run's window holds and what the warehouse held for it after the load. Nullable: runs
before this version, and streams a run did not read, have none.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

COLUMNS = ("sessions_api_total", "sessions_rows", "alerts_api_total", "alerts_rows")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("sync_audit", sa.Column(name, sa.Integer))

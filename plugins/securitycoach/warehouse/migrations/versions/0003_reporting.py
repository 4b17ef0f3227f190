"""Version 3: reporting (ksat_user_group, risk_indicator_vocabulary); the rpt_* views follow.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table("ksat_user_group",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
        sa.Column("group_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ksat_user_id", "group_id")
    )
    op.create_table("risk_indicator_vocabulary",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("indicator_name", sa.String(250), nullable=False),
        sa.Column("vector", sa.String(64)),
        sa.Column("destination_category", sa.Text),
        sa.Column("file_category", sa.Text),
        sa.Column("watchlist", sa.String(64)),
        sa.PrimaryKeyConstraint("tenant_id", "indicator_name")
    )

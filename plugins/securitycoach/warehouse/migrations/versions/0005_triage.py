"""Version 5: triage-aware delivery: delivery.status VARCHAR(32) (covered_by_instructor), coaching_block.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

TS = sa.DateTime(timezone=True)

# The views that read delivery (PostgreSQL does not alter a column a view uses). Dropped here;
# migrate() re-creates every missing view after the revisions.
_VIEWS_OVER_DELIVERY = ("rpt_coaching_summary", "rpt_recidivism", "rpt_top_campaigns", "rpt_top_groups",
                        "base_delivery_sent")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        for view in _VIEWS_OVER_DELIVERY:
            op.execute(f"DROP VIEW IF EXISTS {view} CASCADE")
        op.alter_column("delivery", "status", type_=sa.String(32), existing_type=sa.String(16),
                        existing_nullable=False)
    op.create_table("coaching_block",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(160), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "campaign")
    )

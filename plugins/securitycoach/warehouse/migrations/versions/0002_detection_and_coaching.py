"""Version 2: detection rules, detections, campaigns, the delivery outbox, the deletion audit.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"

# The tables as they were at this version (never import schema.py here: it holds the newest shape).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("coaching_campaign",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(160), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("test_mode", sa.Boolean, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("rule_keys", JSON, nullable=False),
        sa.Column("groups", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "campaign")
    )
    op.create_table("delivery",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(160), nullable=False),
        sa.Column("rule_key", sa.String(160), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("claimed_at", TS),
        sa.Column("sent_at", TS),
        sa.Column("subject", sa.Text),
        sa.Column("body", sa.Text),
        sa.PrimaryKeyConstraint("tenant_id", "campaign", "rule_key", "subject_type", "subject_id"),
        sa.UniqueConstraint("idempotency_key")
    )
    op.create_index("ix_delivery_status", "delivery", ["tenant_id", "status", "due_at"])
    op.create_index("ix_delivery_user", "delivery", ["tenant_id", "campaign", "ksat_user_id", "sent_at"])
    op.create_table("detection",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("rule_key", sa.String(160), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_changed_at", TS, nullable=False),
        sa.Column("subject_version", TS),
        sa.Column("summary", sa.Text),
        sa.Column("evidence", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rule_key", "subject_type", "subject_id")
    )
    op.create_index("ix_detection_actor", "detection", ["tenant_id", "actor_id"])
    op.create_index("ix_detection_seen", "detection", ["tenant_id", "first_seen_at"])
    op.create_index("ix_detection_subject", "detection", ["tenant_id", "subject_id"])
    op.create_table("detection_rule",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("rule_key", sa.String(160), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("lesson_title", sa.Text),
        sa.Column("lesson_url", sa.Text),
        sa.Column("code42_rule_id", sa.String(128)),
        sa.Column("criteria", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("removed_at", TS),
        sa.PrimaryKeyConstraint("tenant_id", "rule_key")
    )
    op.create_table("integration_deletion",
        sa.Column("deletion_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("deleted_by", sa.Text, nullable=False),
        sa.Column("deleted_at", TS, nullable=False),
        sa.Column("row_counts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("deletion_id")
    )
    op.create_table("stg_detection_queue",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "subject_type", "subject_id")
    )

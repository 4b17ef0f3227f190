"""Version 6: KSAT timeline events (ksat_event, ksat_event_type, ksat_event_quota), delivery note columns.

Code42 detections on the KSAT users' Events Timelines (KnowBe4 User Event API), and the optional
Code42 session notes (delivery.note_status, delivery.note_at; adding columns leaves the views that
read delivery as they are).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("delivery", sa.Column("note_status", sa.String(16)))
    op.add_column("delivery", sa.Column("note_at", TS))
    op.create_table("ksat_event",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("rule_key", sa.String(160), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
        sa.Column("target_user", sa.Text, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("risk_level", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("key_id", sa.String(16)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("event_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("claimed_at", TS),
        sa.Column("pushed_at", TS),
        sa.Column("deleted_at", TS),
        sa.PrimaryKeyConstraint("tenant_id", "rule_key", "subject_type", "subject_id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_index("ix_ksat_event_status", "ksat_event", ["tenant_id", "status"])
    op.create_table("ksat_event_type",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("type_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "name"),
    )
    op.create_table("ksat_event_quota",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("quota", sa.Integer, nullable=False),
        sa.Column("n_429", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "day"),
    )

"""Version 1 (baseline): Code42 facts, staging, sync audit, the KSAT directory and user mapping.

Revision ID: 0001
Revises: -
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None

# The tables as they were at this version (never import schema.py here: it holds the newest shape).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("code42_actor",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("alternate_names", JSON),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("department", sa.Text),
        sa.Column("division", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("employee_type", sa.Text),
        sa.Column("country", sa.Text),
        sa.Column("locality", sa.Text),
        sa.Column("manager_actor_id", sa.String(128)),
        sa.Column("parent_actor_id", sa.String(128)),
        sa.Column("in_scope", sa.Boolean),
        sa.Column("start_date", sa.Text),
        sa.Column("end_date", sa.Text),
        sa.Column("raw", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "actor_id")
    )
    op.create_table("code42_alert",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state", sa.String(32)),
        sa.Column("state_last_modified_by", sa.Text),
        sa.Column("state_last_modified_at", TS),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("actor", sa.Text),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("target", sa.Text),
        sa.Column("severity", sa.String(32)),
        sa.Column("risk_severity", sa.String(32)),
        sa.Column("rule_id", sa.String(128)),
        sa.Column("watchlists", JSON),
        sa.Column("raw", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id")
    )
    op.create_index("ix_code42_alert_created", "code42_alert", ["tenant_id", "created_at"])
    op.create_table("code42_alert_rule",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("severity", sa.String(32)),
        sa.Column("is_enabled", sa.Boolean),
        sa.Column("is_system_rule", sa.Boolean),
        sa.Column("source", sa.String(64)),
        sa.Column("vectors", JSON),
        sa.Column("lesson_id", sa.String(128)),
        sa.Column("created_at", TS),
        sa.Column("modified_at", TS),
        sa.Column("raw", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rule_id")
    )
    op.create_table("code42_session",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("actor_name", sa.Text),
        sa.Column("user_id", sa.String(128)),
        sa.Column("type", sa.String(64)),
        sa.Column("begin_time", TS, nullable=False),
        sa.Column("end_time", TS),
        sa.Column("first_observed", TS),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("state", sa.String(32)),
        sa.Column("risk_score", sa.Integer),
        sa.Column("severity", sa.Integer),
        sa.Column("no_risk_events", sa.Integer),
        sa.Column("low_events", sa.Integer),
        sa.Column("moderate_events", sa.Integer),
        sa.Column("high_events", sa.Integer),
        sa.Column("critical_events", sa.Integer),
        sa.Column("context_summary", sa.Text),
        sa.Column("exfiltration_summary", sa.Text),
        sa.Column("raw", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id")
    )
    op.create_index("ix_code42_session_actor", "code42_session", ["tenant_id", "actor_id"])
    op.create_index("ix_code42_session_begin", "code42_session", ["tenant_id", "begin_time"])
    op.create_table("code42_session_alert",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128)),
        sa.Column("rule_name", sa.Text),
        sa.Column("lesson_id", sa.String(128)),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "alert_id")
    )
    op.create_table("code42_session_risk_indicator",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("indicator_id", sa.String(128), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("weight", sa.Integer),
        sa.Column("event_count", sa.Integer),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "indicator_id")
    )
    op.create_table("ksat_group",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("group_type", sa.Text),
        sa.Column("member_count", sa.Integer),
        sa.Column("status", sa.String(16)),
        sa.PrimaryKeyConstraint("tenant_id", "group_id")
    )
    op.create_table("ksat_user",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("employee_number", sa.Text),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("department", sa.Text),
        sa.Column("aliases", JSON),
        sa.Column("groups", JSON),
        sa.Column("custom_field_1", sa.Text),
        sa.Column("custom_field_2", sa.Text),
        sa.Column("custom_field_3", sa.Text),
        sa.Column("custom_field_4", sa.Text),
        sa.Column("archived_at", sa.Text),
        sa.Column("raw", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ksat_user_id")
    )
    op.create_table("mapping_override",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("code42_identifier", sa.Text, nullable=False),
        sa.Column("ksat_email", sa.Text, nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "code42_identifier")
    )
    op.create_table("mapping_upload",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("errors", JSON),
        sa.Column("uploaded_by", sa.Text),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "upload_id")
    )
    op.create_table("schema_version",
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("version")
    )
    op.create_table("stg_code42_record",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("run_key", sa.String(250), nullable=False),
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("cursor_value", TS),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "run_key", "stream", "record_id")
    )
    op.create_table("sync_audit",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("interval_start", TS),
        sa.Column("interval_end", TS),
        sa.Column("sessions_from", TS),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("n_429", sa.Integer, nullable=False),
        sa.Column("n_5xx", sa.Integer, nullable=False),
        sa.Column("rows_changed", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "dag_id", "run_id")
    )
    op.create_table("unmapped_actor",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "actor_id")
    )
    op.create_table("user_mapping",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("mapped_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "actor_id")
    )

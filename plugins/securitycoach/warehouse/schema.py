"""Warehouse tables, declared once as SQLAlchemy Core metadata.

This module is the single source of the table layout: DDL is generated from it per dialect
(TIMESTAMP WITH TIME ZONE and JSONB on PostgreSQL; ISO text and JSON text on SQLite), and the
loaders build their dialect upserts from the same ``Table`` objects. Views and report queries
live in ``include/sql``.

Every row carries ``tenant_id`` (the Code42 ``tenantUid``) so several integrations can share one
warehouse and one can be deleted alone. Facts are keyed on Code42 ids + tenant.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from securitycoach.fieldmap import AS_IS, EPOCH_MS, INT, ISO, JSON, TEXT, Field, FieldMap, Latest

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def _when_done(name: str, nullable: bool = False) -> sa.Column:
    """A timestamp of when the pipeline did something (not a fact from the API): digests that
    compare two warehouses of the same data skip it."""
    return sa.Column(name, Ts, nullable=nullable, info={"wall_clock": True})


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.String(64), primary_key=True)


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", Ts, nullable=False),
)

# Raw pages as the API returned them, one row per item and extraction run. The load task reads
# them back; a rerun of the same run key replaces them.
staging_record = sa.Table(
    "stg_code42_record",
    metadata,
    _tenant(),
    sa.Column("run_key", sa.String(250), primary_key=True),
    sa.Column("stream", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("cursor_value", Ts, nullable=True),
    sa.Column("payload", Json, nullable=False),
)

# --- Code42 facts: each column with the API field it is filled from (securitycoach.fieldmap) ------
# Adding an API field: one Field line here plus a migration adding the column.
_SCORE = Latest("scores", by="sourceTimestamp")  # sessions keep histories: the latest entry counts
_STATE = Latest("states", by="sourceTimestamp")
_RAW = Field("raw", (), JSON, Json, nullable=False)  # the item as the API returned it

SESSION_FIELDS = FieldMap((
    Field("session_id", "sessionId", AS_IS, sa.String(128), key=True),
    Field("actor_id", "actorId", AS_IS, sa.String(128)),
    Field("actor_name", "actorName", AS_IS, sa.Text),
    Field("user_id", "userId", AS_IS, sa.String(128)),
    Field("type", "type", AS_IS, sa.String(64)),
    Field("begin_time", "beginTime", EPOCH_MS, Ts, nullable=False),
    Field("end_time", "endTime", EPOCH_MS, Ts),
    Field("first_observed", "firstObserved", EPOCH_MS, Ts),
    Field("last_updated", "lastUpdated", EPOCH_MS, Ts, nullable=False),
    # ``state`` is deprecated for ``stateV2`` (the SDK's model)
    Field("state", [("stateV2",), ("state",)], AS_IS, sa.String(32), within=_STATE),
    Field("risk_score", "score", INT, sa.Integer, within=_SCORE),
    Field("severity", "severity", INT, sa.Integer, within=_SCORE),
    Field("no_risk_events", "noRiskEvents", INT, sa.Integer),
    Field("low_events", "lowEvents", INT, sa.Integer),
    Field("moderate_events", "moderateEvents", INT, sa.Integer),
    Field("high_events", "highEvents", INT, sa.Integer),
    Field("critical_events", "criticalEvents", INT, sa.Integer),
    Field("context_summary", "contextSummary", AS_IS, sa.Text),
    Field("exfiltration_summary", "exfiltrationSummary", AS_IS, sa.Text),
    _RAW,
))



def _session_key() -> sa.Column:
    return sa.Column("session_id", sa.String(128), primary_key=True)


SESSION_RISK_INDICATOR_FIELDS = FieldMap((
    Field("indicator_id", "id", TEXT, sa.String(128), key=True),
    Field("name", "name", AS_IS, sa.Text),
    Field("weight", "weight", INT, sa.Integer),
    Field("event_count", "eventCount", INT, sa.Integer),
), each="riskIndicators")

SESSION_ALERT_FIELDS = FieldMap((
    Field("alert_id", "alertId", TEXT, sa.String(128), key=True),
    Field("rule_id", "ruleId", AS_IS, sa.String(128)),
    Field("rule_name", "ruleName", AS_IS, sa.Text),
    Field("lesson_id", "lessonId", AS_IS, sa.String(128)),
), each="triggeredAlerts")

ALERT_FIELDS = FieldMap((
    Field("alert_id", "id", AS_IS, sa.String(128), key=True),
    Field("type", "type", AS_IS, sa.String(64)),
    Field("created_at", "createdAt", ISO, Ts, nullable=False),
    Field("state", "state", AS_IS, sa.String(32)),
    Field("state_last_modified_by", "stateLastModifiedBy", AS_IS, sa.Text),
    Field("state_last_modified_at", "stateLastModifiedAt", ISO, Ts),
    Field("name", "name", AS_IS, sa.Text),
    Field("description", "description", AS_IS, sa.Text),
    Field("actor", "actor", AS_IS, sa.Text),
    Field("actor_id", "actorId", AS_IS, sa.String(128)),
    Field("target", "target", AS_IS, sa.Text),
    Field("severity", "severity", AS_IS, sa.String(32)),
    Field("risk_severity", "riskSeverity", AS_IS, sa.String(32)),
    Field("rule_id", "ruleId", AS_IS, sa.String(128)),
    Field("watchlists", "watchlists", JSON, Json),
    _RAW,
))

ALERT_RULE_FIELDS = FieldMap((
    Field("rule_id", "id", AS_IS, sa.String(128), key=True),
    Field("name", "name", AS_IS, sa.Text),
    Field("description", "description", AS_IS, sa.Text),
    Field("severity", "severity", AS_IS, sa.String(32)),
    Field("is_enabled", "isEnabled", AS_IS, sa.Boolean),
    Field("is_system_rule", "isSystemRule", AS_IS, sa.Boolean),
    Field("source", "source", AS_IS, sa.String(64)),
    Field("vectors", "vectors", JSON, Json),
    Field("lesson_id", ("education", "lessonId"), AS_IS, sa.String(128)),
    Field("created_at", "createdAt", ISO, Ts),
    Field("modified_at", "modifiedAt", ISO, Ts),
    _RAW,
))

ACTOR_FIELDS = FieldMap((
    Field("actor_id", "actorId", AS_IS, sa.String(128), key=True),
    Field("name", "name", AS_IS, sa.Text),
    Field("alternate_names", "alternateNames", JSON, Json),
    Field("first_name", "firstName", AS_IS, sa.Text),
    Field("last_name", "lastName", AS_IS, sa.Text),
    Field("department", "department", AS_IS, sa.Text),
    Field("division", "division", AS_IS, sa.Text),
    Field("title", "title", AS_IS, sa.Text),
    Field("employee_type", "employeeType", AS_IS, sa.Text),
    Field("country", "country", AS_IS, sa.Text),
    Field("locality", "locality", AS_IS, sa.Text),
    Field("manager_actor_id", "managerActorId", AS_IS, sa.String(128)),
    Field("parent_actor_id", "parentActorId", AS_IS, sa.String(128)),
    Field("in_scope", "inScope", AS_IS, sa.Boolean),
    Field("start_date", "startDate", TEXT, sa.Text),
    Field("end_date", "endDate", TEXT, sa.Text),
    _RAW,
))

code42_session = sa.Table(
    "code42_session",
    metadata,
    _tenant(),
    *SESSION_FIELDS.columns(),
    sa.Index("ix_code42_session_begin", "tenant_id", "begin_time"),
    sa.Index("ix_code42_session_actor", "tenant_id", "actor_id"),
)

code42_session_risk_indicator = sa.Table(
    "code42_session_risk_indicator", metadata, _tenant(), _session_key(),
    *SESSION_RISK_INDICATOR_FIELDS.columns(),
)

code42_session_alert = sa.Table(
    "code42_session_alert", metadata, _tenant(), _session_key(), *SESSION_ALERT_FIELDS.columns(),
)

code42_alert = sa.Table(
    "code42_alert",
    metadata,
    _tenant(),
    *ALERT_FIELDS.columns(),
    sa.Index("ix_code42_alert_created", "tenant_id", "created_at"),
)

code42_alert_rule = sa.Table("code42_alert_rule", metadata, _tenant(), *ALERT_RULE_FIELDS.columns())

code42_actor = sa.Table("code42_actor", metadata, _tenant(), *ACTOR_FIELDS.columns())

# --- KnowBe4 KSAT directory and user mapping -----------------------------------------------------
ksat_user = sa.Table(
    "ksat_user",
    metadata,
    _tenant(),
    sa.Column("ksat_user_id", sa.BigInteger, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("employee_number", sa.Text),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("department", sa.Text),
    sa.Column("aliases", Json),
    sa.Column("groups", Json),
    sa.Column("custom_field_1", sa.Text),
    sa.Column("custom_field_2", sa.Text),
    sa.Column("custom_field_3", sa.Text),
    sa.Column("custom_field_4", sa.Text),
    sa.Column("archived_at", sa.Text),
    sa.Column("raw", Json, nullable=False),
)

ksat_group = sa.Table(
    "ksat_group",
    metadata,
    _tenant(),
    sa.Column("group_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("group_type", sa.Text),
    sa.Column("member_count", sa.Integer),
    sa.Column("status", sa.String(16)),
)

# KSAT group membership, one row per (user, group): ksat_user.groups as a table, so reports can
# join on it on every dialect. Rewritten for each user by every directory refresh (version 3).
ksat_user_group = sa.Table(
    "ksat_user_group",
    metadata,
    _tenant(),
    sa.Column("ksat_user_id", sa.BigInteger, primary_key=True),
    sa.Column("group_id", sa.BigInteger, primary_key=True),
)

# The analysts' contract: one row per mapped Code42 actor (keep the name and columns).
user_mapping = sa.Table(
    "user_mapping",
    metadata,
    _tenant(),
    sa.Column("actor_id", sa.String(128), primary_key=True),
    sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("mapped_at", Ts, nullable=False),
)

# Actors no rule could map, and why ("ambiguous" when two KSAT users fit: never guessed).
unmapped_actor = sa.Table(
    "unmapped_actor",
    metadata,
    _tenant(),
    sa.Column("actor_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
)

# The CSV upload in force (replaced whole by the next good upload) and the audit of every upload.
mapping_override = sa.Table(
    "mapping_override",
    metadata,
    _tenant(),
    sa.Column("code42_identifier", sa.Text, primary_key=True),
    sa.Column("ksat_email", sa.Text, nullable=False),
    sa.Column("upload_id", sa.String(64), nullable=False),
)

mapping_upload = sa.Table(
    "mapping_upload",
    metadata,
    _tenant(),
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("errors", Json),
    sa.Column("uploaded_by", sa.Text),
    sa.Column("uploaded_at", Ts, nullable=False),
)

# One row per DAG run (and per reference refresh): what the run asked of the API and what it cost.
# Operational metadata: not part of the row-for-row idempotence promise of the fact tables.
sync_audit = sa.Table(
    "sync_audit",
    metadata,
    _tenant(),
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("interval_start", Ts),
    sa.Column("interval_end", Ts),
    sa.Column("sessions_from", Ts),
    sa.Column("pages", sa.Integer, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("n_429", sa.Integer, nullable=False),
    sa.Column("n_5xx", sa.Integer, nullable=False),
    sa.Column("rows_changed", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("finished_at", Ts, nullable=False),
    # Completeness, per stream: what the API said the run's window holds (its totalCount) and the
    # tenant's rows in that window after the load (sessions by begin time from sessions_from,
    # alerts by created time from interval_start, both to interval_end). Null: not read.
    sa.Column("sessions_api_total", sa.Integer),
    sa.Column("sessions_rows", sa.Integer),
    sa.Column("alerts_api_total", sa.Integer),
    sa.Column("alerts_rows", sa.Integer),
)

# --- Detection and real-time coaching --------------------------------------------------------------
# Sessions and alerts the load found new or changed, waiting for the detection task. Written in the
# same transaction as the facts, removed by the detection task once evaluated (a work queue).
detection_queue = sa.Table(
    "stg_detection_queue",
    metadata,
    _tenant(),
    sa.Column("subject_type", sa.String(16), primary_key=True),  # session | alert
    sa.Column("subject_id", sa.String(128), primary_key=True),
)

# The detection rules in force per tenant: system rules, one per Code42 alert rule, custom rules.
# Rebuilt from include/config/detection_rules.yaml and code42_alert_rule by every detection run;
# rules that disappear are kept with removed_at so their detections still name them.
detection_rule = sa.Table(
    "detection_rule",
    metadata,
    _tenant(),
    sa.Column("rule_key", sa.String(160), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # system | alert_rule | custom
    sa.Column("subject_type", sa.String(16), nullable=False),  # session | alert
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("lesson_title", sa.Text),
    sa.Column("lesson_url", sa.Text),
    sa.Column("code42_rule_id", sa.String(128)),
    sa.Column("criteria", Json, nullable=False),
    _when_done("updated_at"),
    _when_done("removed_at", nullable=True),
)

# The users' coaching timeline: one row per (rule, session or alert). Reruns and look-back re-reads
# update it in place (an escalated session raises its severity), never add a second row.
detection = sa.Table(
    "detection",
    metadata,
    _tenant(),
    sa.Column("rule_key", sa.String(160), primary_key=True),
    sa.Column("subject_type", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("actor_id", sa.String(128)),
    sa.Column("severity", sa.Integer, nullable=False),  # 0 no risk .. 4 critical
    sa.Column("occurred_at", Ts, nullable=False),  # when the behaviour happened
    _when_done("first_seen_at"),  # when the pipeline first detected it
    _when_done("last_changed_at"),
    sa.Column("subject_version", Ts),  # the session's lastUpdated / the alert's state time
    sa.Column("summary", sa.Text),
    sa.Column("evidence", Json, nullable=False),
    sa.Index("ix_detection_actor", "tenant_id", "actor_id"),
    sa.Index("ix_detection_subject", "tenant_id", "subject_id"),  # the detection task's look-ups
    sa.Index("ix_detection_seen", "tenant_id", "first_seen_at"),
)

# What each Code42 risk indicator name says about a session (the detection rules' vocabulary,
# include/config/detection_rules.yaml), mirrored per tenant by every detection run so reports can
# show vectors and destinations (version 3).
risk_indicator_vocabulary = sa.Table(
    "risk_indicator_vocabulary",
    metadata,
    _tenant(),
    sa.Column("indicator_name", sa.String(250), primary_key=True),
    sa.Column("vector", sa.String(64)),
    sa.Column("destination_category", sa.Text),
    sa.Column("file_category", sa.Text),
    sa.Column("watchlist", sa.String(64)),
)

# Campaigns as configured (include/config/campaigns.yaml), mirrored for reports.
coaching_campaign = sa.Table(
    "coaching_campaign",
    metadata,
    _tenant(),
    sa.Column("campaign", sa.String(160), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("test_mode", sa.Boolean, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("rule_keys", Json, nullable=False),
    sa.Column("groups", Json, nullable=False),
    _when_done("updated_at"),
)

# The outbox: one row per (campaign, detection). ``idempotency_key`` travels with the message
# (Idempotency-Key header, Message-ID) so a receiver can recognise a repeat. Status moves
# pending -> sending -> sent | failed | no_chat_account | pending (retry later); test, stale,
# suppressed, in_doubt, no_chat_account (no chat account for the KSAT email), withdrawn (Code42
# triage cleared the subject), covered_by_instructor (Code42 Instructor sent a lesson) and
# on_watchlist (the actor is under investigation) are final (see securitycoach.coaching.outbox).
delivery = sa.Table(
    "delivery",
    metadata,
    _tenant(),
    sa.Column("campaign", sa.String(160), primary_key=True),
    sa.Column("rule_key", sa.String(160), primary_key=True),
    sa.Column("subject_type", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("actor_id", sa.String(128)),
    sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # 32 since version 5 (covered_by_instructor)
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("occurred_at", Ts, nullable=False),
    _when_done("created_at"),
    _when_done("due_at"),
    _when_done("claimed_at", nullable=True),
    _when_done("sent_at", nullable=True),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text),
    # The optional Code42 write-back (campaigns.yaml code42_notes): NULL, sending, noted, in_doubt,
    # failed or no_session; when it was claimed / written (version 6).
    sa.Column("note_status", sa.String(16)),
    _when_done("note_at", nullable=True),
    sa.Index("ix_delivery_status", "tenant_id", "status", "due_at"),
    sa.Index("ix_delivery_user", "tenant_id", "campaign", "ksat_user_id", "sent_at"),
)

# Campaigns that send nothing for now because a check they need could not be made (e.g. 403 on
# Code42 Watchlists for a campaign with suppress_watchlists): fail safe, shown in the report's
# pipeline health panel; the row goes once the check succeeds again (version 5).
coaching_block = sa.Table(
    "coaching_block",
    metadata,
    _tenant(),
    sa.Column("campaign", sa.String(160), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    _when_done("since"),
    _when_done("checked_at"),
)

# --- KnowBe4 User Event API (version 6) --------------------------------------------------------------
# The push outbox: one row per detection put (or to be put) on its KSAT user's Events Timeline.
# Status: pending -> sending -> pushed | failed | in_doubt (the POST's answer was lost: resolved by
# GET /events?external_id= before any resend) ; stale (older than the freshness window when first
# seen; not pushed) and withdrawn (Code42 triage cleared it before it was pushed) are final; a pushed
# event whose subject triage clears later goes deleting -> deleted (DELETE /events/{id}).
ksat_event = sa.Table(
    "ksat_event",
    metadata,
    _tenant(),
    sa.Column("rule_key", sa.String(160), primary_key=True),
    sa.Column("subject_type", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),  # stable key of the detection
    sa.Column("actor_id", sa.String(128)),
    sa.Column("ksat_user_id", sa.BigInteger, nullable=False),
    sa.Column("target_user", sa.Text, nullable=False),  # the KSAT email
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("risk_level", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("occurred_at", Ts, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("key_id", sa.String(16)),  # the User Event API key that pushed it (a hash, never the key)
    sa.Column("request_id", sa.String(64)),  # POST /events answer (GET /statuses/{id})
    sa.Column("event_id", sa.String(64)),  # the event's id, once known (lookup or status)
    _when_done("created_at"),
    _when_done("claimed_at", nullable=True),
    _when_done("pushed_at", nullable=True),
    _when_done("deleted_at", nullable=True),
    sa.Index("ix_ksat_event_status", "tenant_id", "status"),
)

# The integration's event type per User Event API key: looked up (GET /event_types) or created once.
ksat_event_type = sa.Table(
    "ksat_event_type",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("type_id", sa.String(64)),
    _when_done("created_at"),
)

# Calls made per User Event API key and UTC day, against KnowBe4's quota (10 per seat per day).
ksat_event_quota = sa.Table(
    "ksat_event_quota",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("quota", sa.Integer, nullable=False),
    sa.Column("n_429", sa.Integer, nullable=False),
    _when_done("updated_at"),
)

# "Delete integration": one row per tenant removed, kept after its data is gone (who, when, counts).
integration_deletion = sa.Table(
    "integration_deletion",
    metadata,
    sa.Column("deletion_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("deleted_by", sa.Text, nullable=False),
    _when_done("deleted_at"),
    sa.Column("row_counts", Json, nullable=False),
)

# What Delete Integration did to disable the tenant after its rows went: DAGs paused, connections
# removed, steps left to a person; one row each, with the outcome (no tenant_id column: kept).
integration_deletion_action = sa.Table(
    "integration_deletion_action",
    metadata,
    sa.Column("deletion_id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(32), nullable=False),  # pause_dag | delete_connection | manual
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # done | not_found | failed | to_do
    sa.Column("detail", sa.Text, nullable=False),
)

FACT_TABLES = (
    code42_session,
    code42_session_risk_indicator,
    code42_session_alert,
    code42_alert,
    code42_alert_rule,
    code42_actor,
    ksat_user,
    ksat_group,
    ksat_user_group,
    user_mapping,
    unmapped_actor,
    mapping_override,
    detection_rule,
    detection,
    risk_indicator_vocabulary,
    coaching_campaign,
    delivery,
    coaching_block,
    ksat_event,
)

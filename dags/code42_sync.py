"""Hourly Code42 Incydr sync: sessions + alerts of the data interval into the warehouse, then
user mapping, detection rules and the SecurityTips of the coaching campaigns.

Backfill-capable (catchup off by default; use ``airflow backfill create``). Sessions are read
from ``lookback_hours`` before the interval so late changes (alerts, states, scores) are caught.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from operators import (
    WAREHOUSE_ASSET,
    Code42ExtractOperator,
    Code42ReferenceOperator,
    DeliverTipsOperator,
    DetectOperator,
    MapUsersOperator,
    SyncAuditOperator,
    WarehouseLoadOperator,
    WarehouseSchemaOperator,
)


@dag(
    dag_id="code42_sync",
    # A data-interval timetable: each run covers the period before it ([start, end)), whatever
    # [scheduler] create_cron_data_intervals says.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        "lookback_hours": Param(
            24, type="integer", minimum=0, maximum=24 * 90,
            description="Re-read sessions begun this many hours before the interval (late changes).",
        )
    },
    tags=["code42", "securitycoach"],
    doc_md=__doc__,
)
def code42_sync():
    schema = WarehouseSchemaOperator(task_id="ensure_schema")
    sessions = Code42ExtractOperator(
        task_id="extract_sessions", stream="sessions", lookback_hours="{{ params.lookback_hours }}"
    )
    alerts = Code42ExtractOperator(task_id="extract_alerts", stream="alerts")
    load = WarehouseLoadOperator(
        task_id="load_warehouse", extract_task_ids=["extract_sessions", "extract_alerts"],
        outlets=[WAREHOUSE_ASSET],
    )
    actors = Code42ReferenceOperator(task_id="resolve_new_actors", what="new_actors")
    audit = SyncAuditOperator(
        task_id="write_audit", extract_task_ids=["extract_sessions", "extract_alerts"],
        load_task_id="load_warehouse",
    )
    map_users = MapUsersOperator(task_id="map_users")
    detect = DetectOperator(task_id="detect")
    deliver = DeliverTipsOperator(task_id="deliver_tips")
    schema >> [sessions, alerts] >> load >> actors >> map_users >> detect >> [deliver, audit]


code42_sync()

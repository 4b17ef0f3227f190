"""Daily refresh of reference data: Code42 alert rules (mirrored) and actors, the KnowBe4 KSAT
directory, then user mapping. Trigger it by hand to refresh on demand."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag

from operators import (
    Code42ReferenceOperator,
    KsatDirectoryOperator,
    MapUsersOperator,
    WarehouseSchemaOperator,
)


@dag(
    dag_id="code42_reference",
    # A data-interval timetable: each run covers the period before it ([start, end)), whatever
    # [scheduler] create_cron_data_intervals says.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["code42", "securitycoach"],
    doc_md=__doc__,
)
def code42_reference():
    schema = WarehouseSchemaOperator(task_id="ensure_schema")
    rules = Code42ReferenceOperator(task_id="refresh_alert_rules", what="alert_rules")
    actors = Code42ReferenceOperator(task_id="refresh_actors", what="actors")
    ksat = KsatDirectoryOperator(task_id="refresh_ksat_directory")
    map_users = MapUsersOperator(task_id="map_users")
    schema >> [rules, actors, ksat] >> map_users


code42_reference()

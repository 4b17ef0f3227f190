"""SecurityCoach HTML reports: after every warehouse update (the sync DAGs' ``WAREHOUSE_ASSET``), write one
self-contained HTML report per tenant of the warehouse for the 30 days up to its latest data, under
``data/reports`` (``$SECURITYCOACH_DATA_DIR/reports``). For another period use
``securitycoach report --tenant T --start YYYY-MM-DD --end YYYY-MM-DD``."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from operators import WAREHOUSE_ASSET, TenantReportsOperator, WarehouseSchemaOperator


@dag(
    dag_id="securitycoach_report",
    schedule=[WAREHOUSE_ASSET],
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["securitycoach", "reporting"],
    doc_md=__doc__,
)
def securitycoach_report():
    WarehouseSchemaOperator(task_id="ensure_schema") >> TenantReportsOperator(task_id="write_reports")


securitycoach_report()

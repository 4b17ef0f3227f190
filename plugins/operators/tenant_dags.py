"""The DAG factory of the tenants file: per tenant, a sync DAG, a reference DAG and a report DAG.

``dags/code42_sync.py``, ``dags/code42_reference.py`` and ``dags/securitycoach_report.py`` only
loop over the file's enabled tenants and call these builders. Every task of a tenant's DAGs gets the
tenant's connection ids and its ``code42_tenant_uid`` as an argument (the tasks that read Code42
check it against the token they hold before reading), so tenants share the warehouse but never a
task. Each tenant has its own DAGs, so one failing does not stop another, and its own warehouse
Asset: its loads update it and only its report DAG is scheduled on it, so a load re-renders that
tenant's report and no other. The data checks bind the tenant uid as a SQL parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from operators.checks import (
    WarehouseCheckOperator,
    WarehouseColumnCheckOperator,
    WarehouseCompletenessCheckOperator,
)
from operators.coaching import DeliverTipsOperator, DetectOperator, PushKsatEventsOperator
from operators.code42_sync import (
    Code42ExtractOperator,
    Code42ReferenceOperator,
    SyncAuditOperator,
    WarehouseLoadOperator,
    WarehouseSchemaOperator,
)
from operators.mapping import KsatDirectoryOperator, MapUsersOperator
from operators.notifications import FailureSummaryNotifier
from operators.preflight import CheckConnectionsOperator
from operators.reporting import TenantReportsOperator
from securitycoach.paths import sql_dir
from securitycoach.tenants import Tenant, load_tenants

START = datetime(2024, 1, 1)
EXTRACTS = ("extract_sessions", "extract_alerts")

SYNC_DOC = """Code42 Incydr sync of tenant **{name}** (connection `{code42}`, KnowBe4 `{knowbe4}`):
first a check that every connection the tenant and its campaigns need is defined (`check_connections`),
then sessions + alerts of the data interval into the shared warehouse, data checks, then user
mapping, detection rules, the SecurityTips of the coaching campaigns and the detections pushed to
the KSAT users' Events Timeline (`{events}`).

Schedule `{schedule}` (each run covers the period before it); sessions are re-read from
`lookback_hours` before the interval so late changes are caught. Extract tasks run in the pool
`{pool}` ({pages} slots each). Backfill with `airflow backfill create`.
"""

REFERENCE_DOC = """Reference data of tenant **{name}**: Code42 alert rules and actors (connection
`{code42}`), the KnowBe4 KSAT directory (`{knowbe4}`), then user mapping. Trigger by hand to refresh.

It also re-reads the sessions begun in the `deep_lookback_days` ({deep} days) before its interval:
sessions Code42 first observed after the sync's look-back had passed (a device that was offline)
and triage set days later reach the warehouse there (upserted only when `lastUpdated` is newer)."""


REPORT_DOC = """HTML report of tenant **{name}**: scheduled on the tenant's warehouse Asset
`{asset}`, which its sync and reference DAGs update after each load, it writes the report of the
Code42 tenant that load named (the asset event's extra) for the 30 days up to its latest data under
`data/reports` (`$SECURITYCOACH_DATA_DIR/reports`). Other tenants' loads do not run it. Triggered
by hand it writes the report of every Code42 tenant this entry's DAGs have synced. For another
period use `securitycoach report --tenant T --start YYYY-MM-DD --end YYYY-MM-DD`."""


def tenant_asset(tenant: Tenant) -> Asset:
    """The tenant's warehouse Asset (``securitycoach://warehouse/<name>``)."""
    return Asset(tenant.warehouse_asset_uri, group="securitycoach")


def _default_args(tenant: Tenant) -> dict:
    return {
        "retries": tenant.retries,
        "retry_delay": timedelta(seconds=tenant.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "on_failure_callback": FailureSummaryNotifier(tenant=tenant.name, code42_conn_id=tenant.code42_conn_id),
    }


def _doc(template: str, tenant: Tenant) -> str:
    return template.format(name=tenant.name, code42=tenant.code42_conn_id, knowbe4=tenant.knowbe4_conn_id,
                           events=tenant.knowbe4_events_conn_id,
                           schedule=tenant.schedule, pool=tenant.pool, pages=tenant.pages_in_flight,
                           deep=tenant.deep_lookback_days, asset=tenant.warehouse_asset_uri)


def _tenant_args(tenant: Tenant) -> dict:
    """What every task of a tenant's DAGs is told about the tenant."""
    return {"code42_conn_id": tenant.code42_conn_id, "tenant_id": tenant.code42_tenant_uid}


def build_sync_dag(tenant: Tenant) -> DAG:
    conns = _tenant_args(tenant)
    code42 = {**conns, "tenant_entry": tenant.name}
    by_tenant = {"partition_clause": "tenant_id = :tenant_id", "parameters": {"tenant_id": tenant.code42_tenant_uid}}
    with DAG(
        dag_id=tenant.sync_dag_id,
        # A data-interval timetable: each run covers the period before it ([start, end)), whatever
        # [scheduler] create_cron_data_intervals says.
        schedule=CronDataIntervalTimetable(tenant.schedule, timezone="UTC"),
        start_date=START,
        catchup=False,
        max_active_runs=tenant.max_active_runs,
        default_args=_default_args(tenant),
        params={
            "lookback_hours": Param(
                tenant.lookback_hours, type="integer", minimum=0, maximum=24 * 90,
                description="Re-read sessions begun this many hours before the interval (late changes).",
            )
        },
        template_searchpath=[str(sql_dir())],
        tags=["code42", "securitycoach", f"tenant:{tenant.name}"],
        doc_md=_doc(SYNC_DOC, tenant),
    ) as dag:
        # first: the connections the tenant and its campaigns need (fails naming the missing ones)
        connections = CheckConnectionsOperator(task_id="check_connections", tenant=tenant)
        schema = WarehouseSchemaOperator(task_id="ensure_schema")
        extract = {"pool": tenant.pool, "pool_slots": tenant.pages_in_flight,
                   "pages_in_flight": tenant.pages_in_flight, **code42}
        sessions = Code42ExtractOperator(task_id="extract_sessions", stream="sessions",
                                         lookback_hours="{{ params.lookback_hours }}", **extract)
        alerts = Code42ExtractOperator(task_id="extract_alerts", stream="alerts", **extract)
        load = WarehouseLoadOperator(task_id="load_warehouse", extract_task_ids=list(EXTRACTS),
                                     tenant_id=tenant.code42_tenant_uid, outlets=[tenant_asset(tenant)])
        checks = [
            WarehouseColumnCheckOperator(
                task_id="check_session_keys", table="code42_session", **by_tenant,
                column_mapping={
                    "session_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                    "actor_id": {"null_check": {"equal_to": 0}},
                    "last_updated": {"null_check": {"equal_to": 0}},
                },
            ),
            WarehouseColumnCheckOperator(
                task_id="check_alert_keys", table="code42_alert", **by_tenant,
                column_mapping={
                    "alert_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                    "created_at": {"null_check": {"equal_to": 0}},
                },
            ),
            WarehouseCheckOperator(
                task_id="check_loaded_rows", sql="checks/loaded_rows.sql",
                parameters={"tenant_id": tenant.code42_tenant_uid},
                sql_vars={"sessions": "{{ ti.xcom_pull(task_ids='extract_sessions')['items'] | int }}",
                          "alerts": "{{ ti.xcom_pull(task_ids='extract_alerts')['items'] | int }}"},
            ),
            # the warehouse holds every item the API said each window holds (its totalCount)
            WarehouseCompletenessCheckOperator(task_id="check_complete_windows", extract_task_ids=list(EXTRACTS),
                                               tenant=tenant.name, tenant_id=tenant.code42_tenant_uid),
        ]
        actors = Code42ReferenceOperator(task_id="resolve_new_actors", what="new_actors", **code42)
        audit = SyncAuditOperator(task_id="write_audit", extract_task_ids=list(EXTRACTS),
                                  load_task_id="load_warehouse", tenant_id=tenant.code42_tenant_uid)
        map_users = MapUsersOperator(task_id="map_users", **conns)
        detect = DetectOperator(task_id="detect", **conns)
        deliver = DeliverTipsOperator(task_id="deliver_tips", **conns)
        # after the tips: the default push set is the detections a campaign coached
        ksat_events = PushKsatEventsOperator(task_id="push_ksat_events", knowbe4_conn_id=tenant.knowbe4_conn_id,
                                             knowbe4_events_conn_id=tenant.knowbe4_events_conn_id, **conns)
        connections >> schema >> [sessions, alerts] >> load >> checks >> actors >> map_users >> detect >> [deliver, audit]
        deliver >> ksat_events
    return dag


def build_reference_dag(tenant: Tenant) -> DAG:
    conns = _tenant_args(tenant)
    code42 = {**conns, "tenant_entry": tenant.name}
    with DAG(
        dag_id=tenant.reference_dag_id,
        schedule=CronDataIntervalTimetable(tenant.reference_schedule, timezone="UTC"),
        start_date=START,
        catchup=False,
        default_args=_default_args(tenant),
        tags=["code42", "securitycoach", f"tenant:{tenant.name}"],
        doc_md=_doc(REFERENCE_DOC, tenant),
    ) as dag:
        schema = WarehouseSchemaOperator(task_id="ensure_schema")
        rules = Code42ReferenceOperator(task_id="refresh_alert_rules", what="alert_rules", **code42)
        actors = Code42ReferenceOperator(task_id="refresh_actors", what="actors", **code42)
        ksat = KsatDirectoryOperator(task_id="refresh_ksat_directory", knowbe4_conn_id=tenant.knowbe4_conn_id,
                                     **conns)
        map_users = MapUsersOperator(task_id="map_users", **conns)
        schema >> [rules, actors, ksat] >> map_users
        if tenant.deep_lookback_days:
            # The sync's hourly look-back never sees a session first observed days after it began;
            # what this re-read loads is queued for detection like any load (the next sync run
            # detects it, and tips for it are stale by then unless it is still fresh).
            reread = Code42ExtractOperator(
                task_id="reread_sessions", stream="sessions", lookback_hours=24 * tenant.deep_lookback_days,
                pool=tenant.pool, pool_slots=tenant.pages_in_flight, pages_in_flight=tenant.pages_in_flight, **code42)
            load = WarehouseLoadOperator(task_id="load_reread", extract_task_ids=[reread.task_id],
                                         tenant_id=tenant.code42_tenant_uid, outlets=[tenant_asset(tenant)])
            audit = SyncAuditOperator(task_id="write_audit", extract_task_ids=[reread.task_id],
                                      load_task_id=load.task_id, tenant_id=tenant.code42_tenant_uid)
            schema >> reread >> load >> audit
    return dag


def build_report_dag(tenant: Tenant) -> DAG:
    with DAG(
        dag_id=tenant.report_dag_id,
        schedule=[tenant_asset(tenant)],
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["securitycoach", "reporting", f"tenant:{tenant.name}"],
        doc_md=_doc(REPORT_DOC, tenant),
    ) as dag:
        WarehouseSchemaOperator(task_id="ensure_schema") >> TenantReportsOperator(
            task_id="write_reports", dag_ids=[tenant.sync_dag_id, tenant.reference_dag_id])
    return dag


def build_tenant_dags(kind: str, path=None) -> dict[str, DAG]:
    """``kind`` ``sync``, ``reference`` or ``report``: dag id -> DAG for every enabled tenant of the file."""
    build = {"sync": build_sync_dag, "reference": build_reference_dag, "report": build_report_dag}[kind]
    dags = {}
    for tenant in load_tenants(path).enabled:
        dag = build(tenant)
        dags[dag.dag_id] = dag
    return dags

"""Delete Integration: remove every warehouse row of one Code42 tenant, on demand.

Trigger with ``{"tenant_id": "<tenant uid>", "confirm": "<the same tenant uid>"}``. All of the
tenant's rows go in one transaction and an ``integration_deletion`` row keeps who, when and how
many; a wrong or missing confirmation fails the run and changes nothing. Other tenants are not
touched. Then the tenant is disabled: its DAGs paused and its connections deleted (Airflow REST API
through ``securitycoach_airflow_api``, else the metadata DB), each step and its outcome kept in
``integration_deletion_action``. Last, remove its entry from include/config/tenants.yaml.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from operators import DeleteIntegrationOperator


@dag(
    dag_id="securitycoach_delete_integration",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "tenant_id": Param(type="string", minLength=1, description="Code42 tenant uid to delete"),
        "confirm": Param("", type="string", description="Type the tenant uid again to confirm"),
    },
    tags=["securitycoach", "admin"],
    doc_md=__doc__,
)
def securitycoach_delete_integration():
    DeleteIntegrationOperator(task_id="delete_tenant_rows", tenant_id="{{ params.tenant_id }}",
                              confirm="{{ params.confirm }}")


securitycoach_delete_integration()

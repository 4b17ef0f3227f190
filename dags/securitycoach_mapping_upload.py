"""Apply a user-mapping CSV (``code42_identifier,ksat_email``) and re-map, on demand.

Put the file in the upload folder (``$SECURITYCOACH_UPLOAD_DIR``, default ``data/uploads``) and
trigger with ``{"csv_path": "<file name>"}`` (and ``"tenant"``: an entry name of the tenants file,
default ``default``; the run maps that entry's ``code42_tenant_uid``). The file is validated whole: any problem rejects
it with a per-line report and nothing changes; a good file replaces the previous upload atomically.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from operators import MappingUploadOperator, MapUsersOperator, WarehouseSchemaOperator
from securitycoach.tenants import DEFAULT_TENANT, tenant_uid


@dag(
    dag_id="securitycoach_mapping_upload",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"csv_path": Param(type="string", minLength=1, description="CSV file in the upload folder"),
            "tenant": Param(DEFAULT_TENANT, type="string", minLength=1, description="entry name in the tenants file")},
    user_defined_macros={"tenant_uid": tenant_uid},
    tags=["securitycoach", "mapping"],
    doc_md=__doc__,
)
def securitycoach_mapping_upload():
    schema = WarehouseSchemaOperator(task_id="ensure_schema")
    tenant = {"tenant_id": "{{ tenant_uid(params.tenant) }}"}
    upload = MappingUploadOperator(task_id="apply_upload", csv_path="{{ params.csv_path }}", **tenant)
    schema >> upload >> MapUsersOperator(task_id="map_users", **tenant)


securitycoach_mapping_upload()

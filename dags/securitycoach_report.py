"""SecurityCoach HTML report DAGs (Airflow), one per enabled tenant of include/config/tenants.yaml (``default``:
``securitycoach_report``, others ``securitycoach_report_<name>``), each scheduled on its tenant's warehouse
Asset ``securitycoach://warehouse/<name>``: a tenant's load re-renders that tenant's report only, under
``data/reports`` (``$SECURITYCOACH_DATA_DIR/reports``). The builder lives in plugins/operators/tenant_dags.py.
For another period use ``securitycoach report --tenant T --start YYYY-MM-DD --end YYYY-MM-DD``."""

from __future__ import annotations

from operators.tenant_dags import build_tenant_dags

for _dag_id, _dag in build_tenant_dags("report").items():
    globals()[_dag_id] = _dag

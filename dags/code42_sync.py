"""Code42 Incydr sync DAGs (Airflow), one per enabled tenant of include/config/tenants.yaml (the tenant named
``default`` is ``code42_sync``, any other ``code42_sync_<name>``). The builder lives in
plugins/operators/tenant_dags.py; this file only loops over the config."""

from __future__ import annotations

from operators.tenant_dags import build_tenant_dags

for _dag_id, _dag in build_tenant_dags("sync").items():
    globals()[_dag_id] = _dag

"""Daily reference-data DAGs (Airflow) (Code42 alert rules and actors, the KnowBe4 KSAT directory, user
mapping), one per enabled tenant of include/config/tenants.yaml (``default``: ``code42_reference``,
others ``code42_reference_<name>``). The builder lives in plugins/operators/tenant_dags.py."""

from __future__ import annotations

from operators.tenant_dags import build_tenant_dags

for _dag_id, _dag in build_tenant_dags("reference").items():
    globals()[_dag_id] = _dag

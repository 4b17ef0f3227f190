"""Operator of Delete Integration: all of one tenant's warehouse rows, confirmed, audited; then the
tenant is disabled (its DAGs paused, its connections removed) and every step is audited too."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.airflow_control import airflow_control
from operators.warehouse_hook import WarehouseHook
from securitycoach.tenancy import DeletionRefused, delete_integration
from securitycoach.tenants import TenantFileError, load_tenants
from securitycoach.warehouse import migrate


class DeleteIntegrationOperator(BaseOperator):
    """Delete the tenant's rows if ``confirm`` repeats ``tenant_id``; fails (no retry) otherwise."""

    template_fields: Sequence[str] = ("tenant_id", "confirm")

    def __init__(self, *, tenant_id: str, confirm: str,
                 warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.confirm = confirm
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict:
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        migrate(engine)
        who = getattr(context.get("dag_run"), "triggering_user_name", None) or f"dag run {context['run_id']}"
        try:
            tenants = load_tenants()
        except TenantFileError as exc:
            self.log.warning("tenants file unreadable, so its entry cannot be disabled: %s", exc)
            tenants = None
        try:
            report = delete_integration(engine, self.tenant_id, confirm=self.confirm, deleted_by=who,
                                        control=airflow_control(), tenants=tenants)
        except DeletionRefused as exc:
            raise AirflowFailException(str(exc)) from None
        for line in report.lines():
            self.log.info("%s", line)
        return {"deletion_id": report.deletion_id, "rows": report.counts,
                "actions": [vars(a) for a in report.actions]}

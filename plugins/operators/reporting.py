"""The reporting operator: writes the HTML report of the tenant whose warehouse Asset changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import BaseOperator

from operators.warehouse_hook import WarehouseHook
from securitycoach.html_report import write_tenant_report
from securitycoach.tenancy import synced_tenants


class TenantReportsOperator(BaseOperator):
    """The self-contained HTML report of each Code42 tenant this run was triggered for, for its default
    period (the 30 days up to its latest data), under ``out_dir`` (default
    ``$SECURITYCOACH_DATA_DIR/reports``). The tenants are the ``tenant_ids`` in the extra of the
    triggering asset events (the load tasks put them there); a run without asset events (triggered
    by hand) writes the tenants that ``dag_ids`` (the tenants-file entry's sync and reference DAGs)
    have synced, from ``sync_audit``. Returns the written paths (a short list of strings, for XCom)."""

    template_fields = ("out_dir",)

    def __init__(self, *, dag_ids: Sequence[str], out_dir: str | None = None,
                 warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dag_ids = list(dag_ids)
        self.out_dir = out_dir
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> list[str]:
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        events = context.get("triggering_asset_events") or {}
        tenants = sorted({tenant for changes in events.values() for event in changes
                          for tenant in (event.extra or {}).get("tenant_ids", [])})
        if not tenants:
            tenants = synced_tenants(engine, self.dag_ids)
            self.log.info("no asset event with a tenant (a manual run): the %d tenant(s) DAGs %s synced",
                          len(tenants), ", ".join(self.dag_ids))
        out_dir = Path(self.out_dir) if self.out_dir else None
        paths = [write_tenant_report(engine, tenant, out_dir=out_dir) for tenant in tenants]
        for path in paths:
            self.log.info("report written: %s", path)
        if not paths:
            self.log.info("no tenant synced yet: no report written")
        return [str(path) for path in paths]

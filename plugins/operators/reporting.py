"""The reporting operator: writes the HTML report of every tenant in the warehouse."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import BaseOperator

from operators.warehouse_hook import WarehouseHook
from securitycoach.html_report import write_all_reports


class TenantReportsOperator(BaseOperator):
    """One self-contained HTML report per tenant of the warehouse (every tenant with sync runs or
    sessions: the tenants file names connections, not Code42 tenant ids), each for its default period,
    the 30 days up to its latest data, under ``out_dir`` (default ``$SECURITYCOACH_DATA_DIR/reports``).
    Returns the written paths (a short list of strings, for XCom)."""

    template_fields = ("out_dir",)

    def __init__(self, *, out_dir: str | None = None,
                 warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_dir = out_dir
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> list[str]:
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        paths = write_all_reports(engine, out_dir=Path(self.out_dir) if self.out_dir else None)
        for path in paths:
            self.log.info("report written: %s", path)
        if not paths:
            self.log.info("no tenant in the warehouse yet: no report written")
        return [str(path) for path in paths]

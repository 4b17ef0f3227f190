"""Operators of the Code42 sync: each reads its interval/connections and calls one core step."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.sdk import Asset, BaseOperator

from code42_hook import Code42Hook
from operators.warehouse_hook import WarehouseHook
from securitycoach import sync
from securitycoach.streams import STREAMS
from securitycoach.warehouse import migrate


class WarehouseSchemaOperator(BaseOperator):
    """Create or upgrade the warehouse schema (idempotent; cheap when already current)."""

    def __init__(self, *, warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> int:
        return migrate(WarehouseHook(self.warehouse_conn_id).get_engine())


def _interval(context, tenant_id: str, lookback: int | str = 0) -> sync.Interval:
    """The run's interval: its data interval, keyed by the run id (what every task of the run shares)."""
    return sync.Interval(tenant_id=tenant_id, run_key=context["run_id"], start=context["data_interval_start"],
                         end=context["data_interval_end"], lookback_hours=lookback)


class _Code42TenantOperator(BaseOperator):
    """Operators that read a tenant's Code42 data: the tenant uid comes from the tenants file
    (``tenant_id``); the task checks it against the token it holds anyway before reading anything
    (``tenant_entry`` names the tenants file's entry in the error)."""

    def __init__(self, *, tenant_id: str, tenant_entry: str = "default",
                 code42_conn_id: str = Code42Hook.default_conn_name,
                 warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.tenant_entry = tenant_entry
        self.code42_conn_id = code42_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def verified_hook(self) -> Code42Hook:
        hook = Code42Hook(self.code42_conn_id)
        sync.verify_tenant(hook, self.tenant_id, entry=self.tenant_entry, conn_id=self.code42_conn_id)
        return hook


class Code42ExtractOperator(_Code42TenantOperator):
    """Stage one Code42 stream for the run's data interval (sessions: plus the look-back).

    ``pages_in_flight`` caps the pages fetched at once (the tenant DAGs set it to the task's
    ``pool_slots``, so the tenant's pool bounds its concurrent Code42 pages).
    """

    template_fields: Sequence[str] = ("lookback_hours",)

    def __init__(self, *, stream: str, lookback_hours: int | str = 0, pages_in_flight: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if stream not in STREAMS:
            raise ValueError(f"{self.task_id}: unknown stream {stream!r}; expected one of {sorted(STREAMS)}")
        self.stream = stream
        self.lookback_hours = lookback_hours
        self.pages_in_flight = pages_in_flight

    def execute(self, context) -> dict[str, Any]:
        interval = _interval(context, self.tenant_id, self.lookback_hours)
        hook = sync.limit_pages_in_flight(self.verified_hook(), self.pages_in_flight)
        return interval.extract(hook, WarehouseHook(self.warehouse_conn_id).get_engine(), self.stream).to_dict()


class WarehouseLoadOperator(BaseOperator):
    """Upsert what the extract tasks staged for this run into the fact tables. Each Asset in
    ``outlets`` (the tenant's warehouse Asset) gets an event whose extra names the Code42 tenant uid
    loaded and the rows changed per stream: the report DAG renders that tenant from it."""

    def __init__(
        self,
        *,
        tenant_id: str,
        extract_task_ids: Sequence[str],
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.extract_task_ids = list(extract_task_ids)
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        started = time.monotonic()
        interval = _interval(context, self.tenant_id)
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        changed = {extracted["stream"]: interval.load(engine, extracted["stream"])
                   for extracted in context["ti"].xcom_pull(task_ids=self.extract_task_ids)}
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {"tenant_ids": [self.tenant_id], "changed": changed}
        return {"changed": changed, "seconds": round(time.monotonic() - started, 3)}


class Code42ReferenceOperator(_Code42TenantOperator):
    """Refresh reference data: ``alert_rules``, all ``actors``, or only ``new_actors``."""

    WHAT: ClassVar[dict[str, Any]] = {
        "alert_rules": sync.refresh_alert_rules,
        "actors": sync.refresh_actors,
        "new_actors": sync.resolve_new_actors,
    }

    def __init__(self, *, what: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if what not in self.WHAT:
            raise ValueError(f"{self.task_id}: unknown reference {what!r}; expected one of {sorted(self.WHAT)}")
        self.what = what

    def execute(self, context) -> dict[str, Any]:
        hook = self.verified_hook()
        count = self.WHAT[self.what](WarehouseHook(self.warehouse_conn_id).get_engine(), hook, tenant_id=self.tenant_id)
        return {"what": self.what, "items": count,
                "requests": hook.stats.requests, "retries": hook.stats.retries, "n_429": hook.stats.n_429}


class SyncAuditOperator(BaseOperator):
    """Write the run's audit row from the extract and load tasks' XCom counts."""

    def __init__(
        self,
        *,
        tenant_id: str,
        extract_task_ids: Sequence[str],
        load_task_id: str,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.extract_task_ids = list(extract_task_ids)
        self.load_task_id = load_task_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        ti = context["ti"]
        extracted = [sync.Extracted.from_dict(e) for e in ti.xcom_pull(task_ids=self.extract_task_ids)]
        loaded = ti.xcom_pull(task_ids=self.load_task_id) or {"changed": {}, "seconds": 0.0}
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        row = _interval(context, self.tenant_id).audit_row(context["dag"].dag_id, extracted, loaded["changed"],
                                                            loaded["seconds"], engine)
        sync.write_audit(engine, row)
        return {"items": row.items, "pages": row.pages, "requests": row.requests,
                "rows_changed": row.rows_changed, "n_429": row.n_429, "retries": row.retries}

"""Operators of the Code42 sync: each reads its interval/connections and calls one core step."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from airflow.sdk import Asset, BaseOperator

from code42_hook import Code42Hook
from operators.warehouse_hook import WarehouseHook
from securitycoach import sync
from securitycoach.streams import STREAMS
from securitycoach.warehouse import migrate


def _hours(value: Any, what: str) -> int:
    try:
        hours = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number of hours, got {value!r}") from None
    if not 0 <= hours <= 24 * 90:
        raise ValueError(f"{what} must be between 0 and {24 * 90} hours, got {hours}")
    return hours


class WarehouseSchemaOperator(BaseOperator):
    """Create or upgrade the warehouse schema (idempotent; cheap when already current)."""

    def __init__(self, *, warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> int:
        return migrate(WarehouseHook(self.warehouse_conn_id).get_engine())


class Code42ExtractOperator(BaseOperator):
    """Stage one Code42 stream for the run's data interval (sessions: plus the look-back).

    ``pages_in_flight`` caps the pages fetched at once (the tenant DAGs set it to the task's
    ``pool_slots``, so the tenant's pool bounds its concurrent Code42 pages).
    """

    template_fields: Sequence[str] = ("lookback_hours",)

    def __init__(
        self,
        *,
        stream: str,
        lookback_hours: int | str = 0,
        pages_in_flight: int | None = None,
        code42_conn_id: str = Code42Hook.default_conn_name,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if stream not in STREAMS:
            raise ValueError(f"{self.task_id}: unknown stream {stream!r}; expected one of {sorted(STREAMS)}")
        self.stream = stream
        self.lookback_hours = lookback_hours
        self.pages_in_flight = pages_in_flight
        self.code42_conn_id = code42_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        started = time.monotonic()
        end = context["data_interval_end"]
        start = context["data_interval_start"]
        lookback = _hours(self.lookback_hours, "lookback_hours")
        start_from = start - timedelta(hours=lookback)
        hook = Code42Hook(self.code42_conn_id)
        if self.pages_in_flight:  # at most the pool slots this task holds (the connection may say fewer)
            hook.settings = replace(hook.settings,
                                    pages_in_flight=min(hook.settings.pages_in_flight, self.pages_in_flight))
        count = sync.extract_to_staging(
            WarehouseHook(self.warehouse_conn_id).get_engine(),
            hook,
            STREAMS[self.stream],
            tenant_id=hook.tenant_id,
            run_key=context["run_id"],
            start=start_from,
            end=end,
        )
        stats = hook.stats
        return {
            "tenant_id": hook.tenant_id,
            "stream": self.stream,
            "from": start_from.isoformat(),
            "items": count,
            "pages": stats.pages,
            "requests": stats.requests,
            "retries": stats.retries,
            "n_429": stats.n_429,
            "n_5xx": stats.n_5xx,
            "seconds": round(time.monotonic() - started, 3),
        }


class WarehouseLoadOperator(BaseOperator):
    """Upsert what the extract tasks staged for this run into the fact tables. Each Asset in
    ``outlets`` (the tenant's warehouse Asset) gets an event whose extra names the Code42 tenant uid
    loaded and the rows changed per stream: the report DAG renders that tenant from it."""

    def __init__(
        self,
        *,
        extract_task_ids: Sequence[str],
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.extract_task_ids = list(extract_task_ids)
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        started = time.monotonic()
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        changed, tenant_ids = {}, set()
        for extracted in context["ti"].xcom_pull(task_ids=self.extract_task_ids):
            changed[extracted["stream"]] = sync.load_staged(
                engine, STREAMS[extracted["stream"]], tenant_id=extracted["tenant_id"], run_key=context["run_id"]
            )
            tenant_ids.add(extracted["tenant_id"])
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {"tenant_ids": sorted(tenant_ids), "changed": changed}
        return {"changed": changed, "seconds": round(time.monotonic() - started, 3)}


class Code42ReferenceOperator(BaseOperator):
    """Refresh reference data: ``alert_rules``, all ``actors``, or only ``new_actors``."""

    WHAT: ClassVar[dict[str, Any]] = {
        "alert_rules": sync.refresh_alert_rules,
        "actors": sync.refresh_actors,
        "new_actors": sync.resolve_new_actors,
    }

    def __init__(
        self,
        *,
        what: str,
        code42_conn_id: str = Code42Hook.default_conn_name,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if what not in self.WHAT:
            raise ValueError(f"{self.task_id}: unknown reference {what!r}; expected one of {sorted(self.WHAT)}")
        self.what = what
        self.code42_conn_id = code42_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        hook = Code42Hook(self.code42_conn_id)
        count = self.WHAT[self.what](
            WarehouseHook(self.warehouse_conn_id).get_engine(), hook, tenant_id=hook.tenant_id
        )
        return {"tenant_id": hook.tenant_id, "what": self.what, "items": count,
                "requests": hook.stats.requests, "retries": hook.stats.retries, "n_429": hook.stats.n_429}


class SyncAuditOperator(BaseOperator):
    """Write the run's audit row from the extract and load tasks' XCom counts."""

    def __init__(
        self,
        *,
        extract_task_ids: Sequence[str],
        load_task_id: str,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.extract_task_ids = list(extract_task_ids)
        self.load_task_id = load_task_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context) -> dict[str, Any]:
        ti = context["ti"]
        extracted = ti.xcom_pull(task_ids=self.extract_task_ids)
        loaded = ti.xcom_pull(task_ids=self.load_task_id) or {"changed": {}, "seconds": 0.0}
        sessions = next((e for e in extracted if e["stream"] == "sessions"), None)
        row = sync.AuditRow(
            tenant_id=extracted[0]["tenant_id"],
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            interval_start=context["data_interval_start"],
            interval_end=context["data_interval_end"],
            sessions_from=datetime.fromisoformat(sessions["from"]) if sessions else None,
            rows_changed=sum(loaded["changed"].values()),
            # the pipeline's own work: extraction (API + staging) and load, not scheduling gaps
            seconds=round(sum(e["seconds"] for e in extracted) + loaded["seconds"], 3),
        )
        for e in extracted:
            for field in ("pages", "items", "requests", "retries", "n_429", "n_5xx"):
                setattr(row, field, getattr(row, field) + e[field])
        sync.write_audit(WarehouseHook(self.warehouse_conn_id).get_engine(), row)
        return {"items": row.items, "pages": row.pages, "requests": row.requests,
                "rows_changed": row.rows_changed, "n_429": row.n_429, "retries": row.retries}

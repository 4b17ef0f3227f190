"""The tenants file (``include/config/tenants.yaml``): which Code42 connections this deployment
syncs, each with its own DAGs, schedule, look-back and pool, all into one shared warehouse.

An entry's ``name`` is a short slug used in Airflow names; its ``code42_tenant_uid`` is the Code42
tenant the connection belongs to and what the warehouse's ``tenant_id`` columns hold (every task gets
it from here; the sync checks it against the token's ``tenantUid`` claim before it reads). The entry
named ``default`` keeps the historical DAG ids ``code42_sync``, ``code42_reference`` and
``securitycoach_report``; any other gets ``code42_sync_<name>``, ``code42_reference_<name>`` and
``securitycoach_report_<name>``. Its extract tasks run in the pool ``code42_<name>``; its loads
update the Asset ``securitycoach://warehouse/<name>``, which its report DAG is scheduled on.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from securitycoach.paths import tenants_path
from securitycoach.yamlfile import load_model

DEFAULT_TENANT = "default"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"


class TenantFileError(ValueError):
    """The tenants file cannot be used; the message names the file, the entry and the field."""


class Tenant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="slug for DAG ids and the pool name")
    code42_tenant_uid: str = Field(description="the Code42 tenant of code42_conn_id (its token's tenantUid claim)")
    code42_conn_id: str = Field(pattern=CONN_ID_PATTERN)
    knowbe4_conn_id: str = Field(pattern=CONN_ID_PATTERN)
    knowbe4_events_conn_id: str = Field("knowbe4_events_default", pattern=CONN_ID_PATTERN,
                                        description="KnowBe4 User Event API connection (missing: no push)")
    schedule: str = Field("0 * * * *", description="cron of the sync DAG (each run covers the period before it)")
    reference_schedule: str = Field("0 0 * * *", description="cron of the reference DAG")
    lookback_hours: int = Field(24, ge=0, le=24 * 90)
    deep_lookback_days: int = Field(
        14, ge=0, le=90, description="the reference DAG re-reads the sessions begun this many days before its "
        "interval: sessions first observed after the hourly look-back (an offline device) and late triage; 0: off")
    pool_slots: int = Field(8, ge=1, le=256, description="Code42 pages the tenant's extract tasks may fetch at once")
    pages_in_flight: int = Field(4, ge=1, le=64, description="pages one extract task fetches at once")
    max_active_runs: int = Field(4, ge=1, le=64)
    retries: int = Field(2, ge=0, le=10, description="task retries (exponential back-off)")
    retry_delay_seconds: int = Field(60, ge=1, le=3600)
    enabled: bool = True

    @field_validator("code42_tenant_uid")
    @classmethod
    def _uid(cls, value: str) -> str:
        try:
            parsed = uuid.UUID(value)
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{value!r} is not a UUID (e.g. 41a617d1-b5bb-4fb2-a12e-1c7d362780bc)") from None
        if str(parsed) != value.lower():
            raise ValueError(f"{value!r} is not a UUID in its 8-4-4-4-12 form (e.g. 41a617d1-b5bb-4fb2-a12e-1c7d362780bc)")
        return value

    @field_validator("schedule", "reference_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '0 * * * *')")
        return value

    @model_validator(mode="after")
    def _fits_the_pool(self) -> Tenant:
        if self.pages_in_flight > self.pool_slots:
            raise ValueError(f"pages_in_flight ({self.pages_in_flight}) is more than pool_slots ({self.pool_slots}): "
                             "an extract task takes pages_in_flight slots and could never start")
        return self

    @property
    def sync_dag_id(self) -> str:
        return "code42_sync" if self.name == DEFAULT_TENANT else f"code42_sync_{self.name}"

    @property
    def reference_dag_id(self) -> str:
        return "code42_reference" if self.name == DEFAULT_TENANT else f"code42_reference_{self.name}"

    @property
    def report_dag_id(self) -> str:
        return "securitycoach_report" if self.name == DEFAULT_TENANT else f"securitycoach_report_{self.name}"

    @property
    def dag_ids(self) -> tuple[str, str, str]:
        return (self.sync_dag_id, self.reference_dag_id, self.report_dag_id)

    @property
    def warehouse_asset_uri(self) -> str:
        """The URI of the tenant's warehouse Asset: its loads update it, its report DAG is scheduled on it."""
        return f"securitycoach://warehouse/{self.name}"

    @property
    def pool(self) -> str:
        return f"code42_{self.name}"


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    tenants: list[Tenant] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> TenantsFile:
        for what in ("name", "code42_conn_id", "code42_tenant_uid"):
            seen: dict[str, int] = {}
            for index, tenant in enumerate(self.tenants, start=1):
                value = getattr(tenant, what)
                if value in seen:
                    raise ValueError(f"tenant {index} ({tenant.name!r}): {what} {value!r} is already used by "
                                     f"tenant {seen[value]}; each Code42 tenant and connection gets one sync DAG")
                seen[value] = index
        return self

    @property
    def enabled(self) -> list[Tenant]:
        return [t for t in self.tenants if t.enabled]

    def uid_of(self, name: str) -> str:
        """The ``code42_tenant_uid`` of the enabled entry ``name`` (the on-demand DAGs' ``tenant`` param)."""
        found = next((t for t in self.enabled if t.name == name), None)
        if found is None:
            raise TenantFileError(f"no enabled tenant named {name!r} in the tenants file; "
                                  f"enabled: {[t.name for t in self.enabled]}")
        return found.code42_tenant_uid

    def by_dag_id(self, dag_id: str) -> Tenant | None:
        return next((t for t in self.tenants if dag_id in t.dag_ids), None)


def load_tenants(path: str | Path | None = None) -> TenantsFile:
    return load_model(path or tenants_path(), TenantsFile, what="tenants file", list_key="tenants",
                      error=TenantFileError)


def tenant_uid(name: str, path: str | Path | None = None) -> str:
    """The ``code42_tenant_uid`` of the enabled entry ``name``, the file read now (the on-demand DAGs'
    macro: a bad file fails their run, not their import)."""
    return load_tenants(path).uid_of(name)

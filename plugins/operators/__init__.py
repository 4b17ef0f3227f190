"""Airflow operators: thin shells that read context and connections, then call the core."""

from operators.coaching import DeliverTipsOperator, DetectOperator, PushKsatEventsOperator
from operators.code42_sync import (
    Code42ExtractOperator,
    Code42ReferenceOperator,
    SyncAuditOperator,
    WarehouseLoadOperator,
    WarehouseSchemaOperator,
)
from operators.mapping import KsatDirectoryOperator, MappingUploadOperator, MapUsersOperator
from operators.reporting import TenantReportsOperator
from operators.tenancy import DeleteIntegrationOperator
from operators.warehouse_hook import WarehouseHook

__all__ = [
    "Code42ExtractOperator",
    "Code42ReferenceOperator",
    "DeleteIntegrationOperator",
    "DeliverTipsOperator",
    "DetectOperator",
    "KsatDirectoryOperator",
    "MapUsersOperator",
    "MappingUploadOperator",
    "PushKsatEventsOperator",
    "SyncAuditOperator",
    "TenantReportsOperator",
    "WarehouseHook",
    "WarehouseLoadOperator",
    "WarehouseSchemaOperator",
]

"""Operators of user mapping: KSAT directory refresh, (re)mapping, CSV upload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from code42_hook import Code42Hook
from knowbe4_hook import KnowBe4Hook
from operators.warehouse_hook import WarehouseHook
from securitycoach.mapping.csv_upload import resolve_upload_path
from securitycoach.mapping.rules import load_rules
from securitycoach.mapping.store import apply_upload, refresh_ksat_directory, remap
from securitycoach.paths import mapping_rules_path, upload_dir


class _TenantOperator(BaseOperator):
    """Operators that act for one tenant on the warehouse: ``tenant_id`` is the tenants file's
    ``code42_tenant_uid`` (given, never learnt from a token); ``code42_conn_id`` is its Code42
    connection, for the operators that call Code42."""

    template_fields: Sequence[str] = ("tenant_id",)

    def __init__(self, *, tenant_id: str, code42_conn_id: str = Code42Hook.default_conn_name,
                 warehouse_conn_id: str = WarehouseHook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.code42_conn_id = code42_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def tenant_and_engine(self):
        return self.tenant_id, WarehouseHook(self.warehouse_conn_id).get_engine()


class KsatDirectoryOperator(_TenantOperator):
    """Mirror the KnowBe4 KSAT users and groups into the warehouse."""

    def __init__(self, *, knowbe4_conn_id: str = KnowBe4Hook.default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.knowbe4_conn_id = knowbe4_conn_id

    def execute(self, context) -> dict[str, int]:
        tenant, engine = self.tenant_and_engine()
        return refresh_ksat_directory(engine, KnowBe4Hook(self.knowbe4_conn_id), tenant_id=tenant)


class MapUsersOperator(_TenantOperator):
    """Map every Code42 actor to a KSAT user with the rule file; writes only what changed."""

    def __init__(self, *, rules_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rules_path = rules_path

    def execute(self, context) -> dict[str, int]:
        ruleset = load_rules(self.rules_path or mapping_rules_path())
        tenant, engine = self.tenant_and_engine()
        return remap(engine, tenant, ruleset)


class MappingUploadOperator(_TenantOperator):
    """Apply a mapping CSV from the upload folder; a file with any problem is rejected whole."""

    template_fields: Sequence[str] = ("csv_path", *_TenantOperator.template_fields)

    def __init__(self, *, csv_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.csv_path = csv_path

    def execute(self, context) -> dict[str, Any]:
        try:
            path = resolve_upload_path(self.csv_path, upload_dir())
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        tenant, engine = self.tenant_and_engine()
        who = getattr(context.get("dag_run"), "triggering_user_name", None)
        result = apply_upload(engine, tenant, path.read_bytes(), file_name=path.name, uploaded_by=who)
        if result.status != "applied":
            shown = "\n".join(result.errors[:50])
            more = f"\n... and {len(result.errors) - 50} more" if len(result.errors) > 50 else ""
            raise AirflowFailException(
                f"mapping upload {path.name} rejected, nothing applied ({len(result.errors)} problems):\n{shown}{more}")
        return {"upload_id": result.upload_id, "rows": result.rows}

"""Data checks after each load, with the common-sql check operators on the warehouse.

The warehouse connection may be SQLite or PostgreSQL with a ``search_path`` extra (see
``warehouse_hook``), which the stock hooks of those connection types would not honour (and no
SQLite provider is installed): ``WarehouseSqlHook`` is a ``DbApiHook`` over the project's own
engine, and the check operators below only swap it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.common.sql.operators.sql import (
    BaseSQLOperator,
    SQLCheckOperator,
    SQLColumnCheckOperator,
)

from operators.warehouse_hook import WarehouseHook
from securitycoach import sync
from securitycoach.streams import STREAMS


class WarehouseSqlHook(DbApiHook):
    """DB-API access to the warehouse connection, through the same engine as every task."""

    conn_name_attr = "warehouse_conn_id"
    default_conn_name = WarehouseHook.default_conn_name
    hook_name = "SecurityCoach warehouse (SQL)"
    supports_autocommit = False

    @cached_property
    def _engine(self):
        return WarehouseHook(self.get_conn_id()).get_engine()

    def get_conn(self):
        return self._engine.raw_connection()

    def get_sqlalchemy_engine(self, engine_kwargs=None):
        return self._engine


class _OnWarehouse:
    """``conn_id`` defaults to the warehouse; a failed check fails the task without retries (bad
    data does not get better by retrying)."""

    @cached_property
    def _warehouse_sql_hook(self) -> WarehouseSqlHook:
        return WarehouseSqlHook(self.conn_id)

    def get_db_hook(self) -> DbApiHook:
        return self._warehouse_sql_hook

    def failed_checks(self) -> list[str]:
        return []

    def _raise_exception(self, exception_string: str):
        # a first line that says what failed (failure callbacks show only that line)
        failed = self.failed_checks()
        headline = f"data check {self.task_id} failed" + (f": {'; '.join(failed)}" if failed else "")
        super()._raise_exception(f"{headline}\n{exception_string}")


class WarehouseColumnCheckOperator(_OnWarehouse, SQLColumnCheckOperator):
    """``SQLColumnCheckOperator`` on the warehouse (null, unique, min/max per column)."""

    def __init__(self, *, conn_id: str = WarehouseHook.default_conn_name, retry_on_failure: bool = False,
                 **kwargs) -> None:
        super().__init__(conn_id=conn_id, retry_on_failure=retry_on_failure, **kwargs)

    def failed_checks(self) -> list[str]:
        return [f"{self.table}.{column} {check} = {values.get('result')!r}"
                for column, checks in self.column_mapping.items() for check, values in checks.items()
                if values.get("success") is False]


class WarehouseCheckOperator(_OnWarehouse, SQLCheckOperator):
    """``SQLCheckOperator`` on the warehouse (every value of the query's first row must be true).

    ``sql_vars`` (templated first) become variables of the SQL file's own template, so the file
    says ``{{ tenant }}`` and the DAG says where the tenant comes from.
    """

    def __init__(self, *, sql_vars: dict[str, str] | None = None, conn_id: str = WarehouseHook.default_conn_name,
                 retry_on_failure: bool = False, **kwargs) -> None:
        super().__init__(conn_id=conn_id, retry_on_failure=retry_on_failure, **kwargs)
        self.sql_vars = dict(sql_vars or {})

    def render_template_fields(self, context, jinja_env=None) -> None:
        jinja_env = jinja_env or self.get_template_env()
        self._do_render_template_fields(self, ("sql_vars",), context, jinja_env, set())
        context.update(self.sql_vars)
        super().render_template_fields(context, jinja_env)

    def execute(self, context) -> None:
        hook = self.get_db_hook()
        row = hook.get_first(self.sql, self.parameters)
        if not row:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        description = hook.last_description or []
        names = [d[0] for d in description] or [f"column {i + 1}" for i in range(len(row))]
        self._failed = [name for name, value in zip(names, row, strict=False) if not value]
        if self._failed:
            self._raise_exception(f"Query:\n{self.sql}\nResults: {dict(zip(names, row, strict=False))}")
        self.log.info("All checks passed: %s", dict(zip(names, row, strict=False)))

    def failed_checks(self) -> list[str]:
        return list(getattr(self, "_failed", []))


class WarehouseCompletenessCheckOperator(_OnWarehouse, BaseSQLOperator):
    """Every window the extract tasks read holds, in the warehouse, at least the rows the API said it
    holds (its ``totalCount``, from their XCom): sessions by begin time, alerts by created time,
    counted by ``securitycoach.sync.count_window``. Fails naming the tenant entry, stream, window,
    API total and warehouse rows of each short window."""

    def __init__(self, *, extract_task_ids: Sequence[str], tenant: str,
                 conn_id: str = WarehouseHook.default_conn_name, retry_on_failure: bool = False, **kwargs) -> None:
        super().__init__(conn_id=conn_id, retry_on_failure=retry_on_failure, **kwargs)
        self.extract_task_ids = list(extract_task_ids)
        self.tenant = tenant

    def execute(self, context) -> list[dict]:
        engine = self.get_db_hook().get_sqlalchemy_engine()
        windows = [sync.window_count(engine, e["tenant_id"], STREAMS[e["stream"]], datetime.fromisoformat(e["from"]),
                                     datetime.fromisoformat(e["to"]), e["api_total"])
                   for e in context["ti"].xcom_pull(task_ids=self.extract_task_ids)]
        try:
            sync.check_complete(windows, self.tenant)
        except sync.IncompleteWindows as exc:
            self._failed = [w.describe(self.tenant) for w in exc.windows]
            self._raise_exception("the warehouse holds fewer rows than the Code42 API's totalCount for these windows")
        for w in windows:
            self.log.info("complete: %s", w.describe(self.tenant))
        return [{"stream": w.stream, "api_total": w.api_total, "rows": w.rows} for w in windows]

    def failed_checks(self) -> list[str]:
        return list(getattr(self, "_failed", []))


def sql_string(value: object) -> str:
    """A SQL string literal (Jinja filter for values that come from XCom, e.g. the tenant uid)."""
    if value is None:
        raise ValueError("no value to quote: the upstream task pushed none")
    return "'" + str(value).replace("'", "''") + "'"

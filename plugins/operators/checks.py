"""Data checks after each load, with the common-sql check operators on the warehouse.

The warehouse connection may be SQLite or PostgreSQL with a ``search_path`` extra (see
``warehouse_hook``), which the stock hooks of those connection types would not honour (and no
SQLite provider is installed): ``WarehouseSqlHook`` is a ``DbApiHook`` over the project's own
engine, and the check operators below only swap it in. Values reach the SQL only as bound parameters
(``:tenant_id`` in the text, ``parameters={"tenant_id": ...}`` on the operator), never as literals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import sqlalchemy as sa
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

    def _rows(self, sql: str, parameters: Mapping[str, Any] | None) -> list[tuple]:
        """``sql`` with ``:name`` parameters bound (``sqlalchemy.text``): the values never enter the text."""
        with self._engine.connect() as conn:
            result = conn.execute(sa.text(sql), dict(parameters or {}))
            names = result.keys()  # the DB-API description, as far as the checks read it (names)
            self.descriptions = [[(name,) for name in names]]
            return [tuple(row) for row in result]

    def get_records(self, sql, parameters=None, **kwargs) -> list[tuple]:
        return self._rows(sql, parameters)

    def get_first(self, sql, parameters=None, **kwargs) -> tuple | None:
        rows = self._rows(sql, parameters)
        return rows[0] if rows else None


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


class _BoundRecords:
    """The hook as the stock column check sees it: ``get_records(sql)`` with the operator's
    ``parameters`` bound."""

    def __init__(self, hook: WarehouseSqlHook, parameters: Mapping[str, Any]) -> None:
        self._hook, self._parameters = hook, parameters

    def get_records(self, sql, parameters=None, **kwargs) -> list[tuple]:
        return self._hook.get_records(sql, {**self._parameters, **(parameters or {})})


class WarehouseColumnCheckOperator(_OnWarehouse, SQLColumnCheckOperator):
    """``SQLColumnCheckOperator`` on the warehouse (null, unique, min/max per column); the
    ``partition_clause`` may name ``:parameters`` (``parameters`` binds them)."""

    def __init__(self, *, conn_id: str = WarehouseHook.default_conn_name, retry_on_failure: bool = False,
                 parameters: Mapping[str, Any] | None = None, **kwargs) -> None:
        super().__init__(conn_id=conn_id, retry_on_failure=retry_on_failure, **kwargs)
        self.parameters = dict(parameters or {})

    def get_db_hook(self):
        return _BoundRecords(self._warehouse_sql_hook, self.parameters)

    def failed_checks(self) -> list[str]:
        return [f"{self.table}.{column} {check} = {values.get('result')!r}"
                for column, checks in self.column_mapping.items() for check, values in checks.items()
                if values.get("success") is False]


class WarehouseCheckOperator(_OnWarehouse, SQLCheckOperator):
    """``SQLCheckOperator`` on the warehouse (every value of the query's first row must be true).

    ``sql_vars`` (templated first) become variables of the SQL file's own template (counts from
    XCom); values such as the tenant uid are bound parameters (``parameters``, ``:tenant_id``).
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

    def __init__(self, *, extract_task_ids: Sequence[str], tenant: str, tenant_id: str,
                 conn_id: str = WarehouseHook.default_conn_name, retry_on_failure: bool = False, **kwargs) -> None:
        super().__init__(conn_id=conn_id, retry_on_failure=retry_on_failure, **kwargs)
        self.extract_task_ids = list(extract_task_ids)
        self.tenant = tenant
        self.tenant_id = tenant_id

    def execute(self, context) -> list[dict]:
        engine = self.get_db_hook().get_sqlalchemy_engine()
        windows = [sync.window_count(engine, self.tenant_id, STREAMS[e.stream], e.since, e.until, e.api_total)
                   for e in map(sync.Extracted.from_dict, context["ti"].xcom_pull(task_ids=self.extract_task_ids))]
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


"""The warehouse as an Airflow connection (default conn id ``securitycoach_warehouse``).

- ``sqlite``: ``host`` (or ``schema``) is the database file path.
- ``postgres``: the usual host/port/login/password, ``schema`` = database name, optional extra
  ``{"search_path": "<schema>"}`` to keep the warehouse in its own PostgreSQL schema.
With no such connection defined, the embedded default is used: SQLite at
``$SECURITYCOACH_DATA_DIR/warehouse.db`` (``data/warehouse.db`` in the checkout).
"""

from __future__ import annotations

import logging
from functools import cached_property

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy.engine import URL, Engine

from securitycoach.paths import data_dir
from securitycoach.warehouse import create_warehouse_engine

log = logging.getLogger(__name__)


class WarehouseHook(BaseHook):
    conn_name_attr = "warehouse_conn_id"
    default_conn_name = "securitycoach_warehouse"
    hook_name = "SecurityCoach warehouse"

    def __init__(self, warehouse_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id

    @cached_property
    def url_and_search_path(self) -> tuple[URL, str | None]:
        try:
            conn = self.get_connection(self.warehouse_conn_id)
        except AirflowNotFoundException:
            path = data_dir() / "warehouse.db"
            log.info("no connection %r: using the embedded SQLite warehouse %s", self.warehouse_conn_id, path)
            return URL.create("sqlite", database=str(path)), None
        if conn.conn_type == "sqlite":
            return URL.create("sqlite", database=conn.host or conn.schema), None
        if conn.conn_type in ("postgres", "postgresql"):
            url = URL.create(
                "postgresql+psycopg",
                username=conn.login,
                password=conn.password,
                host=conn.host,
                port=conn.port,
                database=conn.schema,
            )
            return url, conn.extra_dejson.get("search_path")
        raise ValueError(
            f"connection {self.warehouse_conn_id!r}: type {conn.conn_type!r} is not a supported "
            "warehouse (use sqlite or postgres)"
        )

    def get_engine(self) -> Engine:
        url, search_path = self.url_and_search_path
        return create_warehouse_engine(url, search_path=search_path)

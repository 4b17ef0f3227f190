"""The warehouse: schema (tables as SQLAlchemy Core metadata), migrations, dialect upserts."""

from securitycoach.warehouse.engine import (
    WarehouseMissing,
    create_warehouse_engine,
    describe_url,
    open_existing_warehouse,
)
from securitycoach.warehouse.migrate import SCHEMA_VERSION, migrate
from securitycoach.warehouse.schema import metadata

__all__ = ["SCHEMA_VERSION", "WarehouseMissing", "create_warehouse_engine", "describe_url", "metadata", "migrate",
           "open_existing_warehouse"]

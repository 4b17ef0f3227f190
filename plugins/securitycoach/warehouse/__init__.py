"""The warehouse: schema (tables as SQLAlchemy Core metadata), migrations, dialect upserts."""

from securitycoach.warehouse.engine import create_warehouse_engine, describe_url
from securitycoach.warehouse.migrate import SCHEMA_VERSION, migrate
from securitycoach.warehouse.schema import metadata

__all__ = ["SCHEMA_VERSION", "create_warehouse_engine", "describe_url", "metadata", "migrate"]

"""Delete integration: remove every row of one Code42 tenant from the warehouse, in one transaction.

The caller must repeat the tenant id as the confirmation; a wrong or missing one, or a tenant the
warehouse does not hold, changes nothing. An ``integration_deletion`` row records who deleted the
tenant, when, and how many rows each table lost; it is the only row about the tenant kept.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.warehouse import schema as t

log = logging.getLogger(__name__)


class DeletionRefused(ValueError):
    pass


def tenant_tables() -> list[sa.Table]:
    """Every table holding tenant rows, children before parents (the audit table excluded)."""
    return [table for table in reversed(t.metadata.sorted_tables)
            if "tenant_id" in table.c and table is not t.integration_deletion]


def known_tenants(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found: set[str] = set()
        for table in tenant_tables():
            found.update(conn.execute(sa.select(table.c.tenant_id).distinct()).scalars())
    return sorted(found)


def delete_tenant(engine: Engine, tenant_id: str, *, confirm: str | None, deleted_by: str) -> dict[str, int]:
    """Delete all of ``tenant_id``'s rows; returns rows deleted per table (tables with none left out)."""
    if not tenant_id or confirm != tenant_id:
        raise DeletionRefused(f"confirmation {confirm!r} does not repeat the tenant id {tenant_id!r} exactly; "
                              "nothing was deleted")
    if not deleted_by:
        raise DeletionRefused("say who deletes the integration (deleted_by); nothing was deleted")
    with engine.begin() as conn:
        counts = {}
        for table in tenant_tables():
            deleted = conn.execute(table.delete().where(table.c.tenant_id == tenant_id)).rowcount
            if deleted:
                counts[table.name] = deleted
        if not counts:
            raise DeletionRefused(f"the warehouse holds no rows of tenant {tenant_id!r} (tenants: "
                                  f"{known_tenants(engine) or 'none'}); nothing was deleted")
        conn.execute(t.integration_deletion.insert().values(
            tenant_id=tenant_id, deleted_by=deleted_by, deleted_at=datetime.now(UTC), row_counts=counts))
    log.warning("deleted tenant %s from the warehouse for %s: %s", tenant_id, deleted_by, counts)
    return counts

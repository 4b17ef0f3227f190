"""Delete integration: remove every row of one Code42 tenant from the warehouse, in one transaction,
then disable the tenant.

The caller must repeat the tenant id as the confirmation; a wrong or missing one, or a tenant the
warehouse does not hold, changes nothing. An ``integration_deletion`` row records who deleted the
tenant, when, and how many rows each table lost; it is the only row about the tenant kept.

Disabling (``delete_integration``) happens after the rows are committed: the DAGs that synced the
tenant (from ``sync_audit``, read before the delete) and the tenants-file entry they belong to say
which DAGs to pause and which connections to remove; an ``AirflowControl`` does it, and every step
and its outcome goes into ``integration_deletion_action``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.tenants import TenantsFile
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


class UnknownTenant(LookupError):
    """The warehouse holds no row of the tenant asked for; the message lists the ones it holds."""


def require_tenant(engine: Engine, tenant_id: str) -> None:
    """Raise ``UnknownTenant`` unless some table holds a row of ``tenant_id`` (one key look-up per
    table until found; the full list of tenants is read only for the message)."""
    with engine.connect() as conn:
        for table in tenant_tables():
            if conn.execute(sa.select(1).where(table.c.tenant_id == tenant_id).limit(1)).first():
                return
    held = known_tenants(engine)
    raise UnknownTenant(f"the warehouse holds no rows of tenant {tenant_id!r}; its tenants: "
                        f"{', '.join(held) if held else 'none (no sync has loaded it yet)'}")


@dataclass(frozen=True)
class Action:
    """One step of disabling a tenant: ``pause_dag``, ``delete_connection`` or ``manual``."""

    action: str
    target: str
    outcome: str  # done | not_found | failed | to_do
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.target}: {self.outcome} ({self.detail})"


class AirflowControl(Protocol):
    def pause_dag(self, dag_id: str) -> Action: ...

    def delete_connection(self, conn_id: str) -> Action: ...


@dataclass
class DeletionReport:
    deletion_id: int
    counts: dict[str, int]
    actions: list[Action] = field(default_factory=list)

    def lines(self) -> list[str]:
        rows = sum(self.counts.values())
        out = [f"deleted {rows} rows: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        out += [str(a) for a in self.actions]
        return out


def tenant_dag_ids(engine: Engine, tenant_id: str) -> list[str]:
    """The DAGs that synced ``tenant_id`` (its ``sync_audit`` rows)."""
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(t.sync_audit.c.dag_id).distinct()
                                   .where(t.sync_audit.c.tenant_id == tenant_id)).scalars())


def synced_tenants(engine: Engine, dag_ids: list[str] | tuple[str, ...]) -> list[str]:
    """The tenant uids the DAGs ``dag_ids`` synced (their ``sync_audit`` rows)."""
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(t.sync_audit.c.tenant_id).distinct()
                                   .where(t.sync_audit.c.dag_id.in_(list(dag_ids)))).scalars())


def plan_disable(dag_ids: list[str], tenants: TenantsFile | None) -> tuple[list[str], list[str], list[str]]:
    """(DAGs to pause, connections to remove, manual steps) for a tenant synced by ``dag_ids``.

    The tenants-file entry of those DAGs adds its other DAGs (reference, report) and its connections; a KnowBe4
    connection another entry also uses is kept.
    """
    dags, conns, manual = list(dag_ids), [], []
    entries = [e for e in {tenants.by_dag_id(d) for d in dag_ids} if e] if tenants else []
    for entry in sorted(entries, key=lambda e: e.name):
        dags += [d for d in entry.dag_ids if d not in dags]
        conns.append(entry.code42_conn_id)
        shared = [o.name for o in tenants.tenants if o.name != entry.name and o.knowbe4_conn_id == entry.knowbe4_conn_id]
        if shared:
            manual.append(f"KnowBe4 connection {entry.knowbe4_conn_id} kept: tenants {shared} use it too")
        else:
            conns.append(entry.knowbe4_conn_id)
        manual.append(f"remove tenant {entry.name!r} from the tenants file (or set enabled: false), "
                      "or the next deployment re-creates its DAGs and pool")
    if not dag_ids:
        manual.append("no DAG synced this tenant (sync_audit): pause its DAGs and remove its connections by hand")
    return dags, conns, manual


def delete_integration(engine: Engine, tenant_id: str, *, confirm: str | None, deleted_by: str,
                       control: AirflowControl | None, tenants: TenantsFile | None) -> DeletionReport:
    """``delete_tenant``, then disable it with ``control`` (None: only record what is left to do)."""
    dag_ids = tenant_dag_ids(engine, tenant_id) if confirm == tenant_id else []
    deletion_id, counts = _delete(engine, tenant_id, confirm=confirm, deleted_by=deleted_by)
    dags, conns, manual = plan_disable(dag_ids, tenants)
    actions: list[Action] = []
    for kind, targets, call in (("pause_dag", dags, control and control.pause_dag),
                                ("delete_connection", conns, control and control.delete_connection)):
        for target in targets:
            actions.append(_attempt(kind, target, call))
    actions += [Action("manual", "-", "to_do", step) for step in manual]
    with engine.begin() as conn:
        if actions:
            conn.execute(t.integration_deletion_action.insert(), [
                {"deletion_id": deletion_id, "position": i, "action": a.action, "target": a.target,
                 "outcome": a.outcome, "detail": a.detail} for i, a in enumerate(actions, start=1)])
    for action in actions:
        log.warning("disable tenant %s: %s", tenant_id, action)
    return DeletionReport(deletion_id, counts, actions)


def _attempt(kind: str, target: str, call: Callable[[str], Action] | None) -> Action:
    if call is None:
        return Action(kind, target, "to_do", "no Airflow access from here: do it by hand")
    try:
        return call(target)
    except Exception as exc:  # noqa: BLE001 - recorded in the audit; the rows are already gone
        line = (str(exc).strip().splitlines() or [""])[0][:300]
        return Action(kind, target, "failed", f"{type(exc).__name__}: {line}")


def delete_tenant(engine: Engine, tenant_id: str, *, confirm: str | None, deleted_by: str) -> dict[str, int]:
    """Delete all of ``tenant_id``'s rows; returns rows deleted per table (tables with none left out)."""
    return _delete(engine, tenant_id, confirm=confirm, deleted_by=deleted_by)[1]


def _delete(engine: Engine, tenant_id: str, *, confirm: str | None, deleted_by: str) -> tuple[int, dict[str, int]]:
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
        deletion_id = conn.execute(t.integration_deletion.insert().values(
            tenant_id=tenant_id, deleted_by=deleted_by, deleted_at=datetime.now(UTC), row_counts=counts)
        ).inserted_primary_key[0]
    log.warning("deleted tenant %s from the warehouse for %s: %s", tenant_id, deleted_by, counts)
    return deletion_id, counts

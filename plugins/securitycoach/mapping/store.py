"""Mapping against the warehouse: KSAT directory refresh, (re)mapping, CSV uploads."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.mapping.csv_upload import parse_upload
from securitycoach.mapping.engine import ActorIdentity, KsatIdentity, map_actors
from securitycoach.mapping.rules import KSAT_FIELDS, RuleSet
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert


def refresh_ksat_directory(engine: Engine, client, *, tenant_id: str) -> dict[str, int]:
    """Mirror the KSAT users (active and archived) and groups, in one transaction."""
    users = [_user_row(tenant_id, u) for u in client.iter_users()]
    groups = [{"tenant_id": tenant_id, "group_id": g.id, "name": g.name, "group_type": g.group_type,
               "member_count": g.member_count, "status": g.status} for g in client.iter_groups()]
    with engine.begin() as conn:
        for table, key, rows in ((t.ksat_user, "ksat_user_id", users), (t.ksat_group, "group_id", groups)):
            upsert(conn, table, rows)
            conn.execute(table.delete().where(table.c.tenant_id == tenant_id,
                                              table.c[key].not_in([r[key] for r in rows])))
        # membership as rows for the reports (rpt_top_groups): rewritten whole, like the directory
        memberships = [{"tenant_id": tenant_id, "ksat_user_id": u["ksat_user_id"], "group_id": g}
                       for u in users for g in dict.fromkeys(u["groups"] or ())]
        conn.execute(t.ksat_user_group.delete().where(t.ksat_user_group.c.tenant_id == tenant_id))
        upsert(conn, t.ksat_user_group, memberships, do_nothing=True)
    return {"users": len(users), "groups": len(groups)}


def _user_row(tenant_id: str, user) -> dict:
    return {
        "tenant_id": tenant_id, "ksat_user_id": user.id, "email": user.email, "status": user.status,
        "employee_number": user.employee_number, "first_name": user.first_name, "last_name": user.last_name,
        "department": user.department, "aliases": list(user.aliases), "groups": list(user.groups),
        "custom_field_1": user.custom_field_1, "custom_field_2": user.custom_field_2,
        "custom_field_3": user.custom_field_3, "custom_field_4": user.custom_field_4,
        "archived_at": user.archived_at, "raw": user.raw,
    }


def _identities(conn, tenant_id: str) -> tuple[list[ActorIdentity], list[KsatIdentity], dict[str, str]]:
    a, u, o = t.code42_actor.c, t.ksat_user.c, t.mapping_override.c
    actors = [
        ActorIdentity(r.actor_id, r.name, tuple(r.alternate_names or ()), r.parent_actor_id,
                      {"name": r.name, "first_name": r.first_name, "last_name": r.last_name,
                       "department": r.department, "title": r.title})
        for r in conn.execute(sa.select(t.code42_actor).where(a.tenant_id == tenant_id).order_by(a.actor_id))
    ]
    users = [
        KsatIdentity(r.ksat_user_id, r.email, tuple(r.aliases or ()), {f: getattr(r, f) for f in KSAT_FIELDS})
        for r in conn.execute(sa.select(t.ksat_user).where(u.tenant_id == tenant_id))
    ]
    overrides = dict(conn.execute(sa.select(o.code42_identifier, o.ksat_email).where(o.tenant_id == tenant_id)).all())
    return actors, users, overrides


def remap(engine: Engine, tenant_id: str, ruleset: RuleSet) -> dict[str, int]:
    """Map every actor of the tenant again; write only what changed (``mapped_at`` is kept for a
    mapping that stays the same). Returns counts: mapped, ambiguous, no_match, changed."""
    with engine.begin() as conn:
        actors, users, overrides = _identities(conn, tenant_id)
        decisions = map_actors(actors, users, ruleset, overrides)
        m, un = t.user_mapping.c, t.unmapped_actor.c
        stored = {r.actor_id: (r.ksat_user_id, r.rule, r.evidence)
                  for r in conn.execute(sa.select(t.user_mapping).where(m.tenant_id == tenant_id))}
        stored_un = {r.actor_id: (r.reason, r.evidence)
                     for r in conn.execute(sa.select(t.unmapped_actor).where(un.tenant_id == tenant_id))}
        now = datetime.now(UTC)
        mapped = {d.actor_id: d for d in decisions if d.ksat_user_id is not None}
        unmapped = {d.actor_id: d for d in decisions if d.ksat_user_id is None}
        new_rows = [
            {"tenant_id": tenant_id, "actor_id": d.actor_id, "ksat_user_id": d.ksat_user_id, "rule": d.rule,
             "evidence": d.evidence, "mapped_at": now}
            for d in mapped.values() if stored.get(d.actor_id) != (d.ksat_user_id, d.rule, d.evidence)
        ]
        new_un = [
            {"tenant_id": tenant_id, "actor_id": d.actor_id, "reason": d.reason, "evidence": d.evidence}
            for d in unmapped.values() if stored_un.get(d.actor_id) != (d.reason, d.evidence)
        ]
        gone = [aid for aid in stored if aid not in mapped]
        gone_un = [aid for aid in stored_un if aid not in unmapped]
        for table, ids in ((t.user_mapping, gone), (t.unmapped_actor, gone_un)):
            for chunk in range(0, len(ids), 1000):
                conn.execute(table.delete().where(table.c.tenant_id == tenant_id,
                                                  table.c.actor_id.in_(ids[chunk:chunk + 1000])))
        upsert(conn, t.user_mapping, new_rows)
        upsert(conn, t.unmapped_actor, new_un)
    reasons = Counter(d.reason for d in unmapped.values())
    return {"mapped": len(mapped), "ambiguous": reasons["ambiguous"], "no_match": reasons["no_match"],
            "changed": len(new_rows) + len(new_un) + len(gone) + len(gone_un)}


@dataclass
class UploadResult:
    upload_id: str
    status: str  # "applied" or "rejected"
    rows: int
    errors: list[str]


def apply_upload(engine: Engine, tenant_id: str, data: bytes, *, file_name: str,
                 uploaded_by: str | None = None) -> UploadResult:
    """Validate the CSV against the KSAT directory; if it is clean, make it the upload in force
    (replacing the previous one) in one transaction. Every upload is audited, applied or not."""
    upload_id = uuid.uuid4().hex
    with engine.begin() as conn:
        counts = Counter(e.lower() for e in conn.execute(
            sa.select(t.ksat_user.c.email).where(t.ksat_user.c.tenant_id == tenant_id)).scalars())
        parsed = parse_upload(data, counts)
        status = "rejected" if parsed.errors else "applied"
        if status == "applied":
            conn.execute(t.mapping_override.delete().where(t.mapping_override.c.tenant_id == tenant_id))
            upsert(conn, t.mapping_override, [
                {"tenant_id": tenant_id, "code42_identifier": ident, "ksat_email": email, "upload_id": upload_id}
                for ident, email in parsed.rows.items()
            ])
        conn.execute(t.mapping_upload.insert().values(
            tenant_id=tenant_id, upload_id=upload_id, file_name=file_name, sha256=hashlib.sha256(data).hexdigest(),
            rows=len(parsed.rows), status=status, errors=parsed.errors[:1000], uploaded_by=uploaded_by,
            uploaded_at=datetime.now(UTC),
        ))
    return UploadResult(upload_id, status, len(parsed.rows), parsed.errors)

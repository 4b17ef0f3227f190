"""The PostgreSQL COPY path of ``upsert`` stores exactly what the row-by-row path stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse import upsert as upsert_module
from securitycoach.warehouse.digest import table_digests
from securitycoach.warehouse.upsert import upsert

HOSTILE = ["tab\there", "new\nline", "cr\rlf", "back\\slash", "\\N", "", "quote ' \" ;", "ünïcødé ✓", "=1+1",
           "<script>x</script>"]


def _rows(n: int, updated: datetime) -> list[dict]:
    return [
        {"tenant_id": "t1", "alert_id": f"a{i:04d}", "type": HOSTILE[i % len(HOSTILE)],
         "created_at": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i), "state": "OPEN",
         "state_last_modified_by": None, "state_last_modified_at": updated, "name": HOSTILE[(i + 3) % len(HOSTILE)],
         "description": None if i % 2 else HOSTILE[i % len(HOSTILE)], "actor": "a@example.com", "actor_id": "x",
         "target": None, "severity": "HIGH", "risk_severity": None, "rule_id": "r",
         "watchlists": None if i % 3 else [{"id": HOSTILE[i % len(HOSTILE)], "n": i}],
         "raw": {"id": f"a{i:04d}", "text": HOSTILE[i % len(HOSTILE)], "nested": {"k": [1, None, True]}}}
        for i in range(n)
    ]


def test_copy_path_equals_executemany_path(pg_warehouse, pg_admin_engine, pg_schema, monkeypatch):
    from conftest import PG_ADMIN_URL
    from securitycoach.warehouse import create_warehouse_engine

    first, later = datetime(2026, 11, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC)
    rows = _rows(300, first)
    with pg_warehouse.begin() as conn:  # COPY: 300 rows >= COPY_MIN_ROWS
        upsert(conn, t.code42_alert, rows)
        upsert(conn, t.code42_alert, [{**r, "state": "RESOLVED", "state_last_modified_at": later}
                                      for r in rows[:100]], only_if_newer="state_last_modified_at")
        upsert(conn, t.code42_alert, [{**r, "state": "STALE"} for r in rows[:100]],  # older: ignored
               only_if_newer="state_last_modified_at")
    copied = table_digests(pg_warehouse, tables=[t.code42_alert])

    with pg_admin_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{pg_schema}_b"'))
    other = create_warehouse_engine(PG_ADMIN_URL, search_path=f"{pg_schema}_b")
    try:
        from securitycoach.warehouse import migrate

        migrate(other)
        monkeypatch.setattr(upsert_module, "COPY_MIN_ROWS", 10**9)  # row-by-row executemany
        with other.begin() as conn:
            upsert(conn, t.code42_alert, rows)
            upsert(conn, t.code42_alert, [{**r, "state": "RESOLVED", "state_last_modified_at": later}
                                          for r in rows[:100]], only_if_newer="state_last_modified_at")
            upsert(conn, t.code42_alert, [{**r, "state": "STALE"} for r in rows[:100]],
                   only_if_newer="state_last_modified_at")
        assert table_digests(other, tables=[t.code42_alert]) == copied
        with other.connect() as a, pg_warehouse.connect() as b:
            query = sa.select(t.code42_alert.c.alert_id, t.code42_alert.c.type, t.code42_alert.c.description,
                              t.code42_alert.c.watchlists, t.code42_alert.c.state,
                              sa.cast(t.code42_alert.c.watchlists, sa.Text).label("watchlists_text")
                              ).order_by(t.code42_alert.c.alert_id)
            assert a.execute(query).all() == b.execute(query).all()
            states = dict(b.execute(sa.select(t.code42_alert.c.state, sa.func.count())
                                    .group_by(t.code42_alert.c.state)).all())
        assert states == {"RESOLVED": 100, "OPEN": 200}
    finally:
        other.dispose()
        with pg_admin_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{pg_schema}_b" CASCADE'))


VERSION = datetime(2026, 10, 31, tzinfo=UTC)


def _detections(n: int, severity: int, seen: datetime, summary: str = "s") -> list[dict]:
    return [{"tenant_id": "t1", "rule_key": "r", "subject_type": "session", "subject_id": f"s{i:04d}",
             "actor_id": "x", "severity": severity, "occurred_at": seen, "first_seen_at": seen,
             "last_changed_at": seen, "subject_version": VERSION, "summary": summary, "evidence": {"i": i}}
            for i in range(n)]


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "executemany"])
def test_only_if_changed_keep_and_returning(warehouse, copy, monkeypatch):
    """Reruns write nothing; a changed compared column updates the row but not the kept column; the
    rows written (and only those) come back, on both backends and both write paths."""
    if not copy:
        monkeypatch.setattr(upsert_module, "COPY_MIN_ROWS", 10**9)
    first, later = datetime(2026, 11, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC)
    options = {"only_if_changed": ("severity", "subject_version", "summary"), "keep": ("first_seen_at",),
               "returning": ("subject_id", "first_seen_at")}
    with warehouse.begin() as conn:
        written = upsert(conn, t.detection, _detections(120, 2, first), **options)
        assert sorted(r.subject_id for r in written) == [f"s{i:04d}" for i in range(120)]
        assert upsert(conn, t.detection, _detections(120, 2, later), **options) == []  # only wall-clock moved
        changed = _detections(120, 2, later)
        for row in changed[:7]:
            row["severity"] = 4
        changed[7]["summary"] = None
        changed[8]["evidence"] = {"other": True}  # not compared: left alone
        written = upsert(conn, t.detection, changed, **options)
        assert sorted(r.subject_id for r in written) == [f"s{i:04d}" for i in range(8)]
        assert {as_utc(r.first_seen_at) for r in written} == {first}
        stored = {r.subject_id: r for r in conn.execute(sa.select(t.detection))}
    assert [stored[f"s{i:04d}"].severity for i in range(9)] == [4] * 7 + [2, 2]
    assert stored["s0007"].summary is None and as_utc(stored["s0007"].last_changed_at) == later
    assert stored["s0008"].evidence == {"i": 8} and as_utc(stored["s0008"].last_changed_at) == first
    assert {as_utc(r.first_seen_at) for r in stored.values()} == {first}

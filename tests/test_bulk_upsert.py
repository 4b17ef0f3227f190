"""The PostgreSQL COPY path of ``upsert`` stores exactly what the row-by-row path stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse import upsert as upsert_module
from securitycoach.warehouse.digest import table_digests
from securitycoach.warehouse.upsert import upsert, upsert_changed

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


# --- the comparisons that decide what a load keeps, on a table of the test's own ---------------------
_ITEMS = sa.MetaData()
ITEM = sa.Table("test_item", _ITEMS,
                sa.Column("tenant_id", sa.String(8), primary_key=True), sa.Column("id", sa.String(8), primary_key=True),
                sa.Column("last_updated", sa.Integer, nullable=False), sa.Column("value", sa.Text),
                sa.Column("updated_at", sa.Integer, info={"wall_clock": True}))


@pytest.fixture
def items(warehouse):
    _ITEMS.create_all(warehouse)
    yield warehouse
    _ITEMS.drop_all(warehouse)


def item(key, last_updated, value, updated_at=0, tenant="t1"):
    return {"tenant_id": tenant, "id": key, "last_updated": last_updated, "value": value, "updated_at": updated_at}


def stored_items(engine):
    with engine.connect() as conn:
        return {(r.tenant_id, r.id): (r.last_updated, r.value, r.updated_at) for r in conn.execute(sa.select(ITEM))}


def test_a_key_repeated_in_one_batch_keeps_its_newest_row(items):
    """A page shift can serve an item twice in one batch: the newest by ``only_if_newer`` stays (of
    equals, the later); without ``only_if_newer``, the later row."""
    batch = [item("a", 5, "a newest"), item("a", 3, "a older, later in the batch"),
             item("b", 4, "b first"), item("b", 4, "b same age, later"),
             item("c", 1, "c"), item("a", 2, "a oldest")]
    with items.begin() as conn:
        upsert(conn, ITEM, batch, only_if_newer="last_updated")
        upsert(conn, ITEM, [item("d", 9, "d first"), item("d", 1, "d last")])
    assert stored_items(items) == {("t1", "a"): (5, "a newest", 0), ("t1", "b"): (4, "b same age, later", 0),
                                   ("t1", "c"): (1, "c", 0), ("t1", "d"): (1, "d last", 0)}


def test_only_if_newer_and_only_if_changed_must_both_hold_for_an_update(items):
    options = {"only_if_newer": "last_updated", "only_if_changed": ("value",), "returning": ("id",)}
    with items.begin() as conn:
        upsert(conn, ITEM, [item(k, 5, "v") for k in "abcd"], **options)
        written = upsert(conn, ITEM, [item("a", 6, "changed"),       # newer and changed: updated
                                      item("b", 6, "v", 1),          # newer, same value: left alone
                                      item("c", 5, "changed"),       # as old: left alone
                                      item("d", 4, "changed")],      # older: left alone
                         **options)
    assert [r.id for r in written] == ["a"]
    assert stored_items(items) == {("t1", "a"): (6, "changed", 0), ("t1", "b"): (5, "v", 0),
                                   ("t1", "c"): (5, "v", 0), ("t1", "d"): (5, "v", 0)}


def test_a_nul_in_a_value_is_stored_as_the_replacement_character(items):
    with items.begin() as conn:
        upsert(conn, ITEM, [item("a\x00", 1, "x\x00y")])
    assert stored_items(items) == {("t1", "a\ufffd"): (1, "x\ufffdy", 0)}


def test_upsert_changed_writes_the_rows_that_differ_outside_wall_clock_columns(items):
    with items.begin() as conn:
        upsert(conn, ITEM, [item(k, 1, "v", 100) for k in "abc"])
        stored = {(r.tenant_id, r.id): r for r in conn.execute(sa.select(ITEM))}
        written = upsert_changed(conn, ITEM, [
            item("a", 1, "v", 200),              # only the wall clock moved: not written
            item("b", 1, "new", 200),            # a compared column changed: written
            {"tenant_id": "t1", "id": "c", "updated_at": 200},  # nothing compared given: not written
            item("n", 1, "v", 200),              # not stored yet: written
            item("a", 1, "v", 200, tenant="t2"),  # same id, other tenant: a new row
        ], stored)
    assert written == 3
    assert stored_items(items) == {("t1", "a"): (1, "v", 100), ("t1", "b"): (1, "new", 200),
                                   ("t1", "c"): (1, "v", 100), ("t1", "n"): (1, "v", 200),
                                   ("t2", "a"): (1, "v", 200)}

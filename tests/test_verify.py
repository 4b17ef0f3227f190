"""``securitycoach verify``: past windows recounted against the real sandbox's totalCount and a real
PostgreSQL warehouse; rows deleted from the warehouse are listed window by window (exit 1), and
``--repair`` loads them back, each exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from pipeline import hourly_ends, sync_interval, use_sandbox

from conftest import PG_ADMIN_URL
from securitycoach import cli
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

FACTS = [t.code42_session, t.code42_session_alert, t.code42_session_risk_indicator, t.code42_alert]


def _utc(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%MZ")


@pytest.fixture
def synced(clean_sandbox, monkeypatch, pg_warehouse, pg_schema):
    """Four hourly runs (24 h look-back) of the default tenant into a PostgreSQL warehouse."""
    code42, _ = use_sandbox(monkeypatch, clean_sandbox)
    ends = hourly_ends(clean_sandbox.anchor, 4)
    for end in ends:
        sync_interval(pg_warehouse, code42, end)
    args = ["--warehouse", PG_ADMIN_URL, "--search-path", pg_schema, "verify", "--tenant", "default",
            "--since", (ends[0] - timedelta(hours=1)).isoformat(), "--until", ends[-1].isoformat()]
    return pg_warehouse, code42.tenant_id, ends, args


def _delete(engine, tenant, table, column, start, end, n) -> list[str]:
    """Delete ``n`` rows of ``table`` in [start, end) (sessions with their child rows)."""
    key = table.primary_key.columns.values()[-1]
    with engine.begin() as conn:
        ids = conn.execute(sa.select(key).where(table.c.tenant_id == tenant, column >= start, column < end)
                           .order_by(key).limit(n)).scalars().all()
        children = (t.code42_session_alert, t.code42_session_risk_indicator) if table is t.code42_session else ()
        for child in (*children, table):
            conn.execute(child.delete().where(child.c.tenant_id == tenant, child.c[key.name].in_(ids)))
    assert len(ids) == n
    return ids


def test_verify_lists_exactly_the_windows_with_deleted_rows_and_repair_loads_them_back_once(synced, capsys):
    engine, tenant, ends, args = synced
    assert cli.main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [(f"verify default (tenant {tenant}) {_utc(ends[0] - timedelta(hours=1))} .. {_utc(ends[-1])}: "
                   "4 windows of '0 * * * *', sessions and alerts: no gaps (3 Code42 requests)")]
    before = table_digests(engine, tables=FACTS)

    hours = [(end - timedelta(hours=1), end) for end in ends]
    s, a = t.code42_session.c, t.code42_alert.c
    with engine.connect() as conn:
        def count(column, window):
            return conn.execute(sa.select(sa.func.count()).where(
                column.table.c.tenant_id == tenant, column >= window[0], column < window[1])).scalar()
        sessions_in = [count(s.begin_time, h) for h in hours]
        alerts_in = [count(a.created_at, h) for h in hours]
    busy = max(range(4), key=lambda i: sessions_in[i])  # the hour with the most sessions loses two
    alerted = [i for i in range(4) if alerts_in[i]][:2]  # two hours with alerts lose one each
    assert sessions_in[busy] >= 2 and len(alerted) == 2
    _delete(engine, tenant, t.code42_session, s.begin_time, *hours[busy], 2)
    for i in alerted:
        _delete(engine, tenant, t.code42_alert, a.created_at, *hours[i], 1)

    assert cli.main(args) == 1
    out = capsys.readouterr().out.strip().splitlines()
    gaps = [line.split() for line in out[1:-1]]
    assert out[0].split() == ["stream", "window", "API", "total", "warehouse"]
    assert gaps == [
        ["sessions", _utc(hours[busy][0]), "..", _utc(hours[busy][1]), str(sessions_in[busy]),
         str(sessions_in[busy] - 2)],
        *(["alerts", _utc(hours[i][0]), "..", _utc(hours[i][1]), str(alerts_in[i]), str(alerts_in[i] - 1)]
          for i in alerted),
    ]
    # by day first (2 + 1 requests), then the day's 4 hours of each stream with a gap (8 + 4)
    assert out[-1].endswith("sessions and alerts: 3 windows with gaps, 4 rows missing (15 Code42 requests)")

    assert cli.main([*args, "--repair"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "repaired 3 windows: 4 rows new or changed; recounted:" in out
    assert out[-1].endswith("no gaps (3 Code42 requests)")
    assert table_digests(engine, tables=FACTS) == before  # the rows are back, each exactly once
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.staging_record)).scalar() == 0
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip().endswith("no gaps (3 Code42 requests)")


@pytest.mark.parametrize(("change", "message"), [
    ({"--tenant": "nosuch"}, "securitycoach verify: no entry 'nosuch' in the tenants file (entries: default)"),
    ({"--since": "2026-13-01"}, "securitycoach verify: --since '2026-13-01' is not a day (YYYY-MM-DD) or an ISO 8601 time"),
    ({"--since": "2026-11-02", "--until": "2026-11-01"},
     "securitycoach verify: since 2026-11-02T00:00Z is not before until 2026-11-01T00:00Z"),
])
def test_bad_input_is_one_line_naming_it(change, message, tmp_path, capsys):
    given = {"--tenant": "default", "--since": "2026-10-31", "--until": "2026-11-01", **change}
    args = ["--warehouse", f"sqlite:///{tmp_path / 'w.db'}", "verify", *[x for kv in given.items() for x in kv]]
    assert cli.main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_a_connection_that_is_not_defined_is_named(tmp_path, capsys, monkeypatch):
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("version: 1\ntenants:\n  - name: acme\n    code42_conn_id: code42_acme_missing\n"
                       "    code42_tenant_uid: 41a617d1-b5bb-4fb2-a12e-1c7d362780bc\n"
                       "    knowbe4_conn_id: knowbe4_acme\n", encoding="utf-8")
    monkeypatch.delenv("AIRFLOW_CONN_CODE42_ACME_MISSING", raising=False)
    args = ["--warehouse", f"sqlite:///{tmp_path / 'w.db'}", "verify", "--tenant", "acme", "--since", "2026-10-31",
            "--until", "2026-11-01", "--tenants", str(tenants)]
    assert cli.main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        ("securitycoach verify: connection 'code42_acme_missing' is not defined (an Airflow connection, "
        "AIRFLOW_CONN_CODE42_ACME_MISSING or a secrets backend)")]


def test_windows_follow_the_tenants_schedule_and_the_last_whole_interval():
    from datetime import UTC, datetime

    from securitycoach.verify import last_tick, schedule_windows

    day = datetime(2026, 11, 1, tzinfo=UTC)
    quarter = schedule_windows("15 * * * *", day, day.replace(hour=3))  # clipped to since / until
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in quarter] == [
        ("00:00", "00:15"), ("00:15", "01:15"), ("01:15", "02:15"), ("02:15", "03:00")]
    assert len(schedule_windows("0 0 * * *", day.replace(month=10), day)) == 31
    assert last_tick("0 * * * *", day.replace(hour=10)) == day.replace(hour=10)  # a tick ends its interval
    assert last_tick("0 * * * *", day.replace(hour=10, minute=5, second=3)) == day.replace(hour=10)
    assert last_tick("15 * * * *", day.replace(hour=10, minute=5)) == day.replace(hour=9, minute=15)

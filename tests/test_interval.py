"""The core's interval runner (``securitycoach.sync.Interval``) against the real sandbox: where each
stream is read from, what the audit row adds up, the tenant check and the pages-in-flight cap."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from fault_helpers import make_hook

from securitycoach import sync
from securitycoach.warehouse import schema as t


def test_the_look_back_is_whole_hours_within_ninety_days():
    end = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    interval = sync.Interval(tenant_id="t", run_key="r", start=end - timedelta(hours=1), end=end, lookback_hours="24")
    assert interval.lookback_hours == 24
    assert interval.since("sessions") == end - timedelta(hours=25)
    assert interval.since("alerts") == end - timedelta(hours=1)
    for bad, message in (("a day", "whole number of hours, got 'a day'"), (-1, "between 0 and 2160 hours, got -1"),
                         (24 * 90 + 1, "between 0 and 2160 hours, got 2161")):
        with pytest.raises(ValueError, match=message):
            sync.Interval(tenant_id="t", run_key="r", start=end - timedelta(hours=1), end=end, lookback_hours=bad)
    with pytest.raises(ValueError, match=r"start .* has no timezone"):
        sync.Interval(tenant_id="t", run_key="r", start=datetime(2026, 10, 31), end=end)


def test_a_run_stages_loads_and_audits_what_the_api_was_asked(warehouse, clean_sandbox, monkeypatch):
    sb = clean_sandbox
    hook = make_hook(monkeypatch, sb)
    end = sb.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    interval = sync.Interval(tenant_id=sb.tenant_id, run_key="run-1", start=end - timedelta(hours=1), end=end,
                             lookback_hours=24)
    before = sb.stats()["data_requests"]
    result = interval.run(warehouse, hook, dag_id="code42_sync")
    requests = sb.stats()["data_requests"] - before
    truth = {s.session_id for s in make_hook(monkeypatch, sb, "code42_truth").iter_sessions(end - timedelta(hours=25),
                                                                                             end)}
    row = result.audit
    assert [(e.stream, e.since) for e in result.extracted] == [
        ("sessions", end - timedelta(hours=25)), ("alerts", end - timedelta(hours=1))]
    assert result.extracted[0].items >= len(truth) > 0  # a session may be read from both listings
    # the audit row: the extractions' requests (not the new-actor look-ups after them), all of them
    assert row.requests == sum(e.requests for e in result.extracted) == requests - result.new_actors
    assert (row.sessions_from, row.interval_start, row.interval_end) == (
        end - timedelta(hours=25), end - timedelta(hours=1), end)
    assert row.rows_changed == sum(result.changed.values()) > 0
    with warehouse.connect() as conn:
        stored = conn.execute(sa.select(t.sync_audit.c.run_id, t.sync_audit.c.requests, t.sync_audit.c.tenant_id)).all()
        sessions = set(conn.execute(sa.select(t.code42_session.c.session_id)).scalars())
        staged = conn.execute(sa.select(sa.func.count()).select_from(t.staging_record)).scalar_one()
    assert stored == [("run-1", row.requests, sb.tenant_id)]
    assert sessions == truth and staged == 0


def test_the_tenant_check_and_the_pages_cap(clean_sandbox, monkeypatch):
    sb = clean_sandbox
    hook = make_hook(monkeypatch, sb, pages_in_flight=6)
    assert sync.verify_tenant(hook, sb.tenant_id, entry="default", conn_id="code42_faults") == sb.tenant_id
    other = "0b6f3c2e-9d1a-4e57-8a2b-5c7d9e1f3a4b"
    with pytest.raises(sync.TenantMismatch) as err:
        sync.verify_tenant(hook, other, entry="acme", conn_id="code42_faults")
    assert str(err.value) == (f"tenants.yaml entry 'acme': code42_tenant_uid is {other} but the token of connection "
                              f"'code42_faults' is for tenant {sb.tenant_id}; fix the entry or the connection")
    assert sb.stats()["data_requests"] == 0
    assert sync.limit_pages_in_flight(hook, 4).settings.pages_in_flight == 4  # the task's pool slots
    assert sync.limit_pages_in_flight(hook, 8).settings.pages_in_flight == 4  # never more than the connection
    assert sync.limit_pages_in_flight(hook, None).settings.pages_in_flight == 4

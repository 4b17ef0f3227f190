"""Page shift: sessions and alerts appear (and change) while the pipeline pages through a listing.

The sandbox knob ``advance_per_page_min`` moves the sandbox clock on by M minutes with every page
it serves. The intervals here reach past the sandbox clock, so sessions begun in them become
visible *during* the listing, and sessions read earlier change (scores, alerts, triage) before the
listing ends. Offset paging (``page_number`` x ``page_size``) skips an item when an item before
the offset disappears or moves behind it, and doubles one when an item is inserted before it.

The right comparison. A clean run of the same intervals cannot be the reference: the data
legitimately depends on the clock at which each page was served (a session read at 10:00 and one
read at 13:00 are different versions). What must hold, and is checked here exactly:

1. *No item doubled*: every listing yields each id once (counted at the hook, before the
   warehouse's primary keys could hide a double).
2. *No item skipped*: every listing yields exactly the items the sandbox lists for its window at
   the clock of its last page (``C_last``): everything present when the listing ended, including
   the sessions that arrived while it ran. The warehouse's keys are the union of those sets.
3. *Nothing torn or foreign*: each warehouse row is exactly the sandbox's rendering of that item
   at the version the row claims (the session's ``lastUpdated``, the alert's state change or
   creation time). The reference warehouse is built by loading those renderings (from the
   sandbox's own pure functions of seed, index and clock) with the same loaders, and the two are
   compared table by table with ``table_digests``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fault_helpers import fresh_warehouse, make_hook, run_sync

from code42_hook import Code42Hook
from incydr_sandbox.config import TenantConfig
from incydr_sandbox.tenant import Tenant
from incydr_sandbox.tenant import catalog as sandbox_catalog
from incydr_sandbox.tenant.sessions import MAX_ALERT_DELAY_MS, render_alert, render_session
from securitycoach import sync
from securitycoach.streams import STREAMS
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

pytestmark = pytest.mark.faults

SESSIONS = 28_800  # 40 sessions an hour: a 7-hour window is ~6 pages of 50
ADVANCE_MIN = 10  # sandbox minutes per page served
LOOKBACK = timedelta(hours=6)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class SpyHook(Code42Hook):
    """Records, per listing, the window, the ids yielded and the sandbox clock before and after."""

    def __init__(self, conn_id: str, sandbox) -> None:
        super().__init__(conn_id)
        self.sandbox = sandbox
        self.listings: list[dict] = []

    def _spy(self, stream, start, end, records):
        listing = {"stream": stream, "start": start, "end": end, "ids": [],
                   "clock_before": self.sandbox.stats()["clock_ms"]}
        for record in records:
            listing["ids"].append(record.raw["sessionId" if stream == "sessions" else "id"])
            yield record
        listing["clock_after"] = self.sandbox.stats()["clock_ms"]
        self.listings.append(listing)

    def iter_sessions(self, start, end, **filters):
        return self._spy("sessions", start, end, super().iter_sessions(start, end, **filters))

    def iter_alerts(self, start, end):
        return self._spy("alerts", start, end, super().iter_alerts(start, end))


@pytest.fixture(scope="module")
def shift_sandbox(start_sandbox):
    return start_sandbox(sessions=SESSIONS)


def _tenant(sandbox) -> Tenant:
    """The sandbox's tenant in-process: the same pure functions of (seed, index, clock) it serves from."""
    tenant = Tenant(TenantConfig(seed=sandbox.health["seed"], anchor_ms=sandbox.anchor_ms, sessions=SESSIONS))
    assert tenant.tenant_id == sandbox.tenant_id
    return tenant


def expected_ids(tenant: Tenant, listing: dict, clock: int) -> list[str]:
    """What the sandbox lists for the listing's window at ``clock`` (the pipeline's filters)."""
    lo, hi = _ms(listing["start"]), _ms(listing["end"])
    if listing["stream"] == "sessions":  # has_alerts=false: every session begun in [lo, hi)
        return [tenant.plan(i).session_id for i in tenant.index_range(lo, hi, clock)]
    ids = []  # alerts created in [lo, hi) and at or before the clock
    for i in tenant.index_range(lo - MAX_ALERT_DELAY_MS, hi, clock):
        plan = tenant.plan(i)
        ids += [tenant.alert_id(i, rule) for rule, created in zip(plan.rules, plan.alert_times(), strict=True)
                if lo <= created < hi and created <= clock]
    return ids


def sa_select(*columns):
    return sa.select(*columns).order_by(columns[0])


def reference_warehouse(engine, tenant: Tenant, hook, url: str):
    """Each row of ``engine`` rendered afresh by the sandbox at the version the row claims, loaded."""
    reference = fresh_warehouse(url)
    s, a = t.code42_session.c, t.code42_alert.c
    slot = {rule.key: k for k, rule in enumerate(sandbox_catalog.RULES)}
    with engine.connect() as conn:
        sessions = conn.execute(sa_select(s.session_id, s.last_updated)).all()
        alerts = conn.execute(sa_select(a.alert_id, a.created_at, a.state_last_modified_at)).all()
    items = []
    for session_id, last_updated in sessions:
        plan = tenant.find_session(session_id, tenant.config.anchor_ms + 10 * 86_400_000)
        assert plan is not None, f"the warehouse holds a session the sandbox never served: {session_id}"
        items.append(render_session(tenant, plan, _ms(as_utc(last_updated))))
    alert_items = []
    for alert_id, created_at, changed_at in alerts:
        found = tenant.find_alert(alert_id, tenant.config.anchor_ms + 10 * 86_400_000)
        assert found is not None, f"the warehouse holds an alert the sandbox never served: {alert_id}"
        plan, k = found
        rule = sandbox_catalog.RULES[k]
        created = dict(zip((r.key for r in plan.rules), plan.alert_times(), strict=True))[rule.key]
        assert slot[rule.key] == k
        version = _ms(as_utc(changed_at or created_at))
        alert_items.append(render_alert(tenant, plan, rule, created, version))
    with reference.begin() as conn:
        STREAMS["sessions"].load_batch(conn, tenant.tenant_id, items)
        STREAMS["alerts"].load_batch(conn, tenant.tenant_id, alert_items)
    sync.resolve_new_actors(reference, hook, tenant_id=tenant.tenant_id)
    return reference


def test_sessions_inserted_while_paging_are_neither_skipped_nor_doubled(shift_sandbox, monkeypatch, tmp_path):
    sb = shift_sandbox
    sb.reset()
    make_hook(monkeypatch, sb, "code42_shift")  # sets the connection
    hook = SpyHook("code42_shift", sb)
    tenant_id = hook.tenant_id
    sb.set_faults(advance_per_page_min=ADVANCE_MIN)
    anchor_hour = sb.anchor.replace(minute=0, second=0, microsecond=0)
    ends = [anchor_hour + timedelta(hours=h) for h in (1, 2, 3)]  # they reach past the clock: arrivals
    engine = fresh_warehouse(f"sqlite:///{tmp_path / 'shifted.db'}")
    run_sync(engine, hook, ends, lookback=LOOKBACK)
    moved = (sb.stats()["clock_ms"] - sb.anchor_ms) // 60_000
    sb.set_faults(advance_per_page_min=0)
    tenant = _tenant(sb)

    arrived = doubled = skipped = 0
    wanted: dict[str, set] = {"sessions": set(), "alerts": set()}
    for listing in hook.listings:
        c_first, c_last = listing["clock_before"], listing["clock_after"] - ADVANCE_MIN * 60_000
        got, want = listing["ids"], expected_ids(tenant, listing, c_last)
        doubled += sum(n - 1 for n in Counter(got).values())
        skipped += len(set(want) - set(got))
        assert len(got) == len(set(got)), f"{listing['stream']} doubled while paging"
        assert set(got) == set(want), f"{listing['stream']} {listing['start']}..{listing['end']}: " \
                                      f"{len(set(want) - set(got))} skipped, {len(set(got) - set(want))} foreign"
        arrived += len(set(want) - set(expected_ids(tenant, listing, c_first)))
        wanted[listing["stream"]] |= set(want)
    assert moved >= 150 and arrived > 20  # the clock really moved and sessions really arrived mid-listing
    assert doubled == 0 and skipped == 0

    digest = table_digests(engine)
    assert digest["code42_session"][0] == len(wanted["sessions"]) > 200
    assert digest["code42_alert"][0] == len(wanted["alerts"]) > 10
    reference = reference_warehouse(engine, tenant, make_hook(monkeypatch, sb, "code42_ref"),
                                    f"sqlite:///{tmp_path / 'reference.db'}")
    assert table_digests(reference) == digest  # every row exactly the version it claims, children too
    rows = sum(n for n, _ in digest.values())
    print(f"\n[page shift] runs={len(ends)} listings={len(hook.listings)} clock moved {moved} min, "
          f"{arrived} items arrived mid-listing; rows compared={rows} lost={skipped} duplicated={doubled}")
    with engine.connect() as conn:
        assert conn.execute(sa_select(t.code42_session.c.tenant_id).distinct()).scalars().all() == [tenant_id]


def test_sessions_listing_asks_for_an_explicit_ascending_order(shift_sandbox, monkeypatch):
    """The real API's default order is end time *descending* (the ``incydr`` SDK documents it):
    there every session that arrives lands on page 0 and shifts the rest by one, so offset paging
    reads an item twice per arrival (measured on the sandbox with ``sort_direction="desc"``: 67
    doubles in 546 sessions; ``order_by=score`` also *skips* 3, as scores change while paging:
    ``scripts/page_shift_orders.py``). The hook therefore asks for ascending order itself instead
    of relying on the server's default; a caller's explicit order still wins."""
    make_hook(monkeypatch, shift_sandbox, "code42_order")
    hook = Code42Hook("code42_order")
    sent = []
    real = hook._request_json

    def spy(method, endpoint, **kwargs):
        sent.append(kwargs.get("params"))
        return real(method, endpoint, **kwargs)

    hook._request_json = spy
    end = datetime(2026, 10, 30, tzinfo=UTC)
    list(hook.iter_sessions(end - timedelta(hours=1), end))
    list(hook.iter_sessions(end - timedelta(hours=1), end, sort_direction="desc"))
    assert sent[0]["sort_direction"] == "asc" and sent[-1]["sort_direction"] == "desc"

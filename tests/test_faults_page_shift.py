"""Page shift: sessions and alerts appear (and change) while the pipeline reads a listing.

The sandbox knob ``advance_per_page_min`` moves the sandbox clock on by M minutes with every page
it serves. The intervals here reach past the sandbox clock, so sessions begun in them become
visible *during* the listing, and sessions read earlier change (end times, scores, alerts, triage)
before the listing ends. Offset paging (``page_number`` x ``page_size``) skips an item when an
item before the offset disappears or moves behind it, and doubles one when an item is inserted
before it. Sessions are listed by end time (which grows while a session is open) and in two
listings by alert status (a session leaves ``has_alerts=false`` when its first alert appears), so
the hook never pages them: it reads begin-time sub-windows of one page each, the ``false`` listing
first (see ``Code42Hook.iter_sessions``). Alerts are paged ascending by their fixed creation time.

The right comparison. A clean run of the same intervals cannot be the reference: the data
legitimately depends on the clock at which each page was served (a session read at 10:00 and one
read at 13:00 are different versions). What must hold, and is checked here exactly:

1. *No item doubled*: every listing yields each id once (counted at the hook, before the
   warehouse's primary keys could hide a double). A session that gains its first alert between
   the ``false`` and the ``true`` listing of one window is in each of them once.
2. *No item skipped*: every alerts listing yields exactly the items the sandbox lists for its
   window at the clock of its last page (``C_last``), including arrivals. Of a sessions window,
   the two listings together yield every session visible when its reading began, and nothing the
   sandbox did not list in that listing at some clock of the read. The warehouse's keys are the
   union of those sets.
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
        listing = {"stream": stream.split(":")[0], "has_alerts": stream.partition(":")[2], "start": start,
                   "end": end, "ids": [],
                   "clock_before": self.sandbox.stats()["clock_ms"]}
        for record in records:
            listing["ids"].append(record.raw["sessionId" if stream.startswith("sessions") else "id"])
            yield record
        listing["clock_after"] = self.sandbox.stats()["clock_ms"]
        self.listings.append(listing)

    def _sessions_by_begin_time(self, lo, hi, params, **kwargs):
        window = (datetime.fromtimestamp(lo / 1000, UTC), datetime.fromtimestamp(hi / 1000, UTC))
        return self._spy(f"sessions:{params['has_alerts']}", *window,
                         super()._sessions_by_begin_time(lo, hi, params, **kwargs))

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


def expected_ids(tenant: Tenant, listing: dict, clock: int, has_alerts: bool | None = None) -> list[str]:
    """What the sandbox lists for the listing's window at ``clock`` (the pipeline's filters; for
    sessions, the listing ``has_alerts``, or both when None)."""
    lo, hi = _ms(listing["start"]), _ms(listing["end"])
    if listing["stream"] == "sessions":
        plans = [tenant.plan(i) for i in tenant.index_range(lo, hi, clock)]
        return [p.session_id for p in plans if p.observed <= clock
                and (has_alerts is None or (p.alerts_visible(clock) > 0) == has_alerts)]
    ids = []  # alerts created in [lo, hi) and at or before the clock
    for i in tenant.index_range(lo - MAX_ALERT_DELAY_MS, hi, clock):
        plan = tenant.plan(i)
        ids += [tenant.alert_id(i, rule) for rule, created in zip(plan.rules, plan.alert_times(), strict=True)
                if lo <= created < hi and created <= clock]
    return ids


def listed_during(tenant: Tenant, session_id: str, has_alerts: bool, first: int, last: int) -> bool:
    """Did the sandbox list this session in that listing at some clock of [first, last]?"""
    plan = tenant.find_session(session_id, last)
    if plan is None:
        return False
    since = max(first, plan.observed)
    alert = plan.alert_times()[0] if plan.alert_times() else None
    if has_alerts:
        return alert is not None and max(since, alert) <= last
    return since <= last and (alert is None or alert > since)


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

    arrived = doubled = skipped = moved_between = 0
    wanted: dict[str, set] = {"sessions": set(), "alerts": set()}
    sessions_read: dict[tuple, dict] = {}  # (start, end) -> has_alerts -> (ids, first clock, last clock)
    for listing in hook.listings:
        c_first, c_last = listing["clock_before"], listing["clock_after"] - ADVANCE_MIN * 60_000
        got = listing["ids"]
        doubled += sum(n - 1 for n in Counter(got).values())
        assert len(got) == len(set(got)), f"{listing['stream']} doubled while reading"
        if listing["stream"] == "sessions":
            sessions_read.setdefault((listing["start"], listing["end"]), {})[listing["has_alerts"]] = \
                (set(got), c_first, c_last)
            continue
        want = expected_ids(tenant, listing, c_last)
        skipped += len(set(want) - set(got))
        assert set(got) == set(want), f"alerts {listing['start']}..{listing['end']}: " \
                                      f"{len(set(want) - set(got))} skipped, {len(set(got) - set(want))} foreign"
        arrived += len(set(want) - set(expected_ids(tenant, listing, c_first)))
        wanted["alerts"] |= set(want)
    for (start, end), listings in sessions_read.items():
        (quiet, q_first, q_last), (alerted, a_first, a_last) = listings["false"], listings["true"]
        window = {"stream": "sessions", "start": start, "end": end}
        present = set(expected_ids(tenant, window, q_first))  # visible when the window's reading began
        skipped += len(present - (quiet | alerted))
        assert present <= quiet | alerted, f"sessions {start}..{end}: {len(present - quiet - alerted)} skipped"
        # nothing foreign: each listing holds only what it listed at some clock of its read
        foreign = {i for i in quiet if not listed_during(tenant, i, False, q_first, q_last)} | \
            {i for i in alerted if not listed_during(tenant, i, True, a_first, a_last)}
        assert not foreign, f"sessions {start}..{end}: {len(foreign)} never listed there while read"
        moved_between += len(quiet & alerted)  # gained the first alert between the two listings
        arrived += len((quiet | alerted) - present)
        wanted["sessions"] |= quiet | alerted
    assert moved >= 150 and arrived > 20  # the clock really moved and sessions really arrived mid-listing
    assert moved_between > 0  # sessions really moved from the false listing to the true one
    assert doubled == 0 and skipped == 0

    digest = table_digests(engine)
    assert digest["code42_session"][0] == len(wanted["sessions"]) > 200
    assert digest["code42_alert"][0] == len(wanted["alerts"]) > 10
    reference = reference_warehouse(engine, tenant, make_hook(monkeypatch, sb, "code42_ref"),
                                    f"sqlite:///{tmp_path / 'reference.db'}")
    assert table_digests(reference) == digest  # every row exactly the version it claims, children too
    rows = sum(n for n, _ in digest.values())
    print(f"\n[page shift] runs={len(ends)} listings={len(hook.listings)} clock moved {moved} min, "
          f"{arrived} items arrived mid-listing, {moved_between} sessions moved between listings; "
          f"rows compared={rows} lost={skipped} duplicated={doubled}")
    with engine.connect() as conn:
        assert conn.execute(sa_select(t.code42_session.c.tenant_id).distinct()).scalars().all() == [tenant_id]


def test_sessions_are_read_by_sub_windows_never_by_page_number(shift_sandbox, monkeypatch):
    """The API lists sessions by end time, descending unless asked (OpenAPI /v1/sessions), and that
    order moves while it is read; so every request of the sync reads page 0 of a begin-time
    sub-window, asks no order, and the ``false`` listing is read before the ``true`` one (which is
    only counted before it, for ``totals``). A caller who
    asks for a ranking gets it, in the API's own upper-case enum."""
    make_hook(monkeypatch, shift_sandbox, "code42_order")
    hook = Code42Hook("code42_order")
    sent = []
    real = hook._request_json

    def spy(method, endpoint, **kwargs):
        sent.append(kwargs.get("params"))
        return real(method, endpoint, **kwargs)

    hook._request_json = spy
    end = datetime(2026, 10, 30, tzinfo=UTC)
    read = list(hook.iter_sessions(end - timedelta(hours=6), end))
    assert len(read) > 3 * Code42Hook.SESSIONS_PAGE_SIZE and len(sent) > 6
    assert all(p["page_number"] == 0 and "sort_direction" not in p and "order_by" not in p for p in sent)
    count, *reads = sent  # the true listing is counted first (one session: its totalCount), then read last
    assert (count["has_alerts"], count["page_size"]) == ("true", 1)
    assert all(p["page_size"] == Code42Hook.SESSIONS_PAGE_SIZE for p in reads)
    flags = [p["has_alerts"] for p in reads]
    assert flags == sorted(flags, key=lambda f: f == "true") and set(flags) == {"false", "true"}
    sent.clear()
    list(hook.iter_sessions(end - timedelta(hours=1), end, has_alerts=True, sort_direction="desc"))
    assert sent and all(p["sort_direction"] == "DESC" and p["has_alerts"] == "true" for p in sent)


def test_the_sessions_total_counts_no_session_in_both_listings(shift_sandbox, monkeypatch):
    """While the clock moves, sessions gain their first alert and leave the ``false`` listing for
    the ``true`` one. ``totals["sessions"]`` is the ``true`` listing counted before the ``false``
    one is read plus the ``false`` listing's first answer, so none is counted in both: the total the
    completeness check compares with is never more than the sessions the read got."""
    sb = shift_sandbox
    sb.reset()
    hook = make_hook(monkeypatch, sb, "code42_shift")
    hook.tenant_id  # noqa: B018 - the token before the clock starts moving
    start, end = sb.anchor - timedelta(hours=6), sb.anchor + timedelta(hours=1)
    clock = sb.stats()["clock_ms"]
    sb.set_faults(advance_per_page_min=ADVANCE_MIN)
    try:
        read = [s.session_id for s in hook.iter_sessions(start, end)]
    finally:
        sb.set_faults(advance_per_page_min=0)
    tenant, window = _tenant(sb), {"stream": "sessions", "start": start, "end": end}
    counted = set(expected_ids(tenant, window, clock, True))  # the count: the first page served
    quiet = set(expected_ids(tenant, window, clock + ADVANCE_MIN * 60_000, False))  # the false listing's first
    moved = set(expected_ids(tenant, window, sb.stats()["clock_ms"], True)) - counted
    assert moved & quiet, "sessions gained their first alert during the read (else this test shows nothing)"
    assert hook.totals["sessions"] == len(counted) + len(quiet) <= len(set(read))
    assert not counted & quiet

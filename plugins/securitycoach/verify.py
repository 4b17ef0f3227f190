"""``securitycoach verify``: recount a tenant's past windows against the Code42 API and the warehouse.

A window is complete when the warehouse holds at least the items the API's ``totalCount`` says it
holds (sessions by begin time, alerts by created time: ``sync.count_window``). Counting costs one
request of page size 1 per window and listing (sessions: two listings, alerts: one), so the range is
counted by UTC day first and only the days with a gap are recounted by the tenant's schedule
intervals (the sync runs' data intervals): 90 days of an hourly tenant are 270 requests when
complete, plus 72 per day with a gap, instead of 6 480. ``repair`` re-extracts and loads the gap
windows with the sync's own steps (``extract_to_staging``, ``load_staged``, ``resolve_new_actors``).

``client`` is the Code42 hook (``count_sessions``, ``count_alerts`` and the sync's methods).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby, pairwise

from croniter import croniter
from sqlalchemy.engine import Engine

from securitycoach import sync
from securitycoach.streams import STREAMS, Stream
from securitycoach.timeutil import require_aware

Window = tuple[datetime, datetime]


def schedule_windows(schedule: str, since: datetime, until: datetime) -> list[Window]:
    """[since, until) cut at the ticks of the cron ``schedule`` (the first and last window clipped
    to ``since`` / ``until`` when those are not ticks)."""
    since, until = require_aware(since, "since"), require_aware(until, "until")
    if since >= until:
        raise ValueError(f"since {since:%Y-%m-%dT%H:%MZ} is not before until {until:%Y-%m-%dT%H:%MZ}")
    ticks, it = [], croniter(schedule, since)
    while (tick := it.get_next(datetime)) < until:
        ticks.append(tick)
    return list(pairwise([since, *ticks, until]))


def last_tick(schedule: str, now: datetime) -> datetime:
    """The latest tick of ``schedule`` at or before ``now``: the end of the last whole interval."""
    now = require_aware(now, "now")
    if croniter.match(schedule, now.replace(second=0, microsecond=0)) and not now.second and not now.microsecond:
        return now
    return croniter(schedule, now).get_prev(datetime)


@dataclass
class Verification:
    windows: int  # schedule windows checked (per stream)
    gaps: list[sync.WindowCount] = field(default_factory=list)
    requests: int = 0

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


def find_gaps(engine: Engine, client, tenant_id: str, windows: list[Window],
              streams: Iterable[Stream] = tuple(STREAMS.values())) -> Verification:
    """The windows (schedule windows, or a whole day when its windows recount complete) whose
    warehouse rows are fewer than the API's total, in stream and time order."""
    before = client.stats.requests
    result = Verification(windows=len(windows))
    days = [list(day) for _, day in groupby(windows, key=lambda w: w[0].date())]
    for stream in streams:
        for day in days:
            whole = _count(engine, client, tenant_id, stream, (day[0][0], day[-1][1]))
            if not whole.missing:
                continue
            parts = [_count(engine, client, tenant_id, stream, w) for w in day] if len(day) > 1 else [whole]
            result.gaps.extend([p for p in parts if p.missing] or [whole])
    result.requests = client.stats.requests - before
    return result


def repair(engine: Engine, client, tenant_id: str, gaps: list[sync.WindowCount]) -> int:
    """Re-extract and load each gap window with the sync's steps; returns the rows new or changed."""
    changed = 0
    for gap in gaps:
        interval = sync.Interval(tenant_id=tenant_id, start=gap.start, end=gap.end,
                                 run_key=f"verify-{gap.stream}-{gap.start:%Y%m%dT%H%M%S}-{gap.end:%Y%m%dT%H%M%S}")
        interval.extract(client, engine, gap.stream)
        changed += interval.load(engine, gap.stream)
    if gaps:
        sync.resolve_new_actors(engine, client, tenant_id=tenant_id)
    return changed


def _count(engine: Engine, client, tenant_id: str, stream: Stream, window: Window) -> sync.WindowCount:
    start, end = window
    return sync.window_count(engine, tenant_id, stream, start, end, stream.count(client, start, end))

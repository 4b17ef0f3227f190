"""The sync's steps, each a plain function over a warehouse engine and a Code42 client.

``client`` is anything with the Code42 hook's methods (``iter_sessions``, ``iter_alerts``,
``iter_alert_rules``, ``iter_actors``, ``get_actor``; for completeness ``totals``,
``count_sessions``, ``count_alerts``): in Airflow it is ``Code42Hook``.

- ``extract_to_staging``: stream one stream's items for an interval into staging, batch by batch.
- ``load_staged``: staged items -> fact tables, one transaction per batch, then clear the staging.
- ``refresh_alert_rules`` / ``refresh_actors`` / ``resolve_new_actors``: reference data.
- ``write_audit``: one row per run with what it cost.
- ``Interval``: one sync interval of one tenant, the steps above in the DAG's order (``run``); the
  operators, the tests' pipeline helpers and the bench call it (each DAG task one of its steps).
- ``verify_tenant``: the tenant uid of the tenants file against the one the token is for.
- ``count_window`` / ``window_count`` / ``check_complete``: the tenant's rows in a stream's window
  against what the API said it holds (the sync's completeness check and ``securitycoach verify``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.streams import STREAMS, Stream
from securitycoach.timeutil import as_utc, require_aware
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.engine import ANALYZE_MIN_ROWS, refresh_statistics
from securitycoach.warehouse.upsert import upsert

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_LOOKBACK_HOURS = 24 * 90
# The client counters an audit row adds up over a run's extractions (``client.stats``, if it has them).
COUNTERS = ("pages", "requests", "retries", "n_429", "n_5xx")


def _batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _staged(tenant_id: str, run_key: str, stream: str):
    s = t.staging_record.c
    return sa.and_(s.tenant_id == tenant_id, s.run_key == run_key, s.stream == stream)


def extract_to_staging(
    engine: Engine,
    client,
    stream: Stream,
    *,
    tenant_id: str,
    run_key: str,
    start: datetime,
    end: datetime,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Stage every item of ``stream`` in [start, end) under ``run_key``; returns the item count.

    Whatever an earlier attempt with the same run key staged is dropped first, so a retried or
    rerun extraction starts clean. The fact tables are not touched here.
    """
    start, end = require_aware(start, "start"), require_aware(end, "end")
    if start >= end:
        raise ValueError(f"empty interval for {stream.name}: start {start} is not before end {end}")
    with engine.begin() as conn:
        conn.execute(t.staging_record.delete().where(_staged(tenant_id, run_key, stream.name)))
    def write(rows: list[dict]) -> None:
        with engine.begin() as conn:
            upsert(conn, t.staging_record, rows, only_if_newer="cursor_value")

    # One batch is written (by a writer thread, its own connection and transaction) while the next
    # is read and parsed: the database's time overlaps the API's. At most one write is pending, so
    # memory holds two batches; a failed write stops the extraction at the next batch.
    count, pending = 0, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stage-{stream.name}") as writer:
        for batch in _batched(stream.fetch(client, start, end), batch_size):
            rows = [
                {
                    "tenant_id": tenant_id,
                    "run_key": run_key,
                    "stream": stream.name,
                    "record_id": stream.record_id(item),
                    "cursor_value": stream.cursor(item),
                    "payload": item,
                }
                for item in batch
            ]
            if pending is not None:
                pending.result()
            pending = writer.submit(write, rows)
            count += len(rows)
        if pending is not None:
            pending.result()
    refresh_statistics(engine, [t.staging_record.name], count)
    log.info("staged %d %s for %s .. %s (run %s)", count, stream.name, start, end, run_key)
    return count


def load_staged(
    engine: Engine, stream: Stream, *, tenant_id: str, run_key: str, batch_size: int = BATCH_SIZE
) -> int:
    """Move the staged items of ``stream`` into the fact tables; returns rows new or changed.

    Each batch is read and written in one transaction, so a failure leaves every batch either
    fully applied or not at all; reapplying is harmless (upserts). Staging is cleared at the end.
    """
    if engine.dialect.name == "postgresql" and stream.load_postgresql:
        changed = _load_staged_in_postgresql(engine, stream, tenant_id, run_key, batch_size)
    else:
        changed = _load_staged_in_python(engine, stream, tenant_id, run_key, batch_size)
    with engine.begin() as conn:
        conn.execute(t.staging_record.delete().where(_staged(tenant_id, run_key, stream.name)))
    refresh_statistics(engine, list(stream.tables), changed)
    log.info("loaded %s for run %s: %d rows new or changed", stream.name, run_key, changed)
    return changed


def _load_staged_in_python(engine: Engine, stream: Stream, tenant_id: str, run_key: str, batch_size: int) -> int:
    s = t.staging_record.c
    changed = 0
    after = ""
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(s.record_id, s.payload)
                .where(_staged(tenant_id, run_key, stream.name), s.record_id > after)
                .order_by(s.record_id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            changed += stream.load_batch(conn, tenant_id, [r.payload for r in rows])
        after = rows[-1].record_id
    return changed


def _load_staged_in_postgresql(engine: Engine, stream: Stream, tenant_id: str, run_key: str,
                               batch_size: int) -> int:
    """``load_staged`` without the round trip through Python: each batch (a record_id range) is
    moved by the stream's load inside PostgreSQL, one transaction per batch. Returns rows changed."""
    s = t.staging_record.c
    changed, after, next_analyze = 0, "", ANALYZE_MIN_ROWS
    while True:
        if changed >= next_analyze:
            # A bulk load into tables much smaller than it: their statistics are refreshed each time
            # the rows loaded grow fourfold, so the plans keep looking rows up by key instead of
            # scanning tables that have grown since they were last analyzed (seen: 12 x slower
            # batches once autovacuum had analyzed a full staging table and not yet the facts).
            refresh_statistics(engine, list(stream.tables), changed)
            next_analyze = 4 * changed
        with engine.begin() as conn:
            upto = conn.execute(
                sa.select(sa.func.max(sa.literal_column("record_id"))).select_from(
                    sa.select(s.record_id).where(_staged(tenant_id, run_key, stream.name), s.record_id > after)
                    .order_by(s.record_id).limit(batch_size).subquery())
            ).scalar()
            if upto is None:
                break
            changed += stream.load_postgresql(conn, tenant_id, run_key, after, upto)
        after = upto
    return changed


def refresh_alert_rules(engine: Engine, client, *, tenant_id: str) -> int:
    """Mirror the tenant's alert rules: upsert every rule, drop rules Code42 no longer has."""
    rows = [t.ALERT_RULE_FIELDS.row(rule.raw, tenant_id=tenant_id) for rule in client.iter_alert_rules()]
    with engine.begin() as conn:
        upsert(conn, t.code42_alert_rule, rows)
        conn.execute(
            t.code42_alert_rule.delete().where(
                t.code42_alert_rule.c.tenant_id == tenant_id,
                t.code42_alert_rule.c.rule_id.not_in([r["rule_id"] for r in rows]),
            )
        )
    return len(rows)


def refresh_actors(engine: Engine, client, *, tenant_id: str, batch_size: int = BATCH_SIZE) -> int:
    """Upsert every actor the tenant's actor search lists."""
    count = 0
    for batch in _batched(client.iter_actors(), batch_size):
        with engine.begin() as conn:
            upsert(conn, t.code42_actor, [t.ACTOR_FIELDS.row(a.raw, tenant_id=tenant_id) for a in batch])
        count += len(batch)
    return count


def resolve_new_actors(engine: Engine, client, *, tenant_id: str) -> int:
    """Fetch the actors that newly loaded sessions or alerts name but the warehouse does not know.

    "Newly loaded" is what the load queued for detection (new or changed subjects, still queued at
    this point of the run), so the look-up costs what the run changed, not the tenant's history.
    """
    a, s, al, q = t.code42_actor.c, t.code42_session.c, t.code42_alert.c, t.detection_queue.c
    known = sa.select(a.actor_id).where(a.tenant_id == tenant_id)
    wanted = sa.union(
        sa.select(s.actor_id).select_from(t.detection_queue.join(t.code42_session, sa.and_(
            s.tenant_id == q.tenant_id, s.session_id == q.subject_id, q.subject_type == "session")))
        .where(q.tenant_id == tenant_id, s.actor_id.is_not(None)),
        sa.select(al.actor_id).select_from(t.detection_queue.join(t.code42_alert, sa.and_(
            al.tenant_id == q.tenant_id, al.alert_id == q.subject_id, q.subject_type == "alert")))
        .where(q.tenant_id == tenant_id, al.actor_id.is_not(None)),
    ).subquery()
    with engine.connect() as conn:
        missing = conn.execute(
            sa.select(wanted.c[0]).where(wanted.c[0].not_in(known)).order_by(wanted.c[0])
        ).scalars().all()
    rows = [t.ACTOR_FIELDS.row(client.get_actor(actor_id).raw, tenant_id=tenant_id) for actor_id in missing]
    with engine.begin() as conn:
        upsert(conn, t.code42_actor, rows)
    return len(rows)


@dataclass
class AuditRow:
    tenant_id: str
    dag_id: str
    run_id: str
    interval_start: datetime | None
    interval_end: datetime | None
    sessions_from: datetime | None
    pages: int = 0
    items: int = 0
    requests: int = 0
    retries: int = 0
    n_429: int = 0
    n_5xx: int = 0
    rows_changed: int = 0
    seconds: float = 0.0
    sessions_api_total: int | None = None
    sessions_rows: int | None = None
    alerts_api_total: int | None = None
    alerts_rows: int | None = None

    def add_window(self, window: WindowCount) -> None:
        """Record a stream's window: the API's total and the warehouse's rows."""
        setattr(self, f"{window.stream}_api_total", window.api_total)
        setattr(self, f"{window.stream}_rows", window.rows)


def write_audit(engine: Engine, row: AuditRow) -> None:
    """Record (or, for a rerun of the same run id, replace) the run's audit row."""
    with engine.begin() as conn:
        upsert(conn, t.sync_audit, [{**asdict(row), "finished_at": datetime.now(UTC)}])


# --- completeness: every item the API says a window holds is in the warehouse ----------------------
def count_window(engine: Engine, tenant_id: str, stream: Stream, start: datetime, end: datetime) -> int:
    """The tenant's rows of ``stream`` in [start, end): sessions by begin time, alerts by created time."""
    column = stream.window_column
    table = column.table
    start, end = require_aware(start, "start"), require_aware(end, "end")
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.tenant_id == tenant_id, column >= start, column < end)).scalar_one()


@dataclass(frozen=True)
class WindowCount:
    """One stream's window: what the API said it holds (``api_total``, None: unknown) and the
    warehouse's rows in it."""

    tenant_id: str
    stream: str
    start: datetime
    end: datetime
    api_total: int | None
    rows: int

    @property
    def missing(self) -> int:
        """Items the API holds that the warehouse does not (0 when it holds as many or more)."""
        return 0 if self.api_total is None else max(0, self.api_total - self.rows)

    def span(self) -> str:
        return f"{_utc_text(self.start)} .. {_utc_text(self.end)}"

    def describe(self, entry: str) -> str:
        return (f"tenant {entry}: {self.stream} {self.span()}: API total {self.api_total}, "
                f"warehouse rows {self.rows}")


def window_count(engine: Engine, tenant_id: str, stream: Stream, start: datetime, end: datetime,
                 api_total: int | None) -> WindowCount:
    """``api_total`` against the warehouse's rows of that window now."""
    return WindowCount(tenant_id, stream.name, as_utc(start), as_utc(end), api_total,
                       count_window(engine, tenant_id, stream, start, end))


class IncompleteWindows(Exception):
    """The warehouse holds fewer rows than the API said a window holds; the message names each one."""

    def __init__(self, entry: str, windows: list[WindowCount]) -> None:
        self.windows = windows
        super().__init__("; ".join(w.describe(entry) for w in windows))


def check_complete(windows: Iterable[WindowCount], entry: str) -> list[WindowCount]:
    """Raise ``IncompleteWindows`` naming the windows the warehouse holds fewer rows of than the
    API's total (``entry``: the tenants-file entry, for the message); returns the windows."""
    windows = list(windows)
    short = [w for w in windows if w.missing]
    if short:
        raise IncompleteWindows(entry, short)
    return windows


def _utc_text(value: datetime) -> str:
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%MZ" if not value.second and not value.microsecond else "%Y-%m-%dT%H:%M:%S.%fZ")


def table_counts(engine: Engine, tenant_id: str | None = None) -> dict[str, int]:
    """Rows per fact table (optionally for one tenant): the demo's and the tests' summary."""
    counts = {}
    with engine.connect() as conn:
        for table in t.FACT_TABLES:
            query = sa.select(sa.func.count()).select_from(table)
            if tenant_id is not None:
                query = query.where(table.c.tenant_id == tenant_id)
            counts[table.name] = conn.execute(query).scalar_one()
    return counts


# --- the tenant ----------------------------------------------------------------------------------
class TenantMismatch(ValueError):
    """The tenants file says one Code42 tenant, the connection's token is for another."""


def verify_tenant(client, tenant_id: str, *, entry: str, conn_id: str) -> str:
    """Check the tenants file's ``code42_tenant_uid`` against the ``tenantUid`` claim of the
    connection's token (``client.tenant_id``); returns the uid or raises ``TenantMismatch``."""
    actual = client.tenant_id
    if actual != tenant_id:
        raise TenantMismatch(
            f"tenants.yaml entry {entry!r}: code42_tenant_uid is {tenant_id} but the token of connection "
            f"{conn_id!r} is for tenant {actual}; fix the entry or the connection")
    return actual


def limit_pages_in_flight(client, pages: int | None):
    """Let ``client`` fetch at most ``pages`` pages at once (the pool slots its task holds; the
    connection may say fewer). ``None`` or 0: as the connection says. Returns the client."""
    if pages:
        client.settings = replace(client.settings, pages_in_flight=min(client.settings.pages_in_flight, pages))
    return client


def lookback_hours(value: Any, what: str = "lookback_hours") -> int:
    """A look-back as whole hours in [0, MAX_LOOKBACK_HOURS] (DAG params arrive as text)."""
    try:
        hours = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number of hours, got {value!r}") from None
    if not 0 <= hours <= MAX_LOOKBACK_HOURS:
        raise ValueError(f"{what} must be between 0 and {MAX_LOOKBACK_HOURS} hours, got {hours}")
    return hours


# --- one interval ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Extracted:
    """What one stream's extraction staged and what it asked of the API (an extract task's XCom)."""

    stream: str
    since: datetime
    until: datetime
    items: int
    seconds: float
    api_total: int | None = None  # what the API said [since, until) holds (None: it did not say)
    pages: int = 0
    requests: int = 0
    retries: int = 0
    n_429: int = 0
    n_5xx: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "since": self.since.isoformat(), "until": self.until.isoformat()}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Extracted:
        return cls(**{**value, "since": datetime.fromisoformat(value["since"]),
                      "until": datetime.fromisoformat(value["until"])})


@dataclass
class RunResult:
    """What ``Interval.run`` did, step by step (the bench reads its timings)."""

    extracted: list[Extracted]
    changed: dict[str, int]
    load_seconds: float
    new_actors: int
    new_actors_seconds: float
    audit: AuditRow | None = None


def _counters(client) -> dict[str, int]:
    stats = getattr(client, "stats", None)
    return {name: getattr(stats, name, 0) for name in COUNTERS}


@dataclass(frozen=True)
class Interval:
    """One sync run of one tenant over [start, end), staged under ``run_key`` (the DAG run id).

    Sessions are read from ``start - lookback_hours`` (their late changes: triage, new alerts);
    alerts from ``start``. ``extract`` / ``load`` / ``resolve_new_actors`` / ``audit_row`` are the
    DAG's tasks, ``run`` is all of them in the DAG's order, in one process.
    """

    tenant_id: str
    run_key: str
    start: datetime
    end: datetime
    lookback_hours: int = 0
    batch_size: int = BATCH_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "start"))
        object.__setattr__(self, "end", require_aware(self.end, "end"))
        object.__setattr__(self, "lookback_hours", lookback_hours(self.lookback_hours))
        if not self.tenant_id:
            raise ValueError(f"interval {self.run_key}: no tenant id")

    def since(self, stream: str) -> datetime:
        """Where ``stream`` is read from: sessions with the look-back, anything else from ``start``."""
        return self.start - timedelta(hours=self.lookback_hours) if stream == "sessions" else self.start

    def extract(self, client, engine: Engine, stream: str) -> Extracted:
        """Stage ``stream`` for the interval; the counts are what ``client`` asked of the API meanwhile."""
        started, before = time.monotonic(), _counters(client)
        since = self.since(stream)
        items = extract_to_staging(engine, client, STREAMS[stream], tenant_id=self.tenant_id, run_key=self.run_key,
                                   start=since, end=self.end, batch_size=self.batch_size)
        after = _counters(client)
        return Extracted(stream=stream, since=since, until=self.end, items=items,
                         seconds=round(time.monotonic() - started, 3), api_total=STREAMS[stream].api_total(client),
                         **{name: after[name] - before[name] for name in COUNTERS})

    def load(self, engine: Engine, stream: str) -> int:
        """Move what ``extract`` staged for ``stream`` into the fact tables; rows new or changed."""
        return load_staged(engine, STREAMS[stream], tenant_id=self.tenant_id, run_key=self.run_key,
                           batch_size=self.batch_size)

    def resolve_new_actors(self, engine: Engine, client) -> int:
        return resolve_new_actors(engine, client, tenant_id=self.tenant_id)

    def windows(self, engine: Engine, extracted: Sequence[Extracted]) -> list[WindowCount]:
        """Each extraction's window: what the API said it holds against the warehouse's rows now."""
        return [window_count(engine, self.tenant_id, STREAMS[e.stream], e.since, e.until, e.api_total)
                for e in extracted]

    def audit_row(self, dag_id: str, extracted: Sequence[Extracted], changed: dict[str, int],
                  load_seconds: float, engine: Engine | None = None) -> AuditRow:
        """The run's audit row: the extractions' counts and the pipeline's own time (extraction and
        load, not scheduling gaps); with ``engine``, each window's API total and warehouse rows."""
        sessions = next((e for e in extracted if e.stream == "sessions"), None)
        row = AuditRow(tenant_id=self.tenant_id, dag_id=dag_id, run_id=self.run_key,
                       interval_start=self.start, interval_end=self.end,
                       sessions_from=sessions.since if sessions else None,
                       items=sum(e.items for e in extracted), rows_changed=sum(changed.values()),
                       seconds=round(sum(e.seconds for e in extracted) + load_seconds, 3))
        for name in COUNTERS:
            setattr(row, name, sum(getattr(e, name) for e in extracted))
        for window in self.windows(engine, extracted) if engine is not None else ():
            row.add_window(window)
        return row

    def run(self, engine: Engine, client, *, streams: Sequence[str] = ("sessions", "alerts"),
            dag_id: str | None = None) -> RunResult:
        """The whole interval: extract ``streams``, load them, fetch the actors they newly name and,
        with ``dag_id``, write the audit row (under that DAG id)."""
        extracted = [self.extract(client, engine, stream) for stream in streams]
        started = time.monotonic()
        changed = {stream: self.load(engine, stream) for stream in streams}
        load_seconds = round(time.monotonic() - started, 3)
        started = time.monotonic()
        actors = self.resolve_new_actors(engine, client)
        result = RunResult(extracted, changed, load_seconds, actors, round(time.monotonic() - started, 3))
        if dag_id is not None:
            result.audit = self.audit_row(dag_id, extracted, changed, load_seconds, engine)
            write_audit(engine, result.audit)
        return result

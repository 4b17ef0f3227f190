"""The SecurityTip outbox: plan one delivery per (campaign, detection), then send due ones once.

Planning (``plan_deliveries``) inserts a ``delivery`` row for every detection a campaign covers
whose actor is mapped to an active KSAT user in the campaign's groups, with the message rendered
and a stable idempotency key. Its status is final at once when nothing is to be sent:
``test`` (campaign in test mode: recorded what would be sent), ``stale`` (the behaviour happened
longer ago than the freshness window: a backfill records, never coaches). Otherwise ``pending``.

Sending (``send_due``) takes pending rows one at a time:
1. the delivery limit is checked (one tip per user and campaign per N minutes, a daily cap);
   over it the row becomes ``suppressed``;
2. the row is **claimed** (``pending`` -> ``sending``, conditional update, committed);
3. the channel sends it, carrying the idempotency key (``Idempotency-Key`` header / Message-ID);
4. the outcome is recorded (``sent``; ``failed`` for a permanent error; a channel's own final
   outcome for the person, such as ``no_chat_account`` (no Slack account for the KSAT email), which
   is recorded and is not a failure; back to ``pending`` with a later ``due_at`` for a transient
   error until the attempts run out). When the channel itself is refused (e.g. Slack
   ``invalid_auth``) the row goes back to ``pending`` as it was, the campaign sends nothing more
   this run, and the call reports it in ``channel_errors``.

Exactly once: a row is only ever sent from ``sending``, and only the claim moves it there, so a
rerun, a retried task or a second worker never sends a row already claimed. If the worker dies
between 2 and 4 the row stays ``sending``; once its claim is older than the lease, the next run
marks it ``in_doubt`` and does **not** resend it (the tip may or may not have left). The one
limit: such a tip is delivered at most once, not exactly once; with a receiver that honours the
idempotency key an operator may safely requeue it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from securitycoach.coaching.campaigns import Campaign, CampaignError, CampaignFile
from securitycoach.coaching.triage import (
    COVERED_BY_INSTRUCTOR,
    ON_WATCHLIST,
    WITHDRAWN,
    WatchlistGate,
    hold,
    subject_states,
)
from securitycoach.detection.catalog import SEVERITIES
from securitycoach.paths import include_dir
from securitycoach.timeutil import as_utc
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.upsert import upsert, upsert_changed

log = logging.getLogger(__name__)

PLAN_BATCH = 1000
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RETRY_DELAY = timedelta(minutes=5)
# Final outcomes a channel may give one person's tip without it being a failure.
NO_CHAT_ACCOUNT = "no_chat_account"  # a chat channel has no account for the person's KSAT email
CHANNEL_OUTCOMES = (NO_CHAT_ACCOUNT,)
# Final outcomes Code42 decides (triage, Instructor, watchlists): see securitycoach.coaching.triage.
CODE42_OUTCOMES = (WITHDRAWN, COVERED_BY_INSTRUCTOR, ON_WATCHLIST)


def tip_templates(folder: str | None = None) -> jinja2.Environment:
    """The SecurityTip templates (include/templates/tips): autoescaped, strict about names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder or str(include_dir() / "templates" / "tips")),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
    )


def is_stale(occurred: datetime, now: datetime, freshness: timedelta) -> bool:
    """The staleness rule: a detection that happened longer than ``freshness`` before the campaign
    first saw it is recorded (``stale``), never sent; exactly ``freshness`` old is still fresh."""
    return now - occurred > freshness


def idempotency_key(tenant_id: str, campaign: str, rule_key: str, subject_type: str, subject_id: str) -> str:
    return hashlib.sha256(f"{tenant_id}\x1f{campaign}\x1f{rule_key}\x1f{subject_type}\x1f{subject_id}".encode()).hexdigest()


def _count(table: dict[str, dict[str, int]], key: str, status: str) -> None:
    counts = table.setdefault(key, {})
    counts[status] = counts.get(status, 0) + 1


@dataclass
class PlanResult:
    planned: dict[str, dict[str, int]] = field(default_factory=dict)  # campaign -> status -> rows
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)  # rule key -> status -> rows

    def add(self, campaign: str, status: str, rule_key: str | None = None) -> None:
        _count(self.planned, campaign, status)
        if rule_key is not None:
            _count(self.by_rule, rule_key, status)


def plan_deliveries(engine: Engine, tenant_id: str, campaigns: CampaignFile, templates: jinja2.Environment,
                    *, now: datetime | None = None,
                    watchlists: dict[str, WatchlistGate] | None = None) -> PlanResult:
    """Add outbox rows for detections not yet planned for each enabled campaign.

    A row that would be pending (not test mode, not stale) is checked against Code42
    (``triage.hold``): a subject cleared by triage is
    ``withdrawn``, an actor on one of the campaign's watchlists ``on_watchlist``, a subject an
    Instructor lesson covered ``covered_by_instructor``; these are final. ``watchlists``: the
    campaigns' resolved ``suppress_watchlists`` (a gate with an error plans rows as pending; the
    send step holds them)."""
    watchlists = watchlists or {}
    now = now or datetime.now(UTC)
    freshness = timedelta(hours=campaigns.freshness_hours)
    result = PlanResult()
    with engine.begin() as conn:
        mirror_campaigns(conn, tenant_id, campaigns, now)
        rule_keys = conn.execute(sa.select(t.detection_rule.c.rule_key)
                                 .where(t.detection_rule.c.tenant_id == tenant_id)).scalars().all()
        groups = dict(conn.execute(sa.select(t.ksat_group.c.name, t.ksat_group.c.group_id)
                                   .where(t.ksat_group.c.tenant_id == tenant_id)).all())
    for campaign in campaigns.enabled:
        keys = [k for k in rule_keys if campaign.covers(k)]
        group_ids = _group_ids(campaign, groups)
        if not keys:
            continue
        after = ("", "", "")
        while True:
            with engine.begin() as conn:
                rows = conn.execute(_candidates(tenant_id, campaign.name, keys, after)).all()
                if not rows:
                    break
                after = (rows[-1].rule_key, rows[-1].subject_type, rows[-1].subject_id)
                planned = []
                rows = [row for row in rows if group_ids is None or group_ids & set(row.user_groups or [])]
                states = subject_states(conn, tenant_id, campaigns.triage,
                                        [(row.subject_type, row.subject_id) for row in rows])
                gate = watchlists.get(campaign.name)
                for row in rows:
                    planned.append(_planned_row(tenant_id, campaign, row, templates, now, freshness))
                    code42 = hold(campaign, states.get((row.subject_type, row.subject_id)), row.actor_id,
                                  gate if gate is not None and gate.error is None else None)
                    if code42 is not None and planned[-1]["status"] == "pending":
                        planned[-1]["status"], planned[-1]["reason"] = code42
                    result.add(campaign.name, planned[-1]["status"], row.rule_key)
                upsert(conn, t.delivery, planned, do_nothing=True)
    log.info("planned deliveries for tenant %s: %s", tenant_id, result.planned)
    return result


def mirror_campaigns(conn, tenant_id: str, campaigns: CampaignFile, now: datetime) -> None:
    """Keep ``coaching_campaign`` equal to the campaign file (reports name campaigns from it)."""
    c = t.coaching_campaign.c
    stored = {(row.tenant_id, row.campaign): row
              for row in conn.execute(sa.select(t.coaching_campaign).where(c.tenant_id == tenant_id))}
    rows = [{"tenant_id": tenant_id, "campaign": x.name, "enabled": x.enabled, "test_mode": x.test_mode,
             "channel": x.channel.type, "rule_keys": list(x.rules), "groups": list(x.groups), "updated_at": now}
            for x in campaigns.campaigns]
    upsert_changed(conn, t.coaching_campaign, rows, stored)
    gone = [name for (_, name) in stored if name not in {x.name for x in campaigns.campaigns}]
    if gone:
        conn.execute(t.coaching_campaign.update().where(c.tenant_id == tenant_id, c.campaign.in_(gone))
                     .values(enabled=False, updated_at=now))


def _group_ids(campaign: Campaign, groups: dict[str, int]) -> set[int] | None:
    if not campaign.groups:
        return None
    unknown = [g for g in campaign.groups if g not in groups]
    if unknown:
        raise CampaignError(f"campaign {campaign.name!r}: groups: {unknown} are not KSAT groups of this tenant "
                            f"(known: {sorted(groups)})")
    return {groups[g] for g in campaign.groups}


def _candidates(tenant_id: str, campaign: str, keys: list[str], after: tuple[str, str, str]):
    d, m, u, r, dl = (t.detection.c, t.user_mapping.c, t.ksat_user.c, t.detection_rule.c, t.delivery.c)
    planned = sa.select(1).where(dl.tenant_id == d.tenant_id, dl.campaign == campaign, dl.rule_key == d.rule_key,
                                 dl.subject_type == d.subject_type, dl.subject_id == d.subject_id)
    return (
        sa.select(d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.severity, d.occurred_at, d.summary,
                  m.ksat_user_id, u.email, u.first_name, u.last_name, u.groups.label("user_groups"),
                  r.name.label("rule_name"), r.lesson_title, r.lesson_url)
        .select_from(
            t.detection
            .join(t.user_mapping, sa.and_(m.tenant_id == d.tenant_id, m.actor_id == d.actor_id))
            .join(t.ksat_user, sa.and_(u.tenant_id == d.tenant_id, u.ksat_user_id == m.ksat_user_id))
            .join(t.detection_rule, sa.and_(r.tenant_id == d.tenant_id, r.rule_key == d.rule_key)))
        .where(d.tenant_id == tenant_id, d.rule_key.in_(keys), u.status == "active", ~planned.exists(),
               sa.tuple_(d.rule_key, d.subject_type, d.subject_id) > sa.tuple_(*after))
        .order_by(d.rule_key, d.subject_type, d.subject_id)
        .limit(PLAN_BATCH)
    )


def _planned_row(tenant_id: str, campaign: Campaign, row, templates: jinja2.Environment, now: datetime,
                 freshness: timedelta) -> dict[str, Any]:
    occurred = as_utc(row.occurred_at)
    context = {
        "campaign": {"name": campaign.name},
        "user": {"first_name": row.first_name or "", "last_name": row.last_name or "", "email": row.email},
        "rule": {"name": row.rule_name, "lesson_title": row.lesson_title or row.rule_name,
                 "lesson_url": row.lesson_url},
        "detection": {"summary": row.summary or "", "occurred_at": occurred, "severity": row.severity,
                      "severity_name": SEVERITIES[max(0, min(4, row.severity))].replace("_", " ").title(),
                      "subject_type": row.subject_type, "subject_id": row.subject_id},
    }
    if campaign.test_mode:
        status, reason = "test", "campaign in test mode: recorded what would be sent, sent nothing"
    elif is_stale(occurred, now, freshness):
        age_h = (now - occurred).total_seconds() / 3600
        status, reason = "stale", (f"happened {age_h:.0f} h before the campaign first saw it "
                                   f"(freshness window {freshness.total_seconds() / 3600:.0f} h): recorded, not sent")
    else:
        status, reason = "pending", None
    return {
        "tenant_id": tenant_id, "campaign": campaign.name, "rule_key": row.rule_key,
        "subject_type": row.subject_type, "subject_id": row.subject_id,
        "idempotency_key": idempotency_key(tenant_id, campaign.name, row.rule_key, row.subject_type, row.subject_id),
        "actor_id": row.actor_id, "ksat_user_id": row.ksat_user_id, "recipient": row.email,
        "channel": campaign.channel.type, "status": status, "reason": reason, "attempts": 0,
        "occurred_at": occurred, "created_at": now, "due_at": now, "claimed_at": None, "sent_at": None,
        "subject": templates.from_string(campaign.subject).render(context).strip(),
        "body": templates.get_template(campaign.template).render(context),
    }


# --- sending -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tip:
    campaign: str
    recipient: str
    subject: str
    body: str
    idempotency_key: str


class DeliveryError(Exception):
    """A channel could not deliver a tip. ``permanent``: retrying cannot help (HTTP 4xx, SMTP 5xx).

    ``outcome``: a final status from ``CHANNEL_OUTCOMES`` for this person (e.g. ``no_chat_account``),
    recorded instead of ``failed`` and not counted as a failure. ``channel_down``: the channel
    refused us, not the tip (bad credentials): the tip stays pending untouched, the campaign stops
    sending this run, and the message (which must name the connection, never its secret) is
    reported once.
    """

    def __init__(self, message: str, *, permanent: bool, outcome: str | None = None,
                 channel_down: bool = False) -> None:
        super().__init__(message)
        if outcome is not None and outcome not in CHANNEL_OUTCOMES:
            raise ValueError(f"unknown delivery outcome {outcome!r}; known: {CHANNEL_OUTCOMES}")
        self.permanent = permanent
        self.outcome = outcome
        self.channel_down = channel_down


class Sender(Protocol):
    def send(self, tip: Tip) -> None:
        """Deliver or raise ``DeliveryError`` (after the channel's own quick retries)."""


@dataclass
class SendResult:
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)  # campaign -> outcome -> rows
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)  # rule key -> outcome -> rows
    failures: list[str] = field(default_factory=list)
    channel_errors: dict[str, str] = field(default_factory=dict)  # campaign -> why its channel refused us
    blocked: dict[str, str] = field(default_factory=dict)  # campaign -> why it sends nothing (fail safe)

    def add(self, campaign: str, status: str, rule_key: str | None = None) -> None:
        _count(self.by_status, campaign, status)
        if rule_key is not None:
            _count(self.by_rule, rule_key, status)


def _key(row) -> sa.ColumnElement[bool]:
    dl = t.delivery.c
    return sa.and_(dl.tenant_id == row.tenant_id, dl.campaign == row.campaign, dl.rule_key == row.rule_key,
                   dl.subject_type == row.subject_type, dl.subject_id == row.subject_id)


def send_due(engine: Engine, tenant_id: str, campaigns: CampaignFile, senders: dict[str, Sender], *,
             clock: Callable[[], datetime] = lambda: datetime.now(UTC), lease: timedelta = LEASE,
             max_attempts: int = MAX_ATTEMPTS, retry_delay: timedelta = RETRY_DELAY,
             after_send: Callable[[Tip], None] | None = None, max_rows: int | None = None,
             watchlists: dict[str, WatchlistGate] | None = None) -> SendResult:
    """Send the tenant's due deliveries, each at most once; returns outcomes per campaign.

    Just before a tip is claimed its subject is checked against Code42 again (``triage.hold``,
    from the warehouse this run loaded): cleared since it was planned -> ``withdrawn`` (final: a
    rerun never sends it). A campaign whose watchlist gate has an error sends nothing this run
    (its rows stay pending) and is reported in ``blocked`` (not a failure of the run).

    ``senders`` maps campaign name -> channel. ``max_rows`` bounds how many due rows one call
    handles. ``after_send`` runs between a successful send and its record (tests use it to crash
    the worker exactly there).
    """
    dl = t.delivery.c
    result = SendResult()
    _mark_in_doubt(engine, tenant_id, clock() - lease)
    by_name = campaigns.by_name()
    watchlists = watchlists or {}
    for name, gate in watchlists.items():
        if gate.error is not None:
            result.blocked[name] = gate.error
            log.error("campaign %s sends nothing this run: %s", name, gate.error)
    handled = 0
    while max_rows is None or handled < max_rows:
        handled += 1
        now = clock()
        with engine.begin() as conn:
            row = _next_due(conn, tenant_id, now, skip=[*result.channel_errors, *result.blocked])
            if row is None:
                break
            held = _held(conn, tenant_id, row, by_name.get(row.campaign), campaigns, watchlists, now)
            if held is not None:
                conn.execute(t.delivery.update().where(_key(row), dl.status == "pending")
                             .values(status=held[0], reason=held[1]))
                result.add(row.campaign, held[0], row.rule_key)
                continue
            claimed = conn.execute(
                t.delivery.update().where(_key(row), dl.status == "pending")
                .values(status="sending", claimed_at=now, attempts=row.attempts + 1)
            ).rowcount
        if not claimed:
            continue  # another worker took it
        tip = Tip(row.campaign, row.recipient, row.subject or "", row.body or "", row.idempotency_key)
        try:
            senders[row.campaign].send(tip)
        except DeliveryError as exc:
            values, outcome = _after_failure(row, exc, result, clock, retry_delay, max_attempts)
        else:
            if after_send is not None:
                after_send(tip)
            values, outcome = {"status": "sent", "sent_at": clock(), "reason": None}, "sent"
        with engine.begin() as conn:
            conn.execute(t.delivery.update().where(_key(row), dl.status == "sending").values(**values))
        result.add(row.campaign, outcome, row.rule_key)
    log.info("deliveries for tenant %s: %s", tenant_id, result.by_status)
    return result


def _mark_in_doubt(engine: Engine, tenant_id: str, claimed_before: datetime) -> None:
    """Rows still ``sending`` after the lease: their worker stopped between claim and record."""
    dl = t.delivery.c
    with engine.begin() as conn:
        doubtful = conn.execute(
            t.delivery.update()
            .where(dl.tenant_id == tenant_id, dl.status == "sending", dl.claimed_at < claimed_before)
            .values(status="in_doubt", reason="the worker stopped between claiming and recording this tip; "
                                              "not resent (it may have been delivered)")
        ).rowcount
    if doubtful:
        log.error("%d deliveries of tenant %s were in flight when a worker stopped: marked in_doubt, not resent",
                  doubtful, tenant_id)


def _next_due(conn, tenant_id: str, now: datetime, skip: list[str]):
    """The tenant's next pending row due by ``now``, of a campaign not in ``skip``; or None."""
    dl = t.delivery.c
    due = sa.select(t.delivery).where(dl.tenant_id == tenant_id, dl.status == "pending", dl.due_at <= now)
    if skip:
        due = due.where(dl.campaign.notin_(skip))
    return conn.execute(due.order_by(dl.due_at, dl.campaign, dl.rule_key, dl.subject_type, dl.subject_id)
                        .limit(1)).first()


def _held(conn, tenant_id: str, row, campaign: Campaign | None, campaigns: CampaignFile,
          watchlists: dict[str, WatchlistGate], now: datetime) -> tuple[str, str] | None:
    """(final status, reason) when this tip must not go now: Code42's word on its subject (checked
    again just before sending), then the campaign and its delivery limits; else None."""
    if campaign is not None:
        state = subject_states(conn, tenant_id, campaigns.triage, [(row.subject_type, row.subject_id)])
        code42 = hold(campaign, state.get((row.subject_type, row.subject_id)), row.actor_id,
                      watchlists.get(row.campaign))
        if code42 is not None:
            return code42[0], f"{code42[1]} (checked just before sending)"
    reason = _hold_reason(conn, row, campaign, now)
    return ("suppressed", reason) if reason else None


def _after_failure(row, exc: DeliveryError, result: SendResult, clock: Callable[[], datetime],
                   retry_delay: timedelta, max_attempts: int) -> tuple[dict[str, Any], str]:
    """What a failed send leaves on its row, and the outcome to count."""
    attempts = row.attempts + 1
    if exc.channel_down:  # not this tip's fault: as it was, for the next run
        result.channel_errors[row.campaign] = str(exc)
        log.error("campaign %s sends nothing more this run: %s", row.campaign, exc)
        return {"status": "pending", "attempts": row.attempts, "claimed_at": row.claimed_at}, "channel_down"
    if exc.outcome is not None:
        return {"status": exc.outcome, "reason": str(exc)[:1000]}, exc.outcome
    if exc.permanent or attempts >= max_attempts:
        result.failures.append(f"{row.campaign} -> {row.recipient}: {exc} (attempt {attempts})")
        return {"status": "failed", "reason": str(exc)[:1000]}, "failed"
    return {"status": "pending", "reason": str(exc)[:1000], "due_at": clock() + retry_delay * attempts}, "retry_later"


def _hold_reason(conn, row, campaign: Campaign | None, now: datetime) -> str | None:
    """Why this tip must not go now (campaign gone or off, delivery limit, daily cap), or None."""
    if campaign is None or not campaign.enabled:
        return "campaign removed or disabled before sending"
    dl = t.delivery.c
    sent_time = sa.func.coalesce(dl.sent_at, dl.claimed_at)
    same_user = sa.and_(dl.tenant_id == row.tenant_id, dl.campaign == row.campaign,
                        dl.ksat_user_id == row.ksat_user_id, dl.status.in_(("sent", "sending", "in_doubt")))
    limit = campaign.delivery_limit
    if limit.minutes_between:
        recent = conn.execute(sa.select(sa.func.count()).where(
            same_user, sent_time > now - timedelta(minutes=limit.minutes_between))).scalar_one()
        if recent:
            return f"delivery limit: at most one SecurityTip per {limit.minutes_between} min per user"
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = conn.execute(sa.select(sa.func.count()).where(same_user, sent_time >= day)).scalar_one()
    if today >= limit.daily_cap:
        return f"daily cap: {limit.daily_cap} SecurityTips per user per day reached"
    return None

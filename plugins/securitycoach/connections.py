"""The Airflow connections a tenant's sync run needs, read from its tenants-file entry and the
campaign file, so a run can say before it extracts anything which one is missing and who needs it.

Three kinds of need:

- ``required``: the run cannot work without it (the tenant's Code42 and KnowBe4 connections);
- ``to_send``: a channel (a campaign's Slack or SMTP connection, the team digest's webhook), needed
  only when a tip may be due. A run whose data interval ended longer ago than the campaign file's
  ``freshness_hours`` plans only ``stale`` tips (the outbox's staleness rule), so it needs none;
- ``optional``: missing means a feature is off (no KnowBe4 User Event API connection: detections
  are not pushed to the KSAT timeline).

Test-mode campaigns send nothing and need no channel; disabled campaigns need nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from securitycoach.coaching.campaigns import CampaignFile
from securitycoach.coaching.outbox import is_stale
from securitycoach.tenants import Tenant

REQUIRED = "required"
TO_SEND = "to_send"
OPTIONAL = "optional"


@dataclass(frozen=True)
class NeededConnection:
    conn_id: str
    conn_type: str  # the Airflow connection type it should have
    needed_by: str  # "tenant 'default' (code42_conn_id)", "campaign 'Data handling coaching' (slack_dm channel)"
    need: str  # REQUIRED | TO_SEND | OPTIONAL
    without: str = ""  # OPTIONAL: what the run does without it

    def missing_line(self) -> str:
        return f"connection {self.conn_id!r} (type {self.conn_type}) needed by {self.needed_by} is not defined"


CHANNEL_TYPES = {"slack_dm": "slack", "email": "smtp", "webhook": "http"}


def needed_connections(tenant: Tenant, campaigns: CampaignFile) -> list[NeededConnection]:
    """Every connection a sync run of ``tenant`` may use, in the order the run uses them."""
    entry = f"tenant {tenant.name!r}"
    needs = [NeededConnection(tenant.code42_conn_id, "code42", f"{entry} (code42_conn_id)", REQUIRED),
             NeededConnection(tenant.knowbe4_conn_id, "knowbe4", f"{entry} (knowbe4_conn_id)", REQUIRED)]
    for campaign in campaigns.enabled:
        if not campaign.test_mode:
            channel = campaign.channel
            needs.append(NeededConnection(channel.conn_id, CHANNEL_TYPES[channel.type],
                                          f"campaign {campaign.name!r} ({channel.type} channel)", TO_SEND))
    digest = campaigns.team_digest
    if digest is not None and digest.enabled:
        needs.append(NeededConnection(digest.channel.conn_id, CHANNEL_TYPES[digest.channel.type],
                                      "team_digest (webhook channel)", TO_SEND))
    if campaigns.ksat_events.enabled:
        needs.append(NeededConnection(tenant.knowbe4_events_conn_id, "knowbe4_events",
                                      f"{entry} (knowbe4_events_conn_id)", OPTIONAL,
                                      without="detections are not pushed to the KSAT Events Timeline"))
    return needs


def tips_may_be_due(interval_end: datetime | None, now: datetime, campaigns: CampaignFile) -> bool:
    """False when the run's data interval ended so long ago that every tip it plans is stale."""
    if interval_end is None:
        return True
    return not is_stale(interval_end, now, timedelta(hours=campaigns.freshness_hours))


@dataclass
class ConnectionCheck:
    missing: list[NeededConnection]  # the run must not start: one line each
    absent_ok: list[str]  # missing, but not needed by this run: what that means, for the log
    found: list[str]  # conn ids that exist

    @property
    def message(self) -> str:
        lines = "; ".join(n.missing_line() for n in self.missing)
        return (f"{lines}: nothing was extracted. Define it (Admin > Connections, an AIRFLOW_CONN_* "
                "variable or the secrets backend) or disable what needs it")


def check_connections(needs: list[NeededConnection], exists: Callable[[str], bool], *,
                      sending: bool) -> ConnectionCheck:
    """Which of ``needs`` are missing (``exists(conn_id)`` says); ``sending``: ``tips_may_be_due``."""
    present = {conn_id: exists(conn_id) for conn_id in dict.fromkeys(n.conn_id for n in needs)}
    result = ConnectionCheck([], [], [c for c, ok in present.items() if ok])
    for need in needs:
        if present[need.conn_id]:
            continue
        if need.need == REQUIRED or (need.need == TO_SEND and sending):
            result.missing.append(need)
        elif need.need == TO_SEND:
            result.absent_ok.append(f"{need.missing_line()}: not needed by this run (its interval ended longer ago "
                                    "than freshness_hours, so every tip it plans is stale; none is sent)")
        else:
            result.absent_ok.append(f"{need.missing_line()}: {need.without}")
    return result

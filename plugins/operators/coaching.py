"""Operators of detection and coaching: evaluate detection rules, then plan and send SecurityTips."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

from code42_hook import Code42Hook
from knowbe4_hook import KnowBe4EventsHook, KnowBe4Hook
from operators.channels import ChatWebhookSender, senders_for
from operators.mapping import _TenantOperator
from securitycoach.coaching.campaigns import CampaignError, CampaignFile, load_campaigns
from securitycoach.coaching.code42_notes import write_notes
from securitycoach.coaching.ksat_events import CALLS_PER_SEAT_PER_DAY, push_events
from securitycoach.coaching.outbox import (
    DeliveryError,
    PlanResult,
    SendResult,
    plan_deliveries,
    send_due,
    tip_templates,
)
from securitycoach.coaching.team_digest import digest_context, digest_tip
from securitycoach.coaching.triage import record_blocks, resolve_watchlists
from securitycoach.detection.catalog import CatalogError, load_catalog
from securitycoach.detection.engine import detect
from securitycoach.paths import campaigns_path, detection_rules_path


def _catalog(path: str | None):
    try:
        return load_catalog(path or detection_rules_path())
    except CatalogError as exc:
        raise AirflowFailException(str(exc)) from None


def campaign_file(path: str | None, rules_path: str | None, templates=None) -> CampaignFile:
    """The campaign file, validated against the detection rules and tip templates (a bad one fails
    the task without retries)."""
    try:
        return load_campaigns(path or campaigns_path(), _catalog(rules_path), templates or tip_templates())
    except CampaignError as exc:
        raise AirflowFailException(str(exc)) from None


class DetectOperator(_TenantOperator):
    """Evaluate the enabled detection rules over the sessions and alerts the load queued."""

    def __init__(self, *, rules_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rules_path = rules_path

    def execute(self, context) -> dict[str, Any]:
        catalog = _catalog(self.rules_path)
        tenant, engine = self.tenant_and_engine()
        result = detect(engine, tenant, catalog)
        return {"evaluated": result.evaluated, "new": result.new, "updated": result.updated,
                "rules_enabled": result.rules_enabled}


log = logging.getLogger(__name__)


class DeliverTipsOperator(_TenantOperator):
    """Plan outbox rows for new detections per campaign, send the due ones (each once), then post
    the team digest (counts only) if the campaign file has one and the run did anything.

    Runs one at a time per DAG (``max_active_tis_per_dag=1``) so the delivery limit is checked
    and claimed by a single worker. Fails at the end, after recording every outcome, if a channel
    refused its credentials (one line per connection, e.g. Slack ``invalid_auth``), or a tip was
    refused for good (HTTP 4xx, SMTP 5xx) or ran out of attempts. A person without a chat account
    (``no_chat_account``) is an outcome, not a failure; a digest that cannot be posted is logged.

    Campaigns with ``suppress_watchlists`` read the Code42 watchlists' members first. When that is
    refused (403: no Read on Watchlists) or fails, the campaign sends nothing this run (fail safe,
    never fail open): logged as an error, kept in ``coaching_block`` for the report's pipeline
    health panel; the rest of the run goes on and succeeds.
    """

    def __init__(self, *, rules_path: str | None = None, campaigns_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        self.rules_path = rules_path
        self.campaigns_file = campaigns_path

    def execute(self, context) -> dict[str, Any]:
        templates = tip_templates()
        campaigns = campaign_file(self.campaigns_file, self.rules_path, templates)
        tenant, engine = self.tenant_and_engine()
        gates = resolve_watchlists(Code42Hook(self.code42_conn_id), campaigns.campaigns, self.code42_conn_id)
        for gate in gates.values():
            if gate.error:
                self.log.error("%s", gate.error)
        with engine.begin() as conn:
            record_blocks(conn, tenant, gates, datetime.now(UTC))
        try:
            planned = plan_deliveries(engine, tenant, campaigns, templates, watchlists=gates)
        except CampaignError as exc:
            raise AirflowFailException(str(exc)) from None
        sent = send_due(engine, tenant, campaigns, senders_for(campaigns), watchlists=gates)
        digest = self.post_team_digest(engine, tenant, campaigns, templates, planned, sent,
                                       run_id=str(context.get("run_id") or datetime.now(UTC).isoformat()))
        notes = None
        if campaigns.code42_notes.enabled:  # off by default: needs Alerts and Sessions update
            notes = write_notes(engine, tenant, Code42Hook(self.code42_conn_id), conn_id=self.code42_conn_id)
        if sent.channel_errors:
            raise AirflowFailException("\n".join(dict.fromkeys(sent.channel_errors.values())))
        if notes is not None and notes.refused:
            raise AirflowFailException(notes.refused)
        if sent.failures:
            shown = "\n".join(sent.failures[:20])
            raise AirflowException(f"{len(sent.failures)} SecurityTip(s) could not be delivered (recorded as "
                                   f"failed in the delivery table):\n{shown}")
        return {"planned": planned.planned, "sent": sent.by_status, "team_digest": digest,
                "blocked": sent.blocked, "code42_notes": notes.outcomes if notes is not None else "off"}

    @staticmethod
    def post_team_digest(engine, tenant: str, campaigns: CampaignFile, templates, planned: PlanResult,
                         sent: SendResult, *, run_id: str, sender=None) -> str:
        """Post this run's counts to the team channel; returns what happened (for the task's result)."""
        config = campaigns.team_digest
        if config is None or not config.enabled:
            return "not configured"
        context = digest_context(engine, tenant, planned, sent, config, datetime.now(UTC))
        if context is None:
            return "skipped: no tip was due"
        try:  # the webhook connection is looked up only now, when a tip was due
            (sender or ChatWebhookSender(config.channel.conn_id)).send(digest_tip(templates, config, context, run_id))
        except AirflowNotFoundException:
            log.error("team digest not posted: connection %r is not defined", config.channel.conn_id)
            return f"failed: connection {config.channel.conn_id!r} is not defined"
        except DeliveryError as exc:
            log.error("team digest not posted to %s: %s", config.channel.conn_id, exc)
            return f"failed: {exc}"
        return "sent"


class PushKsatEventsOperator(_TenantOperator):
    """Put the tenant's detections on their KSAT users' Events Timeline (KnowBe4 User Event API):
    plan, resolve rows in doubt, delete events triage cleared, push the pending ones, each once and
    within the key's daily quota (10 calls per seat: seats from the connection's ``seats`` extra, else
    the Reporting API's ``GET /v1/account``). What the quota leaves is pushed by a later run.

    Skipped when the ``knowbe4_events`` connection does not exist. Fails, after recording everything,
    when KnowBe4 refused the key; runs one at a time per DAG.
    """

    def __init__(self, *, knowbe4_conn_id: str = KnowBe4Hook.default_conn_name,
                 knowbe4_events_conn_id: str = KnowBe4EventsHook.default_conn_name, rules_path: str | None = None,
                 campaigns_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        self.knowbe4_conn_id = knowbe4_conn_id
        self.knowbe4_events_conn_id = knowbe4_events_conn_id
        self.rules_path = rules_path
        self.campaigns_file = campaigns_path

    def execute(self, context) -> dict[str, Any]:
        campaigns = campaign_file(self.campaigns_file, self.rules_path)
        if not campaigns.ksat_events.enabled:
            raise AirflowSkipException("ksat_events.enabled is false in the campaign file")
        hook = KnowBe4EventsHook(self.knowbe4_events_conn_id)
        try:
            hook.connection  # noqa: B018 - does it exist?
        except AirflowNotFoundException:
            raise AirflowSkipException(f"no connection {self.knowbe4_events_conn_id!r} (type knowbe4_events): "
                                       "KSAT events are not pushed") from None
        seats = hook.events_settings.seats or KnowBe4Hook(self.knowbe4_conn_id).account()["number_of_seats"]
        tenant, engine = self.tenant_and_engine()
        result = push_events(engine, tenant, campaigns, hook, daily_quota=CALLS_PER_SEAT_PER_DAY * seats)
        if result.refused:
            raise AirflowFailException(result.refused)
        if result.failures:
            shown = "\n".join(result.failures[:20])
            raise AirflowException(f"{len(result.failures)} KSAT event(s) refused by KnowBe4 (recorded as failed "
                                   f"in ksat_event):\n{shown}")
        return {**result.as_dict(), "seats": seats}

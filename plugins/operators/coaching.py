"""Operators of detection and coaching: evaluate detection rules, then plan and send SecurityTips."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators.channels import senders_for
from operators.mapping import _TenantOperator
from securitycoach.coaching.campaigns import CampaignError, load_campaigns
from securitycoach.coaching.outbox import plan_deliveries, send_due, tip_templates
from securitycoach.detection.catalog import CatalogError, load_catalog
from securitycoach.detection.engine import detect
from securitycoach.paths import campaigns_path, detection_rules_path


def _catalog(path: str | None):
    try:
        return load_catalog(path or detection_rules_path())
    except CatalogError as exc:
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


class DeliverTipsOperator(_TenantOperator):
    """Plan outbox rows for new detections per campaign, then send the due ones (each once).

    Runs one at a time per DAG (``max_active_tis_per_dag=1``) so the delivery limit is checked
    and claimed by a single worker. Fails at the end, after recording every outcome, if a tip was
    refused for good (HTTP 4xx, SMTP 5xx) or ran out of attempts.
    """

    def __init__(self, *, rules_path: str | None = None, campaigns_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        self.rules_path = rules_path
        self.campaigns_file = campaigns_path

    def execute(self, context) -> dict[str, Any]:
        templates = tip_templates()
        try:
            campaigns = load_campaigns(self.campaigns_file or campaigns_path(), _catalog(self.rules_path), templates)
        except CampaignError as exc:
            raise AirflowFailException(str(exc)) from None
        tenant, engine = self.tenant_and_engine()
        try:
            planned = plan_deliveries(engine, tenant, campaigns, templates)
        except CampaignError as exc:
            raise AirflowFailException(str(exc)) from None
        sent = send_due(engine, tenant, campaigns, senders_for(campaigns))
        if sent.failures:
            shown = "\n".join(sent.failures[:20])
            raise AirflowException(f"{len(sent.failures)} SecurityTip(s) could not be delivered (recorded as "
                                   f"failed in the delivery table):\n{shown}")
        return {"planned": planned.planned, "sent": sent.by_status}

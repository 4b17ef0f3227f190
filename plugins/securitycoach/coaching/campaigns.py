"""Real-time coaching campaigns (YAML): which detections send which SecurityTip, how, how often.

A campaign names detection rules (keys, or patterns such as ``code42-alert-rule:*``), the KSAT
groups it targets (none = every mapped user), a channel (email over an SMTP connection, or a chat
incoming webhook over an HTTP connection), a message template and a delivery limit. In test mode
it records the tips it would send and sends nothing. The file is validated whole against the
detection rule catalog and the template folder; errors name file, campaign and field.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from securitycoach.detection.catalog import Catalog
from securitycoach.yamlfile import load_model

ALERT_RULE_PREFIX = "code42-alert-rule:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeliveryLimit(_Strict):
    minutes_between: int = Field(default=20, ge=0, le=7 * 24 * 60)  # per user and campaign
    daily_cap: int = Field(default=3, ge=1, le=100)  # tips per user, campaign and UTC day


class WebhookChannel(_Strict):
    """A Slack/Teams incoming webhook. The connection's host is the webhook's site, its password
    the secret rest of the URL (``services/T.../B.../...``), so Airflow masks it in logs."""

    type: Literal["webhook"]
    conn_id: str = Field(min_length=1)


class EmailChannel(_Strict):
    type: Literal["email"]
    conn_id: str = Field(min_length=1)
    from_email: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")


Channel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="type")]


class Campaign(_Strict):
    name: str = Field(min_length=1, max_length=160)
    enabled: bool = True
    rules: list[str] = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)
    test_mode: bool = False
    delivery_limit: DeliveryLimit = Field(default_factory=DeliveryLimit)
    channel: Channel
    subject: str = "SecurityTip: {{ rule.lesson_title }}"
    template: str = Field(min_length=1)

    def covers(self, rule_key: str) -> bool:
        return any(fnmatchcase(rule_key, pattern) for pattern in self.rules)


class CampaignFile(_Strict):
    version: Literal[1]
    # Detections older than this when a campaign first sees them are recorded, not delivered
    # (a backfill of last month must not coach people today).
    freshness_hours: float = Field(default=24, gt=0, le=24 * 30)
    campaigns: list[Campaign] = Field(min_length=1)

    @property
    def enabled(self) -> list[Campaign]:
        return [c for c in self.campaigns if c.enabled]

    def by_name(self) -> dict[str, Campaign]:
        return {c.name: c for c in self.campaigns}


class CampaignError(ValueError):
    pass


def load_campaigns(path: str | Path, catalog: Catalog, templates: jinja2.Environment) -> CampaignFile:
    """Read and validate the campaign file; raises ``CampaignError`` naming file, campaign, field."""
    path = Path(path)
    spec = load_model(path, CampaignFile, what="campaign file", list_key="campaigns", error=CampaignError)
    problems = []
    names = [c.name for c in spec.campaigns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"campaign names must be unique; repeated: {repeated}")
    keys = [r.rule_key for r in catalog.rules]
    for index, campaign in enumerate(spec.campaigns, 1):
        where = f"campaign {index} ({campaign.name!r})"
        for pattern in campaign.rules:
            if not pattern.startswith(ALERT_RULE_PREFIX) and not any(fnmatchcase(k, pattern) for k in keys):
                problems.append(f"{where}: rules: {pattern!r} matches no rule of {catalog.path.name} "
                                f"(keys: {', '.join(keys)}; Code42 alert rules: {ALERT_RULE_PREFIX}<id> or "
                                f"{ALERT_RULE_PREFIX}*)")
        for field_name, source in (("template", None), ("subject", campaign.subject)):
            try:
                if source is None:
                    templates.get_template(campaign.template)
                else:
                    templates.from_string(source)
            except jinja2.TemplateNotFound:
                problems.append(f"{where}: template: {campaign.template!r} is not in {templates.loader.searchpath}")
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"{where}: {field_name}: Jinja syntax error line {exc.lineno}: {exc.message}")
    if problems:
        raise CampaignError("\n".join(f"{path}: {p}" for p in problems))
    return spec

"""Real-time coaching campaigns (YAML): which detections send which SecurityTip, how, how often.

A campaign names detection rules (keys, or patterns such as ``code42-alert-rule:*``), the KSAT
groups it targets (none = every mapped user), a channel that reaches the person alone (email over
an SMTP connection, or a Slack direct message over a ``slack`` connection), a message template and
a delivery limit. In test mode it records the tips it would send and sends nothing.

A shared chat incoming webhook (``type: webhook``, ``audience: team``) carries no person: it is
only the channel of the optional ``team_digest`` (counts per campaign and rule after each run that had tips due). A
campaign on a webhook, or a digest template that uses a person's or a detection's fields, is
refused. The file is validated whole against the detection rule catalog and the template folder;
errors name file, campaign and field.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Literal

import jinja2
import jinja2.meta
from pydantic import Field

from securitycoach.detection.catalog import Catalog
from securitycoach.yamlfile import StrictModel, load_model

ALERT_RULE_PREFIX = "code42-alert-rule:"


class DeliveryLimit(StrictModel):
    minutes_between: int = Field(default=20, ge=0, le=7 * 24 * 60)  # per user and campaign
    daily_cap: int = Field(default=3, ge=1, le=100)  # tips per user, campaign and UTC day


class WebhookChannel(StrictModel):
    """A Slack/Teams incoming webhook: one shared channel, so ``audience: team`` only (the team
    digest; never a person's tip). The connection's host is the webhook's site, its password the
    secret rest of the URL (``services/T.../B.../...``), so Airflow masks it in logs."""

    type: Literal["webhook"]
    conn_id: str = Field(min_length=1)
    audience: Literal["team"] = "team"


class SlackDMChannel(StrictModel):
    """A Slack direct message to the person (Web API: users.lookupByEmail with the KSAT email,
    conversations.open, chat.postMessage) over a ``slack`` connection whose password is the bot
    token (scopes users:read.email, im:write, chat:write)."""

    type: Literal["slack_dm"]
    conn_id: str = Field(min_length=1)


class EmailChannel(StrictModel):
    type: Literal["email"]
    conn_id: str = Field(min_length=1)
    from_email: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")


Channel = Annotated[SlackDMChannel | EmailChannel | WebhookChannel, Field(discriminator="type")]
PERSON_FIELDS = ("user", "detection")  # template variables that are about one person


class Campaign(StrictModel):
    name: str = Field(min_length=1, max_length=160)
    enabled: bool = True
    rules: list[str] = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)
    test_mode: bool = False
    delivery_limit: DeliveryLimit = Field(default_factory=DeliveryLimit)
    channel: Channel
    subject: str = "SecurityTip: {{ rule.lesson_title }}"
    template: str = Field(min_length=1)
    # A subject whose triggered Code42 alert carries an Instructor lessonId was already taught by
    # Code42 Instructor: its tip is recorded as covered_by_instructor, not sent.
    skip_instructor_covered: bool = True
    # People under investigation: actors on these Code42 watchlists (id, custom title or list type
    # such as DEPARTINGEMPLOYEE; case-insensitive) are not coached. Needs Read on Watchlists: without
    # it the campaign sends nothing that run (fail safe).
    suppress_watchlists: list[str] = Field(default_factory=list)

    def covers(self, rule_key: str) -> bool:
        return any(fnmatchcase(rule_key, pattern) for pattern in self.rules)


class TeamDigest(StrictModel):
    """After each delivery run with something to tell, one post to a shared team channel: counts
    per campaign and rule and where the report is; its template sees only ``digest``."""

    enabled: bool = True
    channel: WebhookChannel
    template: str = Field(default="team_digest.txt.j2", min_length=1)
    # Shown as the report's place; "{tenant_id}" is replaced. Default: the reports folder's path.
    report_url: str | None = None


class Triage(StrictModel):
    """Code42 triage states that clear a subject: its tip is withdrawn (checked when planned and
    again just before it is sent, from the warehouse as this run's load left it)."""

    cleared_session_states: list[str] = Field(default_factory=lambda: ["CLOSED_FP", "CLOSED_TP_BENIGN"])
    # Alert states (OPEN, PENDING, IN_PROGRESS, RESOLVED) carry no verdict: RESOLVED is also a
    # confirmed true positive, so none is cleared by default; an alert whose session is in a
    # cleared session state is withdrawn whatever its own state.
    cleared_alert_states: list[str] = Field(default_factory=list)


class RiskLevels(StrictModel):
    """Code42 severity -> KnowBe4 ``risk_level`` (-10..10; positive raises the Personal Risk Score)."""

    no_risk: int = Field(default=0, ge=-10, le=10)  # on the timeline, no effect on the score
    low: int = Field(default=2, ge=-10, le=10)
    moderate: int = Field(default=4, ge=-10, le=10)
    high: int = Field(default=7, ge=-10, le=10)
    critical: int = Field(default=10, ge=-10, le=10)

    def of(self, severity: int) -> int:
        names = ("no_risk", "low", "moderate", "high", "critical")
        return getattr(self, names[max(0, min(4, severity))])


class KsatEvents(StrictModel):
    """Detections pushed to the KSAT user's Events Timeline (KnowBe4 User Event API), once each.

    ``push: coached`` (default): only detections a campaign sent a SecurityTip for; ``all``: every
    detection of a mapped, active KSAT user. Detections older than ``freshness_hours`` when first
    seen are not pushed unless ``backfill``. A detection Code42 triage clears after it was pushed
    has its event deleted (``DELETE /events/{id}``)."""

    enabled: bool = True
    push: Literal["coached", "all"] = "coached"
    event_type: str = Field(default="Code42 Incydr detection", min_length=1, max_length=100)
    event_type_description: str = "Behaviour Code42 Incydr detected, pushed by the SecurityCoach integration"
    source: str = Field(default="Code42 Incydr", min_length=1, max_length=100)
    risk_levels: RiskLevels = Field(default_factory=RiskLevels)
    risk_decay_mode: Literal[0, 1] | None = None  # KnowBe4's default when unset
    risk_expire_days: int | None = Field(default=None, ge=1, le=3650)  # risk_expire_date = occurred + days
    # Code42's exfiltration summary names files: off by default, the description is rule + behaviour.
    include_summary: bool = False
    backfill: bool = False  # also push detections older than freshness_hours when first seen


class Code42Notes(StrictModel):
    """Write back to Code42: one note per sent SecurityTip on its session ("SecurityTip sent by
    campaign X at T (delivery key K)"). Off by default: it needs the API client's "Alerts and
    Sessions" update permission, beyond the Read ones the integration otherwise needs."""

    enabled: bool = False


class CampaignFile(StrictModel):
    version: Literal[1]
    # Detections older than this when a campaign first sees them are recorded, not delivered
    # (a backfill of last month must not coach people today).
    freshness_hours: float = Field(default=24, gt=0, le=24 * 30)
    campaigns: list[Campaign] = Field(min_length=1)
    triage: Triage = Field(default_factory=Triage)
    team_digest: TeamDigest | None = None
    ksat_events: KsatEvents = Field(default_factory=KsatEvents)
    code42_notes: Code42Notes = Field(default_factory=Code42Notes)

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
        if isinstance(campaign.channel, WebhookChannel):
            uses = _template_fields(templates, campaign.template) | _template_fields(templates, None, campaign.subject)
            person = sorted(uses & set(PERSON_FIELDS))
            problems.append(
                f"{where}: channel: type 'webhook' is a shared team channel (audience: team), and a campaign "
                f"sends one person their own SecurityTip (template {campaign.template!r}"
                + (f" uses {', '.join(person)}" if person else "")
                + "): use type slack_dm or email; a team channel gets only the team_digest")
    if spec.team_digest is not None:
        problems.extend(_digest_problems(spec.team_digest, templates))
    if problems:
        raise CampaignError("\n".join(f"{path}: {p}" for p in problems))
    return spec


def _template_fields(templates: jinja2.Environment, name: str | None, source: str | None = None) -> set[str]:
    """The top-level variables a template (by name, or its source) uses; empty if it cannot be read."""
    try:
        if source is None:
            source = templates.loader.get_source(templates, name)[0]
        return jinja2.meta.find_undeclared_variables(templates.parse(source))
    except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError):
        return set()


def _digest_problems(digest: TeamDigest, templates: jinja2.Environment) -> list[str]:
    where = "team_digest"
    try:
        templates.get_template(digest.template)
    except jinja2.TemplateNotFound:
        return [f"{where}: template: {digest.template!r} is not in {templates.loader.searchpath}"]
    except jinja2.TemplateSyntaxError as exc:
        return [f"{where}: template: Jinja syntax error line {exc.lineno}: {exc.message}"]
    other = sorted(_template_fields(templates, digest.template) - {"digest"})
    if other:
        return [(f"{where}: template: {digest.template!r} uses {', '.join(other)}; a team channel carries no "
                 f"person: the digest template sees only 'digest' (counts per campaign and rule, the report)")]
    return []

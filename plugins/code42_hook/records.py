"""Response records of the Incydr API (pydantic v2).

Fields are snake_case with the API's camelCase as aliases; unknown keys are kept (``extra``) so a
newer API does not break the sync. Epoch-ms times become timezone-aware UTC datetimes. Every
record also keeps the item exactly as the API sent it (``record.raw``, from ``apiclient.records``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from apiclient.records import Record as BaseRecord

# Epoch milliseconds on the wire. Numbers are read as milliseconds by pydantic-core itself
# (``val_temporal_unit``), into timezone-aware UTC: no Python call per timestamp.
EpochMs = datetime


_CODE42 = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow",
                     val_temporal_unit="milliseconds")


class Part(BaseModel):
    """A nested part of a record (indicators, scores, states...): validated, no copy of the item."""

    model_config = _CODE42


class Record(BaseRecord):
    """A Code42 response record: camelCase on the wire, epoch-ms times (the item kept: ``raw``)."""

    model_config = _CODE42


class RiskIndicator(Part):
    id: str | None = None
    name: str | None = None
    weight: int | None = None
    event_count: int | None = None


class Score(Part):
    score: int | None = None
    severity: int | None = None
    source_timestamp: EpochMs | None = None


class SessionState(Part):
    state: str | None = None
    state_v2: str | None = Field(default=None, alias="stateV2")
    source_timestamp: EpochMs | None = None
    user_id: str | None = None


class TriggeredAlert(Part):
    alert_id: str
    rule_id: str | None = None
    rule_name: str | None = None
    lesson_id: str | None = None


class Session(Record):
    session_id: str
    tenant_id: str
    actor_id: str | None
    actor_name: str | None = None
    user_id: str | None = None
    type: str | None = None
    begin_time: EpochMs
    end_time: EpochMs | None = None
    first_observed: EpochMs | None = None
    last_updated: EpochMs
    no_risk_events: int | None = None
    low_events: int | None = None
    moderate_events: int | None = None
    high_events: int | None = None
    critical_events: int | None = None
    context_summary: str | None = None
    exfiltration_summary: str | None = None
    risk_indicators: list[RiskIndicator]
    scores: list[Score]
    states: list[SessionState]
    triggered_alerts: list[TriggeredAlert]
    notes: list[dict] | None = None
    content_inspection_results: dict | None = None


class Alert(Record):
    id: str
    tenant_id: str
    type: str | None = Field(default=None, alias="type")
    created_at: datetime
    state: str | None = None
    state_last_modified_by: str | None = None
    state_last_modified_at: datetime | None = None
    name: str | None = None
    description: str | None = None
    actor: str | None = None
    actor_id: str | None = None
    target: str | None = None
    severity: str | None = None
    risk_severity: str | None = None
    rule_id: str | None = None
    watchlists: list[dict] | None = None


class AlertRule(Record):
    id: str
    name: str
    description: str | None = None
    severity: str | None = None
    is_enabled: bool | None = None
    source: str | None = None
    vectors: dict | None = None
    filters: dict | None = None
    education: dict | None = None
    notifications: dict | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    modified_at: datetime | None = None
    modified_by: str | None = None
    is_system_rule: bool | None = None


class Actor(Record):
    actor_id: str
    name: str | None = None
    alternate_names: list[str] | None = None
    country: str | None = None
    department: str | None = None
    division: str | None = None
    employee_type: str | None = None
    end_date: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    in_scope: bool | None = None
    locality: str | None = None
    manager_actor_id: str | None = None
    notes: str | None = None
    parent_actor_id: str | None = None
    start_date: str | None = None
    title: str | None = None


class FileEvent(Record):
    timestamp: datetime = Field(alias="@timestamp")
    event: dict
    user: dict | None = None
    file: dict | None = None
    destination: dict | None = None
    source: dict | None = None
    risk: dict | None = None


class Watchlist(Record):
    """``GET /v2/watchlists`` item: ``listType`` names the kind (``DEPARTINGEMPLOYEE``...,
    ``CUSTOM``); only a custom list has a ``title``."""

    watchlist_id: str
    list_type: str | None = None
    title: str | None = None
    description: str | None = None
    tenant_id: str | None = None

    @property
    def label(self) -> str:
        return self.title or self.list_type or self.watchlist_id


class WatchlistMember(Record):
    """``GET /v2/watchlists/{id}/members`` item (the API spells ``actorname`` in lower case)."""

    actor_id: str
    actor_name: str | None = Field(default=None, alias="actorname")
    added_time: datetime | None = None

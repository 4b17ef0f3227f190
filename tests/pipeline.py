"""The sync pipeline's steps in the order the DAG tasks run them, for tests that need warehouse data
without the scheduler around it (the DAG itself is exercised in test_sync_dag)."""

from __future__ import annotations

from datetime import datetime, timedelta

from code42_hook import Code42Hook
from knowbe4_hook import KnowBe4Hook
from securitycoach import sync
from securitycoach.detection.catalog import Catalog, load_catalog
from securitycoach.detection.engine import detect
from securitycoach.mapping.rules import load_rules
from securitycoach.mapping.store import refresh_ksat_directory, remap
from securitycoach.paths import detection_rules_path, mapping_rules_path


def use_sandbox(monkeypatch, sandbox, **code42_extra) -> tuple[Code42Hook, KnowBe4Hook]:
    """Point the default connections (Code42, KnowBe4, webhook and SMTP sinks) at ``sandbox``."""
    for name, value in sandbox.airflow_connections(retry_backoff=0.05, **code42_extra).items():
        monkeypatch.setenv(name, value)
    return Code42Hook(), KnowBe4Hook()


def load_reference(engine, code42: Code42Hook, knowbe4: KnowBe4Hook) -> str:
    """What the daily reference DAG does: alert rules, actors, KSAT directory, user mapping."""
    tenant = code42.tenant_id
    sync.refresh_alert_rules(engine, code42, tenant_id=tenant)
    sync.refresh_actors(engine, code42, tenant_id=tenant)
    refresh_ksat_directory(engine, knowbe4, tenant_id=tenant)
    remap(engine, tenant, load_rules(mapping_rules_path()))
    return tenant


def sync_interval(engine, code42: Code42Hook, end: datetime, *, hours: int = 1,
                  lookback: timedelta = timedelta(hours=24)) -> None:
    """One sync run for [end - hours, end) through the core's interval runner: extract (sessions with
    look-back), load, new actors."""
    sync.Interval(tenant_id=code42.tenant_id, run_key=f"run-{end:%Y%m%dT%H%M}", start=end - timedelta(hours=hours),
                  end=end, lookback_hours=lookback // timedelta(hours=1)).run(engine, code42)


def default_catalog() -> Catalog:
    return load_catalog(detection_rules_path())


def hourly_ends(anchor: datetime, hours: int) -> list[datetime]:
    last = anchor.replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def run_detection(engine, tenant: str, catalog: Catalog | None = None, now: datetime | None = None):
    return detect(engine, tenant, catalog or default_catalog(), now=now)

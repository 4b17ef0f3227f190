"""Extraction to staging: batches are written by a writer thread while the next is read; a failed
write stops the extraction early, and what was staged before it is whole batches only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from fault_helpers import InjectedFailure, arm, make_hook

from securitycoach import sync
from securitycoach.streams import STREAMS
from securitycoach.warehouse import schema as t

BATCH = 50  # one page of sessions


def _staged(engine) -> list[str]:
    s = t.staging_record.c
    with engine.connect() as conn:
        return conn.execute(sa.select(s.record_id).where(s.stream == "sessions")).scalars().all()


def test_a_failed_staging_write_stops_the_extraction(warehouse, clean_sandbox, monkeypatch):
    sb = clean_sandbox
    hook = make_hook(monkeypatch, sb)
    end = sb.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=30)
    kwargs = {"tenant_id": hook.tenant_id, "start": start, "end": end, "batch_size": BATCH}

    before = sb.stats()["data_requests"]
    total = sync.extract_to_staging(warehouse, hook, STREAMS["sessions"], run_key="whole", **kwargs)
    whole_requests = sb.stats()["data_requests"] - before
    assert total > 10 * BATCH, "the range must span many batches for this test to mean anything"
    assert len(_staged(warehouse)) == total
    with warehouse.begin() as conn:
        conn.execute(t.staging_record.delete())

    def refuse():
        raise InjectedFailure("the warehouse refused the 2nd staging write")

    arm(warehouse, "INSERT INTO stg_code42_record", 2, refuse)
    before = sb.stats()["data_requests"]
    with pytest.raises(InjectedFailure, match="2nd staging write"):
        sync.extract_to_staging(warehouse, hook, STREAMS["sessions"], run_key="cut", **kwargs)
    cut_requests = sb.stats()["data_requests"] - before
    # the first batch was committed on its own, the refused one rolled back whole
    assert len(_staged(warehouse)) == BATCH
    # reading stopped within a batch or two of the failure (plus the pages already in flight and the
    # count of the has_alerts=true listing, asked before the false one is read)
    assert cut_requests <= 3 + 1 + 1 + hook.settings.pages_in_flight < whole_requests, (
        cut_requests, whole_requests)

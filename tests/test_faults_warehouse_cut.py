"""The warehouse connection cut mid-load: a loopback TCP proxy between the pipeline and PostgreSQL.

Four hourly runs (the sandbox clock moves an hour between them, so every run has new and changed
sessions to write), small batches. During the third run the proxy forwards the first 64 bytes of
a chosen statement and then cuts every connection: PostgreSQL receives half a statement and an
end of stream, the pipeline gets a connection error. The trigger is an SQLAlchemy
``before_cursor_execute`` listener counting the statements, so the cut lands at the same write on
every run (no timing involved).

What must hold:
- the run fails with the connection error, and nothing is half-written: the warehouse (read
  through a healthy connection) equals a reference run that failed just before the *first* write
  of the cut batch (exactly the batches committed before it are there, each whole);
- after the proxy is restored, rerunning the failed interval and running the last one through
  the *same* engine (its pool must drop the dead connection) gives exactly the digest of a
  clean PostgreSQL run of the four intervals.
"""

from __future__ import annotations

import fault_helpers
import pytest
import sqlalchemy as sa
from fault_helpers import arm, diff_counts, failed_run_digest, hourly_ends, make_hook, run_hours
from tcp_proxy import TcpProxy

from conftest import PG_ADMIN_URL
from securitycoach.warehouse.digest import table_digests

pytestmark = pytest.mark.faults

BATCH = 10
CUT_RUN = 2  # the third of four runs

# (statement prefix, which of them in the cut run, the reference's statement prefix): a write of
# the extract (staging: one statement per batch) and the last write of a load batch (after the
# batch deleted and rewrote the sessions' children). The reference fails before the *first* write
# of the same batch: the state a whole-batch transaction must leave, whatever the batch does.
CUT_POINTS = {
    "extract: 3rd staging batch": ("INSERT INTO stg_code42_record ", 3, "INSERT INTO stg_code42_record "),
    "load: 2nd sessions batch, at its last write": ("INSERT INTO code42_session (", 2,
                                                    "DELETE FROM code42_session_risk_indicator "),
}


pg_url = fault_helpers.pg_url  # the fixture


@pytest.mark.parametrize("point", sorted(CUT_POINTS))
def test_warehouse_connection_cut_mid_load_fails_cleanly_and_a_rerun_is_clean(point, pg_url, clean_sandbox,
                                                                              monkeypatch):
    prefix, nth, reference_prefix = CUT_POINTS[point]
    sb = clean_sandbox
    hook = make_hook(monkeypatch, sb)
    ends = hourly_ends(sb, 4)

    clean = pg_url()
    run_hours(clean, hook, sb, ends, batch_size=BATCH)
    clean_digest = table_digests(clean)
    assert clean_digest["code42_session"][0] > 40 and clean_digest["code42_alert"][0] > 0

    # The reference for "nothing half-written": the same write fails by an exception in the transaction.
    sb.reset()
    reference_digest = failed_run_digest(pg_url(), hook, sb, ends, CUT_RUN, reference_prefix, nth, batch_size=BATCH)

    sb.reset()
    with TcpProxy(("127.0.0.1", sa.engine.make_url(PG_ADMIN_URL).port or 5432)) as proxy:
        proxied = pg_url(port=proxy.port)
        run_hours(proxied, hook, sb, ends[:CUT_RUN], batch_size=BATCH)
        before = table_digests(proxied)
        seen = arm(proxied, prefix, nth, lambda: proxy.cut_after(64))  # half of the statement gets through
        with pytest.raises(sa.exc.OperationalError, match=r"closed|terminat|EOF|connection"):
            run_hours(proxied, hook, sb, ends[:CUT_RUN + 1], first=CUT_RUN, batch_size=BATCH)
        assert len(seen) == nth and proxy.cuts >= 1

        after_cut = table_digests(pg_url(schema=proxied.schema_name))  # read through a healthy connection
        assert after_cut == reference_digest, diff_counts(reference_digest, after_cut)
        if prefix.startswith("INSERT INTO code42_session"):
            assert after_cut != before  # batches before the cut were committed, the cut one was not
        else:
            assert after_cut == before  # the extract touches no fact table

        proxy.restore()
        run_hours(proxied, hook, sb, ends, first=CUT_RUN, batch_size=BATCH)  # the scheduler's retry, then the next run
        rerun = table_digests(proxied)
    assert rerun == clean_digest, diff_counts(clean_digest, rerun)
    rows = sum(n for n, _ in rerun.values())
    lost = sum(max(0, clean_digest[t][0] - rerun[t][0]) for t in clean_digest)
    extra = sum(max(0, rerun[t][0] - clean_digest[t][0]) for t in clean_digest)
    print(f"\n[warehouse cut, {point}] runs=4+1 rerun, proxy cuts={proxy.cuts} refused={proxy.refused}; "
          f"rows compared={rows} lost={lost} duplicated={extra}")


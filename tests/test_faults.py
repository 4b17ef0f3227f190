"""Fault injection: the sync pipeline over several intervals against the sandbox's fault knobs.

After each fault the warehouse must equal a clean run of the same intervals, compared table by
table with ``table_digests``. Transient faults are survived inside the run; permanent ones fail
with a message naming endpoint, page and cause, leave nothing half-written, and a rerun after
the fault clears gives the clean warehouse. The pipeline here is the operators' own sequence of
core calls (extract to staging, load, new actors), without the scheduler around it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pipeline import sync_interval

from code42_hook import Code42Error, Code42Hook
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse.digest import table_digests

pytestmark = pytest.mark.faults

INTERVALS = 4
LOOKBACK = timedelta(hours=24)


def _hook(monkeypatch, sandbox, **extra) -> Code42Hook:
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_FAULTS", json.dumps({
        "conn_type": "code42", "login": sandbox.client_id, "password": sandbox.client_secret,
        "host": sandbox.base_url, "extra": {"rate_limit_per_minute": 6000, "retry_backoff": 0.05, **extra}}))
    return Code42Hook("code42_faults")


def _ends(sandbox):
    last = sandbox.anchor.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    return [last - timedelta(hours=h) for h in range(INTERVALS - 1, -1, -1)]


def run_sync(engine, hook, ends) -> None:
    """One hourly run per interval end, as the DAG's tasks do it."""
    for end in ends:
        sync_interval(engine, hook, end, lookback=LOOKBACK)


def _warehouse(tmp_path, name):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / name}.db")
    migrate(engine)
    return engine


@pytest.fixture
def clean_digest(clean_sandbox, monkeypatch, tmp_path):
    engine = _warehouse(tmp_path, "clean")
    run_sync(engine, _hook(monkeypatch, clean_sandbox), _ends(clean_sandbox))
    digest = table_digests(engine)
    assert digest["code42_session"][0] > 50 and digest["code42_alert"][0] > 0 and digest["code42_actor"][0] > 5
    return digest


TRANSIENT = {
    "429 burst with Retry-After": {"fail_next": [429, 429, 429], "retry_after": 1},
    "429 every 7th request": {"fail_429_every": 7, "retry_after": 1},
    "5xx burst": {"fail_next": [503, 500, 502, 503, 504]},
    "5xx at random, 20 %": {"fail_5xx_rate": 0.2},
    "dropped connections": {"drop_next": 3},
    "read timeouts": {"stall_next": 3, "stall_ms": 3000},
    "truncated JSON every 3rd page": {"malformed_every": 3},
    # Two seconds: short enough to expire many times in a run, long enough that a just-fetched token
    # still reaches the server valid on a loaded 2-core machine (one second flaked there).
    "token expiring every 2 seconds": {"token_ttl": 2, "latency_ms": 150},
}
HOOK_EXTRAS = {"read timeouts": {"read_timeout": 1.0}}  # the client gives up on a stalled answer


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_faults_are_survived_with_the_clean_result(fault, clean_digest, clean_sandbox, monkeypatch,
                                                             tmp_path):
    clean_sandbox.reset()
    clean_sandbox.set_faults(**TRANSIENT[fault])
    hook = _hook(monkeypatch, clean_sandbox, **HOOK_EXTRAS.get(fault, {}))
    engine = _warehouse(tmp_path, "faulty")
    run_sync(engine, hook, _ends(clean_sandbox))
    injected = clean_sandbox.stats()
    assert hook.stats.retries > 0 or hook.stats.token_fetches > 1, (fault, injected)
    assert table_digests(engine) == clean_digest  # no row lost, none doubled, none different


NO_ANSWER = (r"GET /v1/sessions page 0: no response: Base URL \S+ did not answer within the read timeout "
             r"\(ReadTimeout\) after 1 retries")
PERMANENT = {
    "item missing a required key": ({"missing_key_every": 1}, {}, r"/v1/sessions page 0: .*lastUpdated"),
    "every page truncated": ({"malformed_every": 1}, {"max_retries": 2}, r"/v1/sessions page 0: .*not valid JSON"),
    "server down": ({"fail_5xx_rate": 1.0}, {"max_retries": 2}, r"GET /v1/sessions page 0: HTTP 50[03]: still failing after 2 retries"),
    "server never answers": ({"stall_next": 1000, "stall_ms": 2000}, {"max_retries": 1, "read_timeout": 0.5},
                             NO_ANSWER),
}


@pytest.mark.parametrize("fault", sorted(PERMANENT))
def test_permanent_faults_fail_clearly_then_a_rerun_gives_the_clean_result(fault, clean_digest, clean_sandbox,
                                                                           monkeypatch, tmp_path):
    knobs, extra, message = PERMANENT[fault]
    ends = _ends(clean_sandbox)
    engine = _warehouse(tmp_path, "faulty")
    run_sync(engine, _hook(monkeypatch, clean_sandbox), ends[:2])  # the first intervals went fine
    before = table_digests(engine)
    clean_sandbox.set_faults(**knobs)
    with pytest.raises(Code42Error, match=message):
        run_sync(engine, _hook(monkeypatch, clean_sandbox, **extra), ends[2:])
    assert table_digests(engine) == before  # the failed run changed no fact row
    clean_sandbox.reset()
    run_sync(engine, _hook(monkeypatch, clean_sandbox), ends[2:])  # the scheduler's retry / a rerun
    assert table_digests(engine) == clean_digest


def test_secrets_and_tokens_never_reach_dag_logs(airflow_db, clean_sandbox, monkeypatch, tmp_path, capfd, caplog):
    """Run the real DAG (with retries to log about) and grep everything it wrote."""
    import logging
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    from conftest import ROOT

    caplog.set_level(logging.DEBUG)
    for name, value in clean_sandbox.airflow_connections(retry_backoff=0.05).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}))
    clean_sandbox.set_faults(fail_next=[401, 429, 503], retry_after=1)
    run = DagBag(dag_folder=str(ROOT / "dags")).get_dag("code42_sync").test(logical_date=_ends(clean_sandbox)[-1])
    assert run.state == "success"
    out, err = capfd.readouterr()
    files = "".join(p.read_text(errors="replace") for p in Path(airflow_db).rglob("*.log"))
    everything = out + err + caplog.text + files
    assert "retry" in everything  # the faults were logged ...
    assert clean_sandbox.client_secret not in everything  # ... without the client secret,
    assert clean_sandbox.ksat_key not in everything  # the KnowBe4 key, the chat webhook's secret
    assert clean_sandbox.WEBHOOK_SECRET not in everything
    assert "eyJ" not in everything  # ... or any JWT (their base64 header starts so)
    # nor does the warehouse (audit rows, deliveries, raw payloads) or the HTML report hold them
    from securitycoach.html_report import write_all_reports
    from securitycoach.report import write_sync_report

    warehouse = create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    reports = [write_sync_report(warehouse, tmp_path / "r.html"), *write_all_reports(warehouse, out_dir=tmp_path)]
    assert len(reports) == 2  # the sync report and the tenant's HTML report
    for stored in (tmp_path / "wh.db").read_bytes().decode("latin-1"), *(r.read_text() for r in reports):
        for secret in (clean_sandbox.client_secret, clean_sandbox.ksat_key, clean_sandbox.WEBHOOK_SECRET, "eyJ"):
            assert secret not in stored

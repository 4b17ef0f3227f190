"""Load: 20 concurrent clients hammer the sandbox (127.0.0.1 only) while a sync run proceeds.

The clients (threads, each with its own ``requests`` session and token, from another API client
than the sync's) page sessions, query alerts, search actors, read rules and the KnowBe4 directory
as fast as they can. They start before the sync and stop when it is done, or after 20 s at the
latest. The sync's four hourly runs must still give exactly the clean warehouse (same digest),
and the load must have been real: hundreds of requests answered while the sync ran.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import pytest
import requests
from fault_helpers import diff_counts, fresh_warehouse, hourly_ends, make_hook, run_sync

from securitycoach.warehouse.digest import table_digests

pytestmark = pytest.mark.faults

CLIENTS = 20
MAX_SECONDS = 20.0
LOAD_CLIENT_ID = "sandbox-no-rules"  # another API client: its own rate budget, Alerts and Sessions read


class LoadClients:
    """``CLIENTS`` threads hammering the sandbox until ``stop()`` or the deadline."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.warm = threading.Event()  # every client has had an answer
        self._answered: set[int] = set()
        self._deadline = time.monotonic() + MAX_SECONDS
        self._threads = [threading.Thread(target=self._client, args=(k,), name=f"load-{k}", daemon=True)
                         for k in range(CLIENTS)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop"

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.statuses.values()) + sum(self.errors.values())

    def _client(self, k: int) -> None:
        sb, http = self.sandbox, requests.Session()
        try:
            token = http.post(f"{sb.base_url}/v1/oauth", auth=(LOAD_CLIENT_ID, sb.client_secret),
                              timeout=(5, 30)).json()["access_token"]
            code42 = {"Authorization": f"Bearer {token}"}
            ksat = {"Authorization": f"Bearer {sb.ksat_key}"}
            anchor = sb.anchor_ms
            for i in itertools.count():
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    return
                kind = (k + i) % 5
                try:
                    if kind == 0:
                        response = http.get(f"{sb.base_url}/v1/sessions", headers=code42, timeout=(5, 30), params={
                            "on_or_after": anchor - (i % 7 + 2) * 86_400_000, "before": anchor,
                            "has_alerts": "false", "page_number": i % 13})
                    elif kind == 1:
                        response = http.post(f"{sb.base_url}/v1/alerts/query-alerts", headers=code42,
                                             timeout=(5, 30), json={
                                                 "tenantId": sb.tenant_id, "groupClause": "AND", "groups": [],
                                                 "pgNum": i % 3, "pgSize": 100, "srtDirection": "DESC",
                                                 "srtKey": "CreatedAt"})
                    elif kind == 2:
                        response = http.get(f"{sb.base_url}/v1/actors/actor/search", headers=code42,
                                            params={"pageSize": 50}, timeout=(5, 30))
                    elif kind == 3:
                        response = http.get(f"{sb.base_url}/v1/sessions", headers=code42, timeout=(5, 30),
                                            params={"order_by": "score", "sort_direction": "DESC",
                                                    "on_or_after": anchor - 3 * 86_400_000, "before": anchor})
                    else:
                        response = http.get(f"{sb.base_url}/v1/users", headers=ksat, timeout=(5, 30),
                                            params={"page": i % 3 + 1, "per_page": 100})
                    with self._lock:
                        self.statuses[response.status_code] += 1
                        self._answered.add(k)
                        if len(self._answered) == CLIENTS:
                            self.warm.set()
                except requests.RequestException as exc:
                    with self._lock:
                        self.errors[type(exc).__name__] += 1
        finally:
            http.close()


def test_sync_under_20_concurrent_clients_gives_the_clean_warehouse(clean_sandbox, monkeypatch, tmp_path):
    sb = clean_sandbox
    ends = hourly_ends(sb, 4)
    clean = fresh_warehouse(f"sqlite:///{tmp_path / 'clean'}.db")
    run_sync(clean, make_hook(monkeypatch, sb, "code42_load_clean"), ends)
    clean_digest = table_digests(clean)

    loaded = fresh_warehouse(f"sqlite:///{tmp_path / 'loaded'}.db")
    hook = make_hook(monkeypatch, sb, "code42_load")
    with LoadClients(sb) as load:
        assert load.warm.wait(timeout=MAX_SECONDS), "the load clients never all got an answer"
        before, started = load.requests, time.monotonic()
        run_sync(loaded, hook, ends)
        during, seconds = load.requests - before, time.monotonic() - started
        overlapped = time.monotonic() < load._deadline  # the load lasted the whole sync
    digest = table_digests(loaded)
    assert digest == clean_digest, diff_counts(clean_digest, digest)
    assert load.statuses[200] > 0 and set(load.statuses) == {200}, load.statuses
    assert not load.errors, load.errors
    assert during >= 100, f"only {during} load requests while the sync ran"
    rows = sum(n for n, _ in digest.values())
    lost = sum(max(0, clean_digest[t][0] - digest[t][0]) for t in clean_digest)
    extra = sum(max(0, digest[t][0] - clean_digest[t][0]) for t in clean_digest)
    print(f"\n[load] {CLIENTS} clients, {load.requests} load requests ({during} during the sync's "
          f"{seconds:.1f} s, load {'over the whole' if overlapped else 'over part of the'} sync), "
          f"sync requests={hook.stats.requests}; runs={len(ends)} rows compared={rows} lost={lost} duplicated={extra}")



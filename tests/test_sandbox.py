"""The sandbox itself, over HTTP: auth, permissions, paging rules, determinism, evolving sessions,
the KnowBe4 directory and its ground truth."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from incydr_sandbox.process import SandboxProcess

DAY_MS = 86_400_000


def _token(sb, client_id="sandbox-client", secret="sandbox-secret"):
    return requests.post(f"{sb.base_url}/v1/oauth", auth=(client_id, secret), timeout=10)


def _get(sb, path, token, **params):
    return requests.get(f"{sb.base_url}{path}", params=params, timeout=30,
                        headers={"Authorization": f"Bearer {token}"} if token else {})


@pytest.fixture
def token(clean_sandbox):
    return _token(clean_sandbox).json()["access_token"]


def _anchor_ms(sb):
    return sb.health["anchor_ms"]


def test_oauth_and_permissions(clean_sandbox):
    sb = clean_sandbox
    good = _token(sb)
    assert good.status_code == 200 and good.json()["token_type"] == "bearer" and good.json()["expires_in"] == 900
    assert _token(sb, secret="nope").status_code == 401
    assert _token(sb, client_id="someone-else").status_code == 401
    assert _get(sb, "/v1/sessions", None).status_code == 401
    assert _get(sb, "/v1/sessions", "not-a-token").status_code == 401
    no_rules = _token(sb, "sandbox-no-rules").json()["access_token"]
    no_sessions = _token(sb, "sandbox-no-sessions").json()["access_token"]
    assert _get(sb, "/v2/alert-rules", no_rules).status_code == 403
    assert _get(sb, "/v1/sessions", no_rules).status_code == 200
    assert _get(sb, "/v1/sessions", no_sessions).status_code == 403
    assert requests.post(f"{sb.base_url}/v1/alerts/query-alerts", json={"tenantId": sb.tenant_id}, timeout=10,
                         headers={"Authorization": f"Bearer {no_sessions}"}).status_code == 403
    assert _get(sb, "/v2/alert-rules", no_sessions).status_code == 200
    ksat = requests.get(f"{sb.base_url}/v1/users", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert ksat.status_code == 401


def test_paging_rules_and_time_ranges(clean_sandbox, token):
    sb = clean_sandbox
    end = _anchor_ms(sb) - DAY_MS
    start = end - DAY_MS
    assert _get(sb, "/v1/sessions", token, page_size=51).status_code == 400
    assert _get(sb, "/v1/actors/actor/search", token, page=0).status_code == 400  # 1-based
    assert _get(sb, "/v2/alert-rules", token, PageNumber=-1).status_code == 400  # 0-based
    seen = []
    for page in range(10):
        body = _get(sb, "/v1/sessions", token, on_or_after=start, before=end, has_alerts="false",
                    page_size=20, page_number=page).json()
        seen += body["items"]
        if len(body["items"]) < 20:
            break
    assert len(seen) == body["totalCount"] == 48  # 1440 sessions over 30 days
    assert all(start <= s["beginTime"] < end for s in seen)
    assert [s["beginTime"] for s in seen] == sorted(s["beginTime"] for s in seen)
    first = _get(sb, "/v1/actors/actor/search", token, page=1, pageSize=30).json()["actors"]
    second = _get(sb, "/v1/actors/actor/search", token, page=2, pageSize=30).json()["actors"]
    assert len(first) == 30 and len(second) == 10
    assert not {a["actorId"] for a in first} & {a["actorId"] for a in second}


def test_same_seed_and_anchor_give_identical_bytes(sandbox):
    with SandboxProcess(seed=42, anchor="2026-11-01T00:00:00Z") as other:
        pages = []
        for sb in (sandbox, other):
            tok = _token(sb).json()["access_token"]
            pages.append(_get(sb, "/v1/sessions", tok, on_or_after=0, before=2**45, has_alerts="false").content)
        assert pages[0] == pages[1]
    with SandboxProcess(seed=7, anchor="2026-11-01T00:00:00Z") as different:
        tok = _token(different).json()["access_token"]
        assert _get(different, "/v1/sessions", tok, on_or_after=0, before=2**45, has_alerts="false").content \
            != pages[0]


def test_sessions_change_after_they_start(clean_sandbox, token):
    sb = clean_sandbox
    recent = _anchor_ms(sb) - 2 * 3_600_000
    params = {"on_or_after": recent, "before": _anchor_ms(sb) + 1, "has_alerts": "false"}
    before = {s["sessionId"]: s for s in _get(sb, "/v1/sessions", token, **params).json()["items"]}
    sb.advance(minutes=3 * 24 * 60)
    after = {s["sessionId"]: s for s in _get(sb, "/v1/sessions", token, **params).json()["items"]}
    assert before.keys() == after.keys()
    changed = [sid for sid in before if after[sid]["lastUpdated"] > before[sid]["lastUpdated"]]
    assert changed
    late_alerts = [sid for sid in before if len(after[sid]["triggeredAlerts"]) > len(before[sid]["triggeredAlerts"])]
    assert late_alerts  # alerts that did not exist at the anchor appeared later
    new_states = [sid for sid in before if after[sid]["states"][-1]["state"] != before[sid]["states"][-1]["state"]]
    assert new_states


def test_fault_knobs_are_observable(clean_sandbox, token):
    sb = clean_sandbox
    sb.set_faults(fail_next=[503, 429], retry_after=3)
    assert _get(sb, "/v2/alert-rules", token).status_code == 503
    limited = _get(sb, "/v2/alert-rules", token)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert _get(sb, "/v2/alert-rules", token).status_code == 200
    sb.set_faults(rate_limit_per_min=2)
    codes = [_get(sb, "/v2/alert-rules", token).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    sb.set_faults(rate_limit_per_min=0, malformed_every=1)
    with pytest.raises(ValueError):
        _get(sb, "/v2/alert-rules", token).json()
    sb.set_faults(malformed_every=0, token_ttl=1)
    assert _token(sb).json()["expires_in"] == 1
    stats = sb.stats()
    assert stats["n_5xx"] == 1 and stats["n_429"] == 2 and stats["malformed"] == 1
    bad = requests.post(f"{sb.base_url}/_sandbox/faults", json={"no_such_knob": 1}, timeout=10)
    assert bad.status_code == 400 and "no_such_knob" in bad.text


def test_ksat_directory_pages_and_ground_truth(clean_sandbox, tmp_path):
    sb = clean_sandbox
    headers = {"Authorization": f"Bearer {sb.ksat_key}"}
    users, page = [], 1
    while True:
        batch = requests.get(f"{sb.base_url}/v1/users", params={"page": page, "per_page": 7}, headers=headers,
                             timeout=10).json()
        if not batch:
            break
        users += batch
        page += 1
    assert len({u["id"] for u in users}) == len(users) > 30
    assert {u["status"] for u in users} == {"active", "archived"}
    groups = requests.get(f"{sb.base_url}/v1/groups", headers=headers, timeout=10).json()
    assert {"All Users", "Contractors"} <= {g["name"] for g in groups}
    truth = sb.admin("GET", "truth")
    kinds = {v["kind"] for v in truth.values()}
    assert {"exact", "case", "plus_tag", "old_domain", "ksat_alias", "c42_alternate", "contractor", "parent",
            "ambiguous", "archived", "none"} <= kinds
    by_id = {u["id"]: u for u in users}
    assert all(v["ksat_user_id"] in by_id for v in truth.values() if v["ksat_user_id"] is not None)
    assert all(v["ksat_user_id"] is None for v in truth.values() if v["kind"] in ("ambiguous", "none"))
    out = tmp_path / "truth.json"
    subprocess.run([sys.executable, "-m", "incydr_sandbox.cli", "--seed", "42", "--write-truth", str(out)],
                   check=True, timeout=60)
    assert json.loads(out.read_text()) == truth

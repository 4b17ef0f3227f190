"""KnowBe4Hook against the sandbox's KSAT directory over real HTTP."""

from __future__ import annotations

import json
import logging

import pytest

from knowbe4_hook import KnowBe4ApiError, KnowBe4ConfigError, KnowBe4Hook
from knowbe4_hook.hook import normalize_knowbe4_url


def _hook(monkeypatch, sandbox, key=None, host=None, **extra):
    monkeypatch.setenv("AIRFLOW_CONN_KB4_TEST", json.dumps({
        "conn_type": "knowbe4", "password": key or sandbox.ksat_key, "host": host or sandbox.base_url,
        "extra": {"rate_limit_per_minute": 6000, "retry_backoff": 0.05, **extra}}))
    return KnowBe4Hook("kb4_test")


def test_users_are_paged_until_an_empty_page(monkeypatch, clean_sandbox):
    hook = _hook(monkeypatch, clean_sandbox)
    hook.USERS_PAGE_SIZE = 7
    users = list(hook.iter_users())
    assert len({u.id for u in users}) == len(users) > 30
    assert {u.status for u in users} == {"active", "archived"}
    archived = list(hook.iter_users(status="archived"))
    assert archived and all(u.status == "archived" for u in archived)
    assert hook.stats.pages >= len(users) // 7
    with pytest.raises(ValueError, match="status must be"):
        list(hook.iter_users(status="deleted"))


def test_groups_are_paged_like_users(monkeypatch, clean_sandbox):
    """KnowBe4 Reporting API: every listing pages with page (from 1) and per_page (default 100, at
    most 500); a single GET /v1/groups would hold only the first page."""
    everything = list(_hook(monkeypatch, clean_sandbox).iter_groups())
    assert "All Users" in {g.name for g in everything} and len(everything) > 3
    hook = _hook(monkeypatch, clean_sandbox)
    hook.GROUPS_PAGE_SIZE = 2
    groups = list(hook.iter_groups())
    assert [g.id for g in groups] == [g.id for g in everything]
    assert hook.stats.pages == len(everything) // 2 + 1  # a short (or empty) page ends the listing


def test_faults_are_retried_and_the_key_never_logged(monkeypatch, clean_sandbox, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    clean_sandbox.set_faults(fail_next=[429, 503], retry_after=1)
    hook = _hook(monkeypatch, clean_sandbox)
    assert list(hook.iter_users())
    assert hook.stats.n_429 == 1 and hook.stats.n_5xx == 1 and hook.stats.retries == 2
    with pytest.raises(KnowBe4ApiError, match=r"KnowBe4 GET /v1/users page 1: HTTP 401"):
        list(_hook(monkeypatch, clean_sandbox, key="wrong-key-1234").iter_users())
    out, err = capfd.readouterr()
    assert clean_sandbox.ksat_key not in caplog.text + out + err
    ok, message = _hook(monkeypatch, clean_sandbox).test_connection()
    assert ok, message


@pytest.mark.parametrize("url", ["https://api.us.code42.com", "http://us.api.knowbe4.com", "https://evil.example"])
def test_base_url_is_refused_before_the_key_is_sent(url):
    with pytest.raises(KnowBe4ConfigError):
        normalize_knowbe4_url(url)
    assert normalize_knowbe4_url("eu.api.knowbe4.com") == "https://eu.api.knowbe4.com"

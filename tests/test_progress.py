"""Progress of long listings in the task log (``apiclient.progress``), against the sandbox over HTTP.

Each listing is throttled so that it takes more than the 10 s between progress lines: the lines
logged while it runs must say the page (piece) N of M, the items so far of those announced, the
request rate the throttle allowed, an ETA close to what the listing then took, and the throttle's
waits; the last line must match what the listing yielded. Lines hold counts and the endpoint only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from datetime import timedelta
from itertools import count, pairwise

import pytest

from apiclient.progress import EVERY_S, duration
from code42_hook import Code42Hook
from knowbe4_hook import KnowBe4Hook

_ids = count()
RATE = 240  # requests per minute: ~50 pages take ~12 s
COUNTS = (r"(?P<requests>\d+) requests? \((?P<rate>[\d.]+)/min\)(?:, ETA (?P<eta>[^,]+))?, "
          r"throttle waits (?P<waited>[\d.]+) s in all(?: \([\d.]+ s a request\))?")
RUNNING = re.compile(r"(?P<label>.+): (?P<unit>page|piece) (?P<n>\d+)(?: of (?P<m>\d+)(?: known)?)?, "
                     r"(?P<items>\d+) items(?: of (?P<items_of>\d+))?, " + COUNTS)
DONE = re.compile(r"(?P<label>.+): done: (?P<n>\d+) (?P<unit>page|piece)s?, (?P<items>\d+) items in (?P<took>[^,]+), "
                  + COUNTS)


def seconds(text: str) -> int:
    """``duration``'s text back to seconds (``3 min 05 s`` -> 185)."""
    units = {"h": 3600, "min": 60, "s": 1}
    parts = text.split()
    return sum(int(n) * units[u] for n, u in zip(parts[::2], parts[1::2], strict=True))


@pytest.fixture
def code42(clean_sandbox, monkeypatch):
    conn_id = f"code42_progress_{next(_ids)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "code42", "login": clean_sandbox.client_id, "password": clean_sandbox.client_secret,
        "host": clean_sandbox.base_url, "extra": {"rate_limit_per_minute": RATE}}))
    hook = Code42Hook(conn_id)
    hook.SESSIONS_PAGE_SIZE = 10  # many pages from the small tenant
    end = clean_sandbox.anchor - timedelta(hours=6)
    return hook, end - timedelta(days=29), end


def progress_lines(caplog, label: str) -> tuple[list[tuple[float, re.Match]], tuple[float, re.Match]]:
    """The running lines and the last line for ``label``, each with its time."""
    mine = [r for r in caplog.records if r.getMessage().startswith(f"{label}: ")]
    for record in mine:  # counts and the label only: the whole line is accounted for
        assert RUNNING.fullmatch(record.getMessage()) or DONE.fullmatch(record.getMessage()), record.getMessage()
    running = [(r.created, RUNNING.fullmatch(r.getMessage())) for r in mine[:-1]]
    assert all(match for _, match in running), [r.getMessage() for r in mine]
    last = DONE.fullmatch(mine[-1].getMessage())
    assert last, mine[-1].getMessage()
    return running, (mine[-1].created, last)


def check_running(running, done_at: float, started: float, read: int) -> None:
    """Lines at least 10 s apart, rate within the throttle, ETA close to what the listing then took."""
    assert running, "a listing longer than 10 s logs while it runs"
    times = [started] + [t for t, _ in running]
    assert all(b - a >= EVERY_S - 0.05 for a, b in pairwise(times)), times
    for at, line in running:
        n, m = int(line["n"]), int(line["m"])
        assert 1 <= n < m
        assert int(line["items"]) < int(line["items_of"]) == read  # the announced totalCount
        assert 0.6 * RATE <= float(line["rate"]) <= RATE * 1.02  # the throttle's pace, not more
        assert float(line["waited"]) > 0  # the throttle held requests back
        left = done_at - at
        assert abs(seconds(line["eta"]) - left) <= max(3.0, 0.35 * left), (line.group(0), left)


def test_a_long_paged_listing_logs_page_n_of_m_items_rate_eta_and_throttle_waits(code42, caplog):
    """``PageNumberTotal`` (sessions ranked by end time: paged by number, M from ``totalCount``)."""
    hook, start, end = code42
    caplog.set_level(logging.INFO)
    hook.tenant_id  # noqa: B018 - the token first
    started = time.time()
    sessions = list(hook.iter_sessions(start, end, has_alerts=False, order_by="end_time"))
    pages = math.ceil(len(sessions) / hook.SESSIONS_PAGE_SIZE)
    assert pages >= 40  # long enough: > 10 s at RATE

    running, (done_at, last) = progress_lines(caplog, "Code42 /v1/sessions")
    check_running(running, done_at, started, len(sessions))
    for _, line in running:
        assert line["unit"] == "page" and int(line["m"]) == pages
        assert int(line["items"]) == int(line["n"]) * hook.SESSIONS_PAGE_SIZE  # full pages so far
    assert (last["unit"], int(last["n"]), int(last["items"])) == ("page", pages, len(sessions))
    assert int(last["requests"]) == hook.stats.requests == pages
    assert abs(seconds(last["took"]) - (done_at - started)) <= 1.5


def test_a_listing_cut_into_windows_logs_pieces_done_of_pieces_known(code42, caplog):
    """``SplitWindows`` (sessions by begin time): pieces answered of the pieces known so far."""
    hook, start, end = code42
    caplog.set_level(logging.INFO)
    hook.tenant_id  # noqa: B018
    started = time.time()
    sessions = list(hook.iter_sessions(start, end, has_alerts=False))

    running, (done_at, last) = progress_lines(caplog, "Code42 /v1/sessions has_alerts=false")
    check_running(running, done_at, started, len(sessions))
    pieces = int(last["n"])
    assert pieces == hook.stats.requests == int(last["requests"])  # one request a piece
    assert pieces >= len(sessions) / hook.SESSIONS_PAGE_SIZE
    known = [int(line["m"]) for _, line in running]
    assert all(line["unit"] == "piece" for _, line in running) and known == sorted(known) and known[-1] <= pieces
    assert int(last["items"]) == len(sessions)


def test_a_short_listing_logs_once_at_its_end(clean_sandbox, monkeypatch, caplog):
    """``PageUntilShort`` (KnowBe4 users): no total, so no M and no ETA; one line at the end."""
    monkeypatch.setenv("AIRFLOW_CONN_KB4_PROGRESS", json.dumps({
        "conn_type": "knowbe4", "password": clean_sandbox.ksat_key, "host": clean_sandbox.base_url,
        "extra": {"rate_limit_per_minute": 6000}}))
    hook = KnowBe4Hook("kb4_progress")
    hook.USERS_PAGE_SIZE = 7
    caplog.set_level(logging.INFO)
    users = list(hook.iter_users())
    mine = [r.getMessage() for r in caplog.records if r.getMessage().startswith("KnowBe4 /v1/users: ")]
    assert len(mine) == 1
    last = DONE.fullmatch(mine[0])
    assert last, mine
    assert int(last["n"]) == math.ceil((len(users) + 1) / 7) == hook.stats.pages
    assert int(last["items"]) == len(users)
    assert not any(u.email in mine[0] or (u.first_name or "\0") in mine[0] for u in users)


@pytest.mark.parametrize(("secs", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")])
def test_durations_read_as_seconds_minutes_hours(secs, text):
    assert duration(secs) == text

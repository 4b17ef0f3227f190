"""The rpt_* reporting views on a small fixed dataset, on SQLite and PostgreSQL alike.

Every expected figure below is worked out by hand from the rows inserted in ``dataset`` (the
comments show the working), never by running the views' SQL another way.

Calendar: 2026-01-05 is a Monday, 2026-01-11 a Sunday (still week 2026-01-05), 2026-03-01 a Sunday
(week 2026-02-23, month 2026-03-01). Tenant A has three KSAT users (101, 102, 103) and five actors
(a1->101, a2->102, a3->103, a4->102 a second account, a5 unmapped); tenant B reuses KSAT id 101 for
a different person, so per-tenant figures must not mix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pipeline import default_catalog, run_detection

from conftest import PG_ADMIN_URL, legacy_warehouse
from knowbe4_hook import KnowBe4Hook
from securitycoach.mapping.store import refresh_ksat_directory
from securitycoach.warehouse import SCHEMA_VERSION, create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t

A, B = "tenant-a", "tenant-b"
RM, PCU = "removable-media", "personal-cloud-upload"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NOW = ts("2026-03-02 00:00")

# session id -> (tenant, actor, begin, severity, state, risk score, indicators)
SESSIONS = {
    "s1": (A, "a1", "2026-01-05 08:30", 2, "OPEN", 8, ["Removable media", "Source code"]),
    "s2": (A, "a1", "2026-01-06 07:30", 3, "CLOSED_FP", 5, ["Removable media"]),
    "s3": (A, "a2", "2026-01-06 10:30", 1, "CLOSED_TP", 4, ["Personal cloud storage"]),
    "s4": (A, "a2", "2026-01-12 06:30", 2, "CLOSED_FP", 6, ["Removable media"]),
    "s5": (A, "a3", "2026-01-11 21:00", 2, "OPEN", 7, []),
    "s7": (A, "a1", "2026-01-20 09:00", 2, "CLOSED_FP", 5, ["Removable media"]),
    "s9": (A, "a4", "2026-01-13 10:00", 1, "OPEN", 3, ["Removable media"]),
    "s10": (A, "a2", "2026-02-06 12:50", 1, "OPEN", 4, ["Personal cloud storage"]),
    "s11": (A, "a2", "2026-03-01 10:00", 3, "CLOSED_FP", 9, ["Removable media"]),
    "s12": (A, "a5", "2026-02-10 10:00", 0, "OPEN", 0, []),
    "sb1": (B, "b1", "2026-01-07 10:00", 3, "OPEN", 10, ["Removable media"]),
    "sb2": (B, "b2", "2026-01-21 10:00", 2, "OPEN", 4, []),
    "sb3": (B, "b2", "2026-01-07 10:00", 1, "OPEN", 4, []),
}
# alert id -> (tenant, actor, created, risk severity, the session it belongs to)
ALERTS = {
    "al1": (A, "a2", "2026-03-01 10:05", "HIGH", "s11"),
    "al2": (A, "a3", "2026-01-15 09:00", "MODERATE", "s5"),
}
# (tenant, rule, subject type, subject id, actor, severity, occurred)
DETECTIONS = [
    (A, RM, "session", "s1", "a1", 2, "2026-01-05 09:00"),   # det1
    (A, RM, "session", "s2", "a1", 3, "2026-01-06 08:00"),   # det2
    (A, PCU, "session", "s3", "a2", 1, "2026-01-06 11:00"),  # det3
    (A, RM, "session", "s4", "a2", 2, "2026-01-12 07:00"),   # det4
    (A, PCU, "session", "s5", "a3", 2, "2026-01-11 22:00"),  # det5
    (A, RM, "session", "s7", "a1", 2, "2026-01-20 10:00"),   # det6
    (A, RM, "alert", "al1", "a2", 3, "2026-03-01 10:05"),    # det7
    (A, PCU, "alert", "al2", "a3", 2, "2026-01-15 09:00"),   # det8
    (A, RM, "session", "s9", "a4", 1, "2026-01-13 10:00"),   # det9 (a4 is KSAT user 102's second account)
    (A, PCU, "session", "s10", "a2", 1, "2026-02-06 13:00"),  # det10: 31 days + 1 h after tip d3
    (B, RM, "session", "sb1", "b1", 3, "2026-01-07 10:30"),
]
# (tenant, key, campaign, rule, subject, actor, ksat user, status, sent)
DELIVERIES = [
    (A, "d1", "usb", RM, "s1", "a1", 101, "sent", "2026-01-05 10:00"),
    (A, "d2", "usb", RM, "s2", "a1", 101, "sent", "2026-01-06 09:00"),
    (A, "d3", "cloud", PCU, "s3", "a2", 102, "sent", "2026-01-06 12:00"),
    (A, "d4", "usb", RM, "s4", "a2", 102, "sent", "2026-01-12 08:00"),
    (A, "d5", "cloud", PCU, "s5", "a3", 103, "sent", "2026-01-11 23:30"),
    (A, "d6", "usb", RM, "s7", "a1", 101, "failed", None),                # not delivered
    (A, "d7", "test-usb", RM, "s1", "a1", 101, "test", "2026-01-05 10:00"),  # test mode: not delivered
    (B, "e1", "usb", RM, "sb1", "b1", 101, "sent", "2026-01-07 12:00"),
]
GROUPS = {(A, 1): "Engineering", (A, 2): "Sales", (B, 1): "Finance"}
MEMBERS = {(A, 101): [1], (A, 102): [1, 2], (A, 103): [2], (B, 101): [1]}
MAPPING = {(A, "a1"): 101, (A, "a2"): 102, (A, "a3"): 103, (A, "a4"): 102, (B, "b1"): 101}
ACTOR_NAMES = {(A, "a1"): "alice@a.example", (A, "a2"): "bob@a.example", (A, "a3"): "carol@a.example",
               (A, "a5"): "eve@a.example", (B, "b1"): "<script>alert(1)</script>", (B, "b2"): "dan@b.example"}
VOCABULARY = {"Removable media": ("removable_media", "Removable Media", None),
              "Personal cloud storage": ("personal_cloud", "Cloud Storage", None),
              "Source code": (None, None, "SourceCode")}
RULE_NAMES = {RM: "Removable Media Exfiltration Detected by Code42",
              PCU: "Personal Cloud or Web Upload Detected by Code42"}


@pytest.fixture
def dataset(warehouse):
    raw = {"fixture": True}
    with warehouse.begin() as conn:
        conn.execute(t.code42_session.insert(), [
            {"tenant_id": tn, "session_id": sid, "actor_id": actor, "actor_name": f"{actor}@session",
             "begin_time": ts(begin), "last_updated": ts(begin), "severity": sev, "state": state,
             "risk_score": score, "raw": raw}
            for sid, (tn, actor, begin, sev, state, score, _) in SESSIONS.items()])
        conn.execute(t.code42_session_risk_indicator.insert(), [
            {"tenant_id": tn, "session_id": sid, "indicator_id": f"ind-{name}", "name": name, "weight": 1,
             "event_count": 1}
            for sid, (tn, *_, indicators) in SESSIONS.items() for name in indicators])
        conn.execute(t.code42_alert.insert(), [
            {"tenant_id": tn, "alert_id": aid, "actor_id": actor, "created_at": ts(created),
             "risk_severity": sev, "severity": "HIGH", "state": "OPEN", "raw": raw}
            for aid, (tn, actor, created, sev, _) in ALERTS.items()])
        conn.execute(t.code42_session_alert.insert(), [
            {"tenant_id": tn, "session_id": sid, "alert_id": aid} for aid, (tn, *_, sid) in ALERTS.items()])
        conn.execute(t.code42_actor.insert(), [
            {"tenant_id": tn, "actor_id": actor, "name": name, "raw": raw} for (tn, actor), name in ACTOR_NAMES.items()])
        conn.execute(t.user_mapping.insert(), [
            {"tenant_id": tn, "actor_id": actor, "ksat_user_id": user, "rule": "fixture", "evidence": "fixture",
             "mapped_at": NOW} for (tn, actor), user in MAPPING.items()])
        conn.execute(t.unmapped_actor.insert(), [
            {"tenant_id": A, "actor_id": "a5", "reason": "no_match", "evidence": "no KSAT user"}])
        conn.execute(t.ksat_user.insert(), [
            {"tenant_id": tn, "ksat_user_id": user, "email": f"{user}@{tn}", "status": "active",
             "groups": groups, "raw": raw} for (tn, user), groups in MEMBERS.items()])
        conn.execute(t.ksat_group.insert(), [
            {"tenant_id": tn, "group_id": gid, "name": name} for (tn, gid), name in GROUPS.items()])
        conn.execute(t.ksat_user_group.insert(), [
            {"tenant_id": tn, "ksat_user_id": user, "group_id": gid}
            for (tn, user), groups in MEMBERS.items() for gid in groups])
        conn.execute(t.risk_indicator_vocabulary.insert(), [
            {"tenant_id": tn, "indicator_name": name, "vector": v, "destination_category": d, "file_category": f}
            for tn in (A, B) for name, (v, d, f) in VOCABULARY.items()])
        conn.execute(t.detection_rule.insert(), [
            {"tenant_id": tn, "rule_key": key, "name": name, "kind": "system", "subject_type": "session",
             "enabled": True, "criteria": {}, "updated_at": NOW} for tn in (A, B) for key, name in RULE_NAMES.items()])
        conn.execute(t.detection.insert(), [
            {"tenant_id": tn, "rule_key": rule, "subject_type": st, "subject_id": sid, "actor_id": actor,
             "severity": sev, "occurred_at": ts(at), "first_seen_at": NOW, "last_changed_at": NOW, "evidence": {}}
            for tn, rule, st, sid, actor, sev, at in DETECTIONS])
        conn.execute(t.delivery.insert(), [
            {"tenant_id": tn, "campaign": campaign, "rule_key": rule, "subject_type": "session", "subject_id": sid,
             "idempotency_key": key, "actor_id": actor, "ksat_user_id": user, "recipient": f"{user}@{tn}",
             "channel": "webhook", "status": status, "attempts": 1, "occurred_at": ts("2026-01-01 00:00"),
             "created_at": NOW, "due_at": NOW, "sent_at": ts(sent) if sent else None}
            for tn, key, campaign, rule, sid, actor, user, status, sent in DELIVERIES])
    return warehouse


def rows(engine, view: str, columns: str, tenant: str, period_type: str | None = None, where: str = "") -> list[tuple]:
    sql = f"SELECT {columns} FROM {view} WHERE tenant_id = :tenant"
    params = {"tenant": tenant}
    if period_type:
        sql += " AND period_type = :period_type"
        params["period_type"] = period_type
    with engine.connect() as conn:
        found = conn.execute(sa.text(sql + (f" AND {where}" if where else "")), params).all()
    found = [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in found]
    return sorted(found, key=lambda row: tuple((True, 0) if v is None else (False, v) for v in row))


SUMMARY = "period_start, users_coached, users_coached_more_than_once, new_users_coached, tips_delivered"


def test_coaching_summary(dataset):
    # delivered: d1 101 Mon 01-05, d2 101 Tue 01-06, d3 102 01-06, d5 103 Sun 01-11, d4 102 Mon 01-12
    assert rows(dataset, "rpt_coaching_summary", SUMMARY, A, "day") == [
        ("2026-01-05", 1, 0, 1, 1),
        ("2026-01-06", 2, 0, 1, 2),   # 101 was new on 01-05, 102 is new
        ("2026-01-11", 1, 0, 1, 1),
        ("2026-01-12", 1, 0, 0, 1),   # 102 coached before
    ]
    assert rows(dataset, "rpt_coaching_summary", SUMMARY, A, "week") == [
        ("2026-01-05", 3, 1, 3, 4),   # 101 twice; Sunday 01-11 still in this week
        ("2026-01-12", 1, 0, 0, 1),
    ]
    assert rows(dataset, "rpt_coaching_summary", SUMMARY, A, "month") == [("2026-01-01", 3, 2, 3, 5)]
    # tenant B's KSAT user 101 is someone else: new there
    assert rows(dataset, "rpt_coaching_summary", SUMMARY, B, "week") == [("2026-01-05", 1, 0, 1, 1)]


def test_top_campaigns(dataset):
    cols = "period_start, rank, campaign, tips_delivered, users_coached"
    assert rows(dataset, "rpt_top_campaigns", cols, A, "week") == [
        ("2026-01-05", 1, "cloud", 2, 2),  # tie on tips (2 each): more users first
        ("2026-01-05", 2, "usb", 2, 1),
        ("2026-01-12", 1, "usb", 1, 1),
    ]
    assert rows(dataset, "rpt_top_campaigns", cols, A, "month") == [
        ("2026-01-01", 1, "usb", 3, 2), ("2026-01-01", 2, "cloud", 2, 2)]
    assert rows(dataset, "rpt_top_campaigns", cols, B, "month") == [("2026-01-01", 1, "usb", 1, 1)]


def test_top_groups(dataset):
    cols = "period_start, rank, group_name, tips_delivered, users_coached"
    # week 01-05: Engineering = 101 x2 + 102 x1, Sales = 102 x1 + 103 x1
    assert rows(dataset, "rpt_top_groups", cols, A, "week") == [
        ("2026-01-05", 1, "Engineering", 3, 2), ("2026-01-05", 2, "Sales", 2, 2),
        ("2026-01-12", 1, "Engineering", 1, 1), ("2026-01-12", 2, "Sales", 1, 1),
    ]
    assert rows(dataset, "rpt_top_groups", cols, A, "month") == [
        ("2026-01-01", 1, "Engineering", 4, 2), ("2026-01-01", 2, "Sales", 3, 2)]
    assert rows(dataset, "rpt_top_groups", cols, B, "month") == [("2026-01-01", 1, "Finance", 1, 1)]


def test_top_lists_stop_at_ten(dataset):
    with dataset.begin() as conn:
        conn.execute(t.delivery.insert(), [
            {"tenant_id": B, "campaign": f"c{k:02d}", "rule_key": RM, "subject_type": "session", "subject_id": "sb1",
             "idempotency_key": f"extra-{k}", "actor_id": "b1", "ksat_user_id": 101, "recipient": "x",
             "channel": "webhook", "status": "sent", "attempts": 1, "occurred_at": NOW, "created_at": NOW,
             "due_at": NOW, "sent_at": ts("2026-01-08 10:00")} for k in range(12)])
    ranked = rows(dataset, "rpt_top_campaigns", "rank, campaign", B, "month")
    # 13 campaigns with one tip and one user each: names break the tie
    assert ranked == [(k, name) for k, name in enumerate(["c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07",
                                                          "c08", "c09"], start=1)]


def test_detection_rule_overview(dataset):
    cols = "period_start, rule_key, rule_name, detections, distinct_users"
    assert rows(dataset, "rpt_detection_rule_overview", cols, A, "week") == [
        ("2026-01-05", PCU, RULE_NAMES[PCU], 2, 2),  # det3 a2, det5 a3 (Sunday 22:00)
        ("2026-01-05", RM, RULE_NAMES[RM], 2, 1),    # det1, det2 both a1
        ("2026-01-12", PCU, RULE_NAMES[PCU], 1, 1),  # det8
        ("2026-01-12", RM, RULE_NAMES[RM], 2, 2),    # det4 a2, det9 a4
        ("2026-01-19", RM, RULE_NAMES[RM], 1, 1),    # det6
        ("2026-02-02", PCU, RULE_NAMES[PCU], 1, 1),  # det10, Friday 02-06
        ("2026-02-23", RM, RULE_NAMES[RM], 1, 1),    # det7, Sunday 03-01
    ]
    assert rows(dataset, "rpt_detection_rule_overview", cols, A, "day", "rule_key = 'removable-media'")[:2] == [
        ("2026-01-05", RM, RULE_NAMES[RM], 1, 1), ("2026-01-06", RM, RULE_NAMES[RM], 1, 1)]
    assert rows(dataset, "rpt_detection_rule_overview", "period_start, detections", A, "month",
                "rule_key = 'removable-media'") == [("2026-01-01", 5), ("2026-03-01", 1)]
    assert rows(dataset, "rpt_detection_rule_overview", cols, B, "day") == [
        ("2026-01-07", RM, RULE_NAMES[RM], 1, 1)]


def test_vendor_events(dataset):
    cols = ("period_start, source, severity, severity_level, risk_indicator, vector, destination, events, "
            "events_weighted")
    week = rows(dataset, "rpt_vendor_events", cols, A, "week", "period_start = '2026-01-05'")
    # s1 (MODERATE; Removable media + Source code), s2 (HIGH; Removable media),
    # s3 (LOW; Personal cloud storage), s5 (MODERATE; no indicator); no alert that week
    assert week == [
        ("2026-01-05", "session", "HIGH", 3, "Removable media", "removable_media", "Removable Media", 1, 1.0),
        ("2026-01-05", "session", "LOW", 1, "Personal cloud storage", "personal_cloud", "Cloud Storage", 1, 1.0),
        ("2026-01-05", "session", "MODERATE", 2, "Removable media", "removable_media", "Removable Media", 1, 0.5),
        ("2026-01-05", "session", "MODERATE", 2, "Source code", None, None, 1, 0.5),
        ("2026-01-05", "session", "MODERATE", 2, None, None, None, 1, 1.0),
    ]
    assert sum(r[-1] for r in week) == pytest.approx(4)  # four sessions that week
    alerts = rows(dataset, "rpt_vendor_events", "period_start, severity, severity_level, risk_indicator, events",
                  A, "month", "source = 'alert'")
    assert alerts == [("2026-01-01", "MODERATE", 2, None, 1), ("2026-03-01", "HIGH", 3, None, 1)]
    # month of January, sessions by severity: s1 s4 s5 s7 MODERATE, s2 HIGH, s3 s9 LOW
    by_severity = {}
    for severity, weighted in rows(dataset, "rpt_vendor_events", "severity, events_weighted", A, "month",
                                   "source = 'session' AND period_start = '2026-01-01'"):
        by_severity[severity] = by_severity.get(severity, 0) + weighted
    assert by_severity == {"MODERATE": pytest.approx(4), "HIGH": pytest.approx(1), "LOW": pytest.approx(2)}
    assert rows(dataset, "rpt_vendor_events", "period_start, source, severity, risk_indicator, events", B, "day") == [
        ("2026-01-07", "session", "HIGH", "Removable media", 1), ("2026-01-07", "session", "LOW", None, 1),
        ("2026-01-21", "session", "MODERATE", None, 1)]


def decayed(score: float, days: float) -> float:
    return score * 0.5 ** (days / 14)


def test_risk_overview(dataset):
    cols = "rank, as_of, actor_id, actor_name, ksat_user_id, risk_score, sessions, last_seen, half_life_days"
    # tenant B, as of its latest session 2026-01-21 10:00: b2 = 4 (age 0) + 4 * 0.5 (14 days) = 6,
    # b1 = 10 * 0.5 = 5
    found = rows(dataset, "rpt_risk_overview", cols, B)
    assert found == [
        (1, "2026-01-21", "b2", "dan@b.example", None, pytest.approx(6.0), 2, "2026-01-21T10:00:00Z", 14),
        (2, "2026-01-21", "b1", "<script>alert(1)</script>", 101, pytest.approx(5.0), 1, "2026-01-07T10:00:00Z", 14),
    ]
    # tenant A, as of s11 2026-03-01 10:00; ages in days by hand from the session times
    expected = {
        "a2": decayed(4, 54 - 0.5 / 24) + decayed(6, 48 + 3.5 / 24) + decayed(4, 23 - (2 + 50 / 60) / 24) + 9,
        "a1": decayed(8, 55 + 1.5 / 24) + decayed(5, 54 + 2.5 / 24) + decayed(5, 40 + 1 / 24),
        "a3": decayed(7, 48 + 13 / 24),
        "a4": decayed(3, 47),
        "a5": 0.0,
    }
    found = rows(dataset, "rpt_risk_overview", cols, A)
    assert [r[2] for r in found] == ["a2", "a1", "a3", "a4", "a5"]  # by score: ~11.1, ~1.56, ~0.63, ~0.29, 0
    assert [r[0] for r in found] == [1, 2, 3, 4, 5]
    for _rank, as_of, actor, _name, _user, score, *_ in found:
        assert as_of == "2026-03-01"
        assert score == pytest.approx(expected[actor], rel=1e-6), actor
    by_actor = {r[2]: r for r in found}
    assert by_actor["a2"][3:5] == ("bob@a.example", 102) and by_actor["a2"][6:8] == (4, "2026-03-01T10:00:00Z")
    assert by_actor["a4"][3:5] == ("a4@session", 102)  # not in code42_actor: the session's name
    assert by_actor["a5"][4] is None and by_actor["a1"][6] == 3


def test_recidivism(dataset):
    cols = "period_start, campaign, rule_key, window_days, users_coached, users_repeated, repeat_share, window_complete"
    assert rows(dataset, "rpt_recidivism", cols, A, "week") == [
        # d3 (102): no pcu detection of a2 in the 30 days after 01-06 12:00 (det10 is 1 hour late);
        # d5 (103): det8 alert of a3 on 01-15
        ("2026-01-05", "cloud", PCU, 30, 2, 1, 0.5, 1),
        # d1 (101): det2 the next morning
        ("2026-01-05", "usb", RM, 30, 1, 1, 1.0, 1),
        # d4 (102 via a2): det9 of a4, also KSAT user 102, on 01-13 (det7 on 03-01 is too late anyway)
        ("2026-01-12", "usb", RM, 30, 1, 1, 1.0, 1),
    ]
    assert rows(dataset, "rpt_recidivism", cols, A, "day", "period_start = '2026-01-06'") == [
        ("2026-01-06", "cloud", PCU, 30, 1, 0, 0.0, 1),
        ("2026-01-06", "usb", RM, 30, 1, 1, 1.0, 1),  # d2: det6 on 01-20
    ]
    # tenant B: no repeat; its data ends 01-21, two weeks after the tip: the window is still open
    assert rows(dataset, "rpt_recidivism", cols, B, "month") == [("2026-01-01", "usb", RM, 30, 1, 0, 0.0, 0)]


def test_rule_noise(dataset):
    cols = ("period_start, rule_key, rule_name, detections, distinct_users, detections_per_user, false_positives, "
            "false_positive_share")
    assert rows(dataset, "rpt_rule_noise", cols, A, "month") == [
        # det3 s3 CLOSED_TP, det5 s5 OPEN, det8 alert al2 of s5 OPEN
        ("2026-01-01", PCU, RULE_NAMES[PCU], 3, 2, pytest.approx(1.5), 0, 0.0),
        # det1 s1, det2 s2 FP, det4 s4 FP, det6 s7 FP, det9 s9; actors a1 a2 a4
        ("2026-01-01", RM, RULE_NAMES[RM], 5, 3, pytest.approx(5 / 3), 3, pytest.approx(0.6)),
        ("2026-02-01", PCU, RULE_NAMES[PCU], 1, 1, 1.0, 0, 0.0),
        ("2026-03-01", RM, RULE_NAMES[RM], 1, 1, 1.0, 1, 1.0),  # alert al1 belongs to s11, CLOSED_FP
    ]


def test_unmapped_events_kept(dataset):
    assert rows(dataset, "rpt_unmapped_events", "actor_id, actor_name, reason, sessions, alerts", A) == [
        ("a5", "eve@a.example", "no_match", 1, 0)]
    assert rows(dataset, "rpt_unmapped_events", "actor_id", B) == []


def test_directory_refresh_fills_group_membership(warehouse, clean_sandbox, monkeypatch):
    """ksat_user_group is ksat_user.groups as rows, rewritten by every directory refresh."""
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_DEFAULT", json.dumps({
        "conn_type": "knowbe4", "password": clean_sandbox.ksat_key, "host": clean_sandbox.base_url,
        "extra": {"rate_limit_per_minute": 6000}}))
    for _ in range(2):  # a second refresh leaves the same rows
        refresh_ksat_directory(warehouse, KnowBe4Hook(), tenant_id="tenant-x")
        with warehouse.connect() as conn:
            users = conn.execute(sa.select(t.ksat_user.c.ksat_user_id, t.ksat_user.c.groups)).all()
            members = set(conn.execute(sa.select(t.ksat_user_group.c.ksat_user_id, t.ksat_user_group.c.group_id)))
        assert members == {(u.ksat_user_id, g) for u in users for g in u.groups or ()}
        assert len({g for _, g in members}) >= 3


def test_detection_mirrors_the_indicator_vocabulary(warehouse):
    run_detection(warehouse, "tenant-x", now=NOW)
    with warehouse.connect() as conn:
        vocab = {r.indicator_name: (r.vector, r.destination_category, r.file_category, r.watchlist)
                 for r in conn.execute(sa.select(t.risk_indicator_vocabulary))}
    assert vocab["Removable media"] == ("removable_media", "Removable Media", None, None)
    assert vocab["Source code"] == (None, None, "SourceCode", None)
    assert set(vocab) == set(default_catalog().vocabulary.indicators)


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'v2.db'}")
    else:
        engine = create_warehouse_engine(PG_ADMIN_URL, search_path=request.getfixturevalue("pg_schema"))
    yield engine
    engine.dispose()


def test_upgrade_from_version_2_adds_the_reporting_tables_and_views(blank_engine):
    new = {"ksat_user_group", "risk_indicator_vocabulary"}
    legacy_warehouse(blank_engine, 2)  # as the code before Alembic left a version 2 warehouse
    assert not new & set(sa.inspect(blank_engine).get_table_names())
    assert migrate(blank_engine) == 2
    inspector = sa.inspect(blank_engine)
    assert new <= set(inspector.get_table_names())
    assert {"rpt_risk_overview", "rpt_recidivism", "base_session"} <= set(inspector.get_view_names())
    with blank_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(t.schema_version.c.version))).scalar() == SCHEMA_VERSION
        assert conn.execute(sa.text("SELECT count(*) FROM rpt_top_groups")).scalar() == 0

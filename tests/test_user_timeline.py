"""rpt_user_timeline on a small fixed dataset, on SQLite and PostgreSQL alike: every expected row is
worked out by hand from the rows inserted below."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from securitycoach.warehouse import schema as t

A = "tenant-a"
RM, AR = "removable-media", "code42-alert-rule:r1"
NOW = datetime(2026, 2, 1, tzinfo=UTC)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def states(*entries):
    return [{"state": s, "stateV2": v, "sourceTimestamp": ms(at), "userId": None} for s, v, at in entries]


SESSIONS = {  # id -> actor, begin, severity, state, states history
    "s1": ("a1", "2026-01-05 08:30", 2, "OPEN_NEW_DATA", states(
        ("OPEN", "OPEN", "2026-01-05 08:32"),                     # the first: as first observed, no row
        ("CLOSED", "CLOSED_FP", "2026-01-08 09:00"),              # stateV2 wins
        ("OPEN", "OPEN_NEW_DATA", "2026-01-09 12:00:00.900"))),   # to the second
    "s2": ("a1", "2026-01-06 09:40", 3, "OPEN", states(("OPEN", "OPEN", "2026-01-06 09:42"))),
    "s3": ("a9", "2026-01-06 11:00", 1, "CLOSED_TP", states(  # a9 is not mapped: nothing of it shows
        ("OPEN", "OPEN", "2026-01-06 11:02"), ("CLOSED_TP", "CLOSED_TP", "2026-01-07 11:00"))),
}
DETECTIONS = [  # rule, subject type, id, actor, severity, occurred
    (RM, "session", "s1", "a1", 2, "2026-01-05 09:00"),
    (RM, "session", "s2", "a1", 3, "2026-01-06 10:00"),
    (AR, "alert", "al1", "a1", 3, "2026-01-06 10:05"),
    (RM, "session", "s3", "a9", 1, "2026-01-06 11:30"),
]
DELIVERIES = [  # key, campaign, rule, subject type, id, status, created, sent
    ("k1", "usb", RM, "session", "s1", "withdrawn", "2026-01-05 09:10", None),
    ("k2", "usb", RM, "session", "s2", "sent", "2026-01-06 10:10", "2026-01-06 10:11:30"),
    ("k3", "alerts", AR, "alert", "al1", "covered_by_instructor", "2026-01-06 10:20", None),
]
EXPECTED = [  # event_time, kind, rule_key, severity, subject_type, subject_id, campaign, status (KSAT user 101)
    ("2026-01-05T09:00:00Z", "detection", RM, 2, "session", "s1", None, "OPEN_NEW_DATA"),
    ("2026-01-05T09:10:00Z", "withdrawn", RM, 2, "session", "s1", "usb", "withdrawn"),
    ("2026-01-06T10:00:00Z", "detection", RM, 3, "session", "s2", None, "OPEN"),
    ("2026-01-06T10:05:00Z", "detection", AR, 3, "alert", "al1", None, "RESOLVED"),
    ("2026-01-06T10:11:30Z", "tip", RM, 3, "session", "s2", "usb", "sent"),
    ("2026-01-06T10:20:00Z", "covered_by_instructor", AR, 3, "alert", "al1", "alerts", "covered_by_instructor"),
    ("2026-01-08T09:00:00Z", "triage_change", None, 2, "session", "s1", None, "CLOSED_FP"),
    ("2026-01-09T12:00:00Z", "triage_change", None, 2, "session", "s1", None, "OPEN_NEW_DATA"),
]


def test_rpt_user_timeline_matches_the_hand_computed_rows(warehouse):
    with warehouse.begin() as conn:
        conn.execute(t.code42_session.insert(), [
            {"tenant_id": A, "session_id": sid, "actor_id": actor, "begin_time": ts(begin), "last_updated": ts(begin),
             "severity": sev, "state": state, "raw": {"sessionId": sid, "states": history}}
            for sid, (actor, begin, sev, state, history) in SESSIONS.items()])
        conn.execute(t.code42_alert.insert(), [
            {"tenant_id": A, "alert_id": "al1", "actor_id": "a1", "created_at": ts("2026-01-06 10:05"),
             "state": "RESOLVED", "raw": {}}])
        conn.execute(t.user_mapping.insert(), [
            {"tenant_id": A, "actor_id": "a1", "ksat_user_id": 101, "rule": "fixture", "evidence": "fixture",
             "mapped_at": NOW}])
        conn.execute(t.detection.insert(), [
            {"tenant_id": A, "rule_key": rule, "subject_type": st, "subject_id": sid, "actor_id": actor,
             "severity": sev, "occurred_at": ts(at), "first_seen_at": NOW, "last_changed_at": NOW, "evidence": {}}
            for rule, st, sid, actor, sev, at in DETECTIONS])
        conn.execute(t.delivery.insert(), [
            {"tenant_id": A, "campaign": campaign, "rule_key": rule, "subject_type": st, "subject_id": sid,
             "idempotency_key": key, "actor_id": "a1", "ksat_user_id": 101, "recipient": "101@a", "channel": "email",
             "status": status, "reason": None, "attempts": 0, "occurred_at": ts("2026-01-05 09:00"),
             "created_at": ts(created), "due_at": ts(created), "sent_at": ts(sent) if sent else None}
            for key, campaign, rule, st, sid, status, created, sent in DELIVERIES])
    with warehouse.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT tenant_id, ksat_user_id, event_time, kind, rule_key, severity, subject_type, subject_id, "
            "campaign, status FROM rpt_user_timeline ORDER BY event_time, kind")).all()
    assert [tuple(r) for r in found] == [(A, 101, *row) for row in EXPECTED]

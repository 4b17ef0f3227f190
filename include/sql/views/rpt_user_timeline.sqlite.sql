-- A person's timeline: per tenant and KSAT user, in time order, what Code42 saw and what coaching
-- did. kind: 'detection' (a detection rule matched a session or alert of one of the user's Code42
-- actors; status = the subject's current Code42 state), 'tip' (a SecurityTip planned for the user;
-- status = its delivery status: sent, test, stale, suppressed, on_watchlist, pending...),
-- 'withdrawn' (a tip Code42 triage cleared), 'covered_by_instructor' (a tip not sent because a
-- Code42 Instructor lesson covered the activity), 'ksat_event' (the detection on the user's KSAT Events
-- Timeline, KnowBe4 User Event API; status = the ksat_event status: pushed, deleted, pending...),
-- 'triage_change' (an entry of the session's
-- states history after its first, from code42_session.raw; status = the new state). event_time is
-- UTC ISO text to the second (tips: sent_at, else when planned; KSAT events: deleted_at, pushed_at, else
-- when planned). rule_key is NULL for triage changes.
-- The sqlite variant; the postgresql file computes the same rows.
DROP VIEW IF EXISTS rpt_user_timeline;
CREATE VIEW rpt_user_timeline AS
SELECT d.tenant_id,
       m.ksat_user_id,
       strftime('%Y-%m-%dT%H:%M:%SZ', d.occurred_at) AS event_time,
       'detection' AS kind,
       d.rule_key,
       d.severity,
       d.subject_type,
       d.subject_id,
       NULL AS campaign,
       COALESCE(s.state, a.state) AS status
FROM detection d
JOIN user_mapping m ON m.tenant_id = d.tenant_id AND m.actor_id = d.actor_id
LEFT JOIN code42_session s ON d.subject_type = 'session' AND s.tenant_id = d.tenant_id AND s.session_id = d.subject_id
LEFT JOIN code42_alert a ON d.subject_type = 'alert' AND a.tenant_id = d.tenant_id AND a.alert_id = d.subject_id
UNION ALL
SELECT dl.tenant_id,
       dl.ksat_user_id,
       strftime('%Y-%m-%dT%H:%M:%SZ', COALESCE(dl.sent_at, dl.created_at)) AS event_time,
       CASE dl.status WHEN 'withdrawn' THEN 'withdrawn'
                      WHEN 'covered_by_instructor' THEN 'covered_by_instructor'
                      ELSE 'tip' END AS kind,
       dl.rule_key,
       d.severity,
       dl.subject_type,
       dl.subject_id,
       dl.campaign,
       dl.status
FROM delivery dl
LEFT JOIN detection d ON d.tenant_id = dl.tenant_id AND d.rule_key = dl.rule_key
                     AND d.subject_type = dl.subject_type AND d.subject_id = dl.subject_id
UNION ALL
SELECT k.tenant_id,
       k.ksat_user_id,
       strftime('%Y-%m-%dT%H:%M:%SZ', COALESCE(k.deleted_at, k.pushed_at, k.created_at)) AS event_time,
       'ksat_event' AS kind,
       k.rule_key,
       k.severity,
       k.subject_type,
       k.subject_id,
       NULL AS campaign,
       k.status
FROM ksat_event k
UNION ALL
SELECT s.tenant_id,
       m.ksat_user_id,
       strftime('%Y-%m-%dT%H:%M:%SZ', json_extract(st.value, '$.sourceTimestamp') / 1000.0, 'unixepoch') AS event_time,
       'triage_change' AS kind,
       NULL AS rule_key,
       s.severity,
       'session' AS subject_type,
       s.session_id AS subject_id,
       NULL AS campaign,
       COALESCE(json_extract(st.value, '$.stateV2'), json_extract(st.value, '$.state')) AS status
FROM code42_session s
JOIN user_mapping m ON m.tenant_id = s.tenant_id AND m.actor_id = s.actor_id
JOIN json_each(CASE WHEN json_type(s.raw, '$.states') = 'array' THEN json_extract(s.raw, '$.states') ELSE '[]' END) st
WHERE st.key > 0 AND json_extract(st.value, '$.sourceTimestamp') IS NOT NULL;

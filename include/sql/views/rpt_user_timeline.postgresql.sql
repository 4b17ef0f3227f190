-- A person's timeline: per tenant and KSAT user, in time order, what Code42 saw and what coaching
-- did (see rpt_user_timeline.sqlite.sql for the columns). The postgresql variant.
DROP VIEW IF EXISTS rpt_user_timeline;
CREATE VIEW rpt_user_timeline AS
SELECT d.tenant_id,
       m.ksat_user_id,
       to_char(d.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS event_time,
       'detection' AS kind,
       d.rule_key,
       d.severity,
       d.subject_type,
       d.subject_id,
       CAST(NULL AS VARCHAR(160)) AS campaign,
       COALESCE(s.state, a.state) AS status
FROM detection d
JOIN user_mapping m ON m.tenant_id = d.tenant_id AND m.actor_id = d.actor_id
LEFT JOIN code42_session s ON d.subject_type = 'session' AND s.tenant_id = d.tenant_id AND s.session_id = d.subject_id
LEFT JOIN code42_alert a ON d.subject_type = 'alert' AND a.tenant_id = d.tenant_id AND a.alert_id = d.subject_id
UNION ALL
SELECT dl.tenant_id,
       dl.ksat_user_id,
       to_char(COALESCE(dl.sent_at, dl.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       CASE dl.status WHEN 'withdrawn' THEN 'withdrawn'
                      WHEN 'covered_by_instructor' THEN 'covered_by_instructor'
                      ELSE 'tip' END,
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
       to_char(COALESCE(k.deleted_at, k.pushed_at, k.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       'ksat_event',
       k.rule_key,
       k.severity,
       k.subject_type,
       k.subject_id,
       NULL,
       k.status
FROM ksat_event k
UNION ALL
SELECT s.tenant_id,
       m.ksat_user_id,
       to_char(to_timestamp((st.e ->> 'sourceTimestamp')::float8 / 1000.0) AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       'triage_change',
       NULL,
       s.severity,
       'session',
       s.session_id,
       NULL,
       COALESCE(st.e ->> 'stateV2', st.e ->> 'state')
FROM code42_session s
JOIN user_mapping m ON m.tenant_id = s.tenant_id AND m.actor_id = s.actor_id
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.raw -> 'states') = 'array' THEN s.raw -> 'states' ELSE '[]' END
) WITH ORDINALITY AS st (e, n)
WHERE st.n > 1 AND st.e ->> 'sourceTimestamp' IS NOT NULL;

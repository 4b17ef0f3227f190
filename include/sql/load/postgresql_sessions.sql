-- Staged sessions (one key range of one run) -> code42_session + children, inside PostgreSQL.
-- The same rules as securitycoach.transform.session_rows + streams.load_sessions (the digest tests
-- compare the two paths): a session is written only when new or its lastUpdated is newer; its
-- risk indicators and triggered alerts are then replaced (one per id, the last one listed wins);
-- score/severity and state come from the entry with the greatest sourceTimestamp (first on ties).
-- Parameters: :tenant_id, :run_key, :after, :upto (record_id range: after < record_id <= upto).
-- Statements are separated by lines holding only "-- ;".
CREATE TEMPORARY TABLE _changed_session ON COMMIT DROP AS
SELECT s.record_id AS session_id,
       s.payload AS p,
       timestamptz 'epoch' + (s.payload ->> 'lastUpdated')::float8 * interval '1 millisecond' AS last_updated,
       c.session_id IS NOT NULL AS existed
FROM stg_code42_record s
LEFT JOIN code42_session c ON c.tenant_id = s.tenant_id AND c.session_id = s.record_id
WHERE s.tenant_id = :tenant_id AND s.run_key = :run_key AND s.stream = 'sessions'
  AND s.record_id > :after AND s.record_id <= :upto
  AND (c.session_id IS NULL
       OR c.last_updated < timestamptz 'epoch' + (s.payload ->> 'lastUpdated')::float8 * interval '1 millisecond')
-- ;
ANALYZE _changed_session
-- ;
-- Only sessions already stored have children to replace (index lookups, not a scan per batch).
DELETE FROM code42_session_risk_indicator d
WHERE d.tenant_id = :tenant_id AND d.session_id IN (SELECT session_id FROM _changed_session WHERE existed)
-- ;
DELETE FROM code42_session_alert d
WHERE d.tenant_id = :tenant_id AND d.session_id IN (SELECT session_id FROM _changed_session WHERE existed)
-- ;
INSERT INTO code42_session_risk_indicator (tenant_id, session_id, indicator_id, name, weight, event_count)
SELECT DISTINCT ON (ch.session_id, e ->> 'id')
       :tenant_id, ch.session_id, e ->> 'id', e ->> 'name', (e ->> 'weight')::numeric::int,
       (e ->> 'eventCount')::numeric::int
FROM _changed_session ch
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(ch.p -> 'riskIndicators') = 'array' THEN ch.p -> 'riskIndicators' ELSE '[]' END
) WITH ORDINALITY AS x (e, n)
ORDER BY ch.session_id, e ->> 'id', n DESC
-- ;
INSERT INTO code42_session_alert (tenant_id, session_id, alert_id, rule_id, rule_name, lesson_id)
SELECT DISTINCT ON (ch.session_id, e ->> 'alertId')
       :tenant_id, ch.session_id, e ->> 'alertId', e ->> 'ruleId', e ->> 'ruleName', e ->> 'lessonId'
FROM _changed_session ch
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(ch.p -> 'triggeredAlerts') = 'array' THEN ch.p -> 'triggeredAlerts' ELSE '[]' END
) WITH ORDINALITY AS x (e, n)
ORDER BY ch.session_id, e ->> 'alertId', n DESC
-- ;
INSERT INTO code42_session (
    tenant_id, session_id, actor_id, actor_name, user_id, type, begin_time, end_time, first_observed,
    last_updated, state, risk_score, severity, no_risk_events, low_events, moderate_events, high_events,
    critical_events, context_summary, exfiltration_summary, raw)
SELECT :tenant_id, ch.session_id, p ->> 'actorId', p ->> 'actorName', p ->> 'userId', p ->> 'type',
       timestamptz 'epoch' + (p ->> 'beginTime')::float8 * interval '1 millisecond',
       timestamptz 'epoch' + (p ->> 'endTime')::float8 * interval '1 millisecond',
       timestamptz 'epoch' + (p ->> 'firstObserved')::float8 * interval '1 millisecond',
       ch.last_updated,
       COALESCE(st.e ->> 'stateV2', st.e ->> 'state'), (sc.e ->> 'score')::numeric::int, (sc.e ->> 'severity')::numeric::int,
       (p ->> 'noRiskEvents')::numeric::int, (p ->> 'lowEvents')::numeric::int,
       (p ->> 'moderateEvents')::numeric::int, (p ->> 'highEvents')::numeric::int,
       (p ->> 'criticalEvents')::numeric::int, p ->> 'contextSummary', p ->> 'exfiltrationSummary', p
FROM _changed_session ch
LEFT JOIN LATERAL (
    SELECT e FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(ch.p -> 'scores') = 'array' THEN ch.p -> 'scores' ELSE '[]' END
    ) WITH ORDINALITY AS x (e, n)
    ORDER BY coalesce((e ->> 'sourceTimestamp')::float8, 0) DESC, n LIMIT 1
) sc ON true
LEFT JOIN LATERAL (
    SELECT e FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(ch.p -> 'states') = 'array' THEN ch.p -> 'states' ELSE '[]' END
    ) WITH ORDINALITY AS x (e, n)
    ORDER BY coalesce((e ->> 'sourceTimestamp')::float8, 0) DESC, n LIMIT 1
) st ON true
ON CONFLICT (tenant_id, session_id) DO UPDATE SET
    actor_id = excluded.actor_id, actor_name = excluded.actor_name, user_id = excluded.user_id,
    type = excluded.type, begin_time = excluded.begin_time, end_time = excluded.end_time,
    first_observed = excluded.first_observed, last_updated = excluded.last_updated, state = excluded.state,
    risk_score = excluded.risk_score, severity = excluded.severity, no_risk_events = excluded.no_risk_events,
    low_events = excluded.low_events, moderate_events = excluded.moderate_events,
    high_events = excluded.high_events, critical_events = excluded.critical_events,
    context_summary = excluded.context_summary, exfiltration_summary = excluded.exfiltration_summary,
    raw = excluded.raw
WHERE code42_session.last_updated < excluded.last_updated
-- ;
-- Hand the new or changed sessions to the detection task (streams.queue_for_detection).
INSERT INTO stg_detection_queue (tenant_id, subject_type, subject_id)
SELECT :tenant_id, 'session', session_id FROM _changed_session
ON CONFLICT DO NOTHING
-- ;
SELECT count(*) FROM _changed_session
-- ;
DROP TABLE _changed_session

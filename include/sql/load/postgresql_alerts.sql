-- Staged alerts (one key range of one run) -> code42_alert, inside PostgreSQL. The same rules as
-- securitycoach.transform.alert_row + streams.load_alerts: an alert is written when it is new or
-- its (state, stateLastModifiedAt) changed. ISO times without an offset are UTC.
-- Parameters: :tenant_id, :run_key, :after, :upto (record_id range: after < record_id <= upto).
-- Statements are separated by lines holding only "-- ;".
SET LOCAL TIME ZONE 'UTC'
-- ;
CREATE TEMPORARY TABLE _changed_alert ON COMMIT DROP AS
SELECT n.* FROM (
    SELECT s.payload ->> 'id' AS alert_id, s.payload AS p, s.payload ->> 'state' AS state,
           nullif(s.payload ->> 'stateLastModifiedAt', '')::timestamptz AS state_last_modified_at
    FROM stg_code42_record s
    WHERE s.tenant_id = :tenant_id AND s.run_key = :run_key AND s.stream = 'alerts'
      AND s.record_id > :after AND s.record_id <= :upto
) n
LEFT JOIN code42_alert c ON c.tenant_id = :tenant_id AND c.alert_id = n.alert_id
WHERE c.alert_id IS NULL
   OR (c.state, c.state_last_modified_at) IS DISTINCT FROM (n.state, n.state_last_modified_at)
-- ;
ANALYZE _changed_alert
-- ;
INSERT INTO code42_alert (
    tenant_id, alert_id, type, created_at, state, state_last_modified_by, state_last_modified_at, name,
    description, actor, actor_id, target, severity, risk_severity, rule_id, watchlists, raw)
SELECT :tenant_id, ch.alert_id, p ->> 'type', nullif(p ->> 'createdAt', '')::timestamptz, ch.state,
       p ->> 'stateLastModifiedBy', ch.state_last_modified_at, p ->> 'name', p ->> 'description',
       p ->> 'actor', p ->> 'actorId', p ->> 'target', p ->> 'severity', p ->> 'riskSeverity', p ->> 'ruleId',
       coalesce(p -> 'watchlists', 'null'::jsonb), p
FROM _changed_alert ch
ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
    type = excluded.type, created_at = excluded.created_at, state = excluded.state,
    state_last_modified_by = excluded.state_last_modified_by,
    state_last_modified_at = excluded.state_last_modified_at, name = excluded.name,
    description = excluded.description, actor = excluded.actor, actor_id = excluded.actor_id,
    target = excluded.target, severity = excluded.severity, risk_severity = excluded.risk_severity,
    rule_id = excluded.rule_id, watchlists = excluded.watchlists, raw = excluded.raw
-- ;
-- Hand the new or changed alerts to the detection task (streams.queue_for_detection).
INSERT INTO stg_detection_queue (tenant_id, subject_type, subject_id)
SELECT :tenant_id, 'alert', alert_id FROM _changed_alert
ON CONFLICT DO NOTHING
-- ;
SELECT count(*) FROM _changed_alert
-- ;
DROP TABLE _changed_alert

-- Noisy rules per tenant and period (by detection.occurred_at): many detections on few users
-- (detections_per_user), or many of them on sessions Code42 analysts closed as false positive
-- (session state CLOSED_FP; an alert detection counts when a session it belongs to is CLOSED_FP).
DROP VIEW IF EXISTS rpt_rule_noise;
CREATE VIEW rpt_rule_noise AS
WITH flagged AS (
    SELECT d.tenant_id, d.period_type, d.period_start, d.rule_key, d.actor_id,
           CASE WHEN d.subject_type = 'session' AND EXISTS (
                    SELECT 1 FROM code42_session s
                    WHERE s.tenant_id = d.tenant_id AND s.session_id = d.subject_id AND s.state = 'CLOSED_FP')
                THEN 1
                WHEN d.subject_type = 'alert' AND EXISTS (
                    SELECT 1 FROM code42_session_alert sal
                    JOIN code42_session s ON s.tenant_id = sal.tenant_id AND s.session_id = sal.session_id
                    WHERE sal.tenant_id = d.tenant_id AND sal.alert_id = d.subject_id AND s.state = 'CLOSED_FP')
                THEN 1
                ELSE 0 END AS false_positive
    FROM base_detection d
)
SELECT f.tenant_id,
       f.period_type,
       f.period_start,
       f.rule_key,
       COALESCE(r.name, f.rule_key) AS rule_name,
       COUNT(*) AS detections,
       COUNT(DISTINCT f.actor_id) AS distinct_users,
       CAST(COUNT(*) AS DOUBLE PRECISION) / NULLIF(COUNT(DISTINCT f.actor_id), 0) AS detections_per_user,
       SUM(f.false_positive) AS false_positives,
       CAST(SUM(f.false_positive) AS DOUBLE PRECISION) / COUNT(*) AS false_positive_share
FROM flagged f
LEFT JOIN detection_rule r ON r.tenant_id = f.tenant_id AND r.rule_key = f.rule_key
GROUP BY f.tenant_id, f.period_type, f.period_start, f.rule_key, r.name;

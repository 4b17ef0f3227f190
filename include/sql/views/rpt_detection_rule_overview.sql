-- Detections per rule per tenant and period (by when the behaviour happened, detection.occurred_at);
-- distinct_users counts distinct Code42 actors.
DROP VIEW IF EXISTS rpt_detection_rule_overview;
CREATE VIEW rpt_detection_rule_overview AS
SELECT d.tenant_id,
       d.period_type,
       d.period_start,
       d.rule_key,
       COALESCE(r.name, d.rule_key) AS rule_name,
       r.kind AS rule_kind,
       COUNT(*) AS detections,
       COUNT(DISTINCT d.actor_id) AS distinct_users,
       MAX(d.severity) AS max_severity
FROM base_detection d
LEFT JOIN detection_rule r ON r.tenant_id = d.tenant_id AND r.rule_key = d.rule_key
GROUP BY d.tenant_id, d.period_type, d.period_start, d.rule_key, r.name, r.kind;

-- SecurityCoach view: the tenant's detection rules as the warehouse holds them (the catalog the detect
-- task evaluates), with their detections of all time and the latest. Parameter: tenant.
SELECT r.rule_key, r.name, r.kind, r.subject_type, r.enabled, r.code42_rule_id,
       COUNT(d.subject_id) AS detections,
       COUNT(DISTINCT d.actor_id) AS distinct_users,
       MAX(d.occurred_at) AS last_detection
FROM detection_rule r
LEFT JOIN detection d ON d.tenant_id = r.tenant_id AND d.rule_key = r.rule_key
WHERE r.tenant_id = :tenant
GROUP BY r.rule_key, r.name, r.kind, r.subject_type, r.enabled, r.code42_rule_id
ORDER BY COUNT(d.subject_id) DESC, r.rule_key

-- Per tenant and detection rule: detections, distinct actors, and how many of those are mapped
-- to a KSAT user (only those can be coached).
SELECT d.tenant_id,
       r.name AS rule_name,
       r.kind,
       COUNT(*) AS detections,
       COUNT(DISTINCT d.actor_id) AS actors,
       SUM(CASE WHEN m.actor_id IS NOT NULL THEN 1 ELSE 0 END) AS mapped
FROM detection d
JOIN detection_rule r ON r.tenant_id = d.tenant_id AND r.rule_key = d.rule_key
LEFT JOIN user_mapping m ON m.tenant_id = d.tenant_id AND m.actor_id = d.actor_id
GROUP BY d.tenant_id, r.name, r.kind
ORDER BY d.tenant_id, detections DESC, r.name

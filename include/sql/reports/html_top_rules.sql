-- HTML report: the ten detection rules with the most detections in the period. Parameters: tenant, start, end.
SELECT rule_key, rule_name, SUM(detections) AS detections
FROM rpt_detection_rule_overview
WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
GROUP BY rule_key, rule_name
ORDER BY SUM(detections) DESC, rule_name
LIMIT 10

-- HTML report: rule noise over the period: detections and false positives summed from rpt_rule_noise's
-- days; distinct users over the whole range from base_detection (the view it is built on). Parameters: tenant, start, end.
WITH users AS (
    SELECT rule_key, COUNT(DISTINCT actor_id) AS distinct_users
    FROM base_detection
    WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
    GROUP BY rule_key
)
SELECT n.rule_key, n.rule_name,
       SUM(n.detections) AS detections,
       MAX(u.distinct_users) AS distinct_users,
       SUM(n.false_positives) AS false_positives
FROM rpt_rule_noise n
LEFT JOIN users u ON u.rule_key = n.rule_key
WHERE n.tenant_id = :tenant AND n.period_type = 'day' AND n.period_start >= :start AND n.period_start <= :end
GROUP BY n.rule_key, n.rule_name
ORDER BY SUM(n.detections) DESC, n.rule_name

-- HTML report: detections per day of the period (by when the behaviour happened). Parameters: tenant, start, end.
SELECT period_start AS day, SUM(detections) AS detections
FROM rpt_detection_rule_overview
WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
GROUP BY period_start
ORDER BY period_start

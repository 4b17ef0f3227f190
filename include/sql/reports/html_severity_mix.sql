-- HTML report: Code42 sessions begun in the period by severity (events_weighted counts each session
-- once however many risk indicators it has). Parameters: tenant, start, end.
SELECT severity, severity_level, SUM(events_weighted) AS sessions
FROM rpt_vendor_events
WHERE tenant_id = :tenant AND period_type = 'day' AND source = 'session'
  AND period_start >= :start AND period_start <= :end
GROUP BY severity, severity_level
ORDER BY severity_level

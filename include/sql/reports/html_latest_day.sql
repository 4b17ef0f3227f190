-- HTML report: the tenant's latest day with data (sessions, alerts, detections or delivered tips),
-- 'YYYY-MM-DD'; the default period ends on it. Parameter: tenant.
SELECT MAX(latest) AS latest_day
FROM (
    SELECT MAX(period_start) AS latest FROM rpt_vendor_events WHERE tenant_id = :tenant AND period_type = 'day'
    UNION ALL
    SELECT MAX(period_start) FROM rpt_detection_rule_overview WHERE tenant_id = :tenant AND period_type = 'day'
    UNION ALL
    SELECT MAX(period_start) FROM rpt_coaching_summary WHERE tenant_id = :tenant AND period_type = 'day'
) days

-- HTML report: Code42 actors that cannot be coached yet (no KSAT user or ambiguous) and the activity
-- waiting on a mapping (all time, as rpt_unmapped_events holds it). Parameter: tenant.
SELECT COUNT(*) AS actors,
       COALESCE(SUM(CASE WHEN reason = 'ambiguous' THEN 1 ELSE 0 END), 0) AS ambiguous,
       COALESCE(SUM(CASE WHEN reason = 'no_match' THEN 1 ELSE 0 END), 0) AS no_match,
       COALESCE(SUM(sessions), 0) AS sessions,
       COALESCE(SUM(alerts), 0) AS alerts
FROM rpt_unmapped_events
WHERE tenant_id = :tenant

-- HTML report: SecurityTips delivered and users coached per day of the period. Parameters: tenant, start, end.
SELECT period_start AS day, tips_delivered, users_coached
FROM rpt_coaching_summary
WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
ORDER BY period_start

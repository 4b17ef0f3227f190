-- HTML report: the ten campaigns that delivered the most SecurityTips in the period, as rpt_top_campaigns
-- ranks them (ties: more users, then name). It reads base_delivery_sent, the view rpt_top_campaigns is
-- built on, because distinct users over an arbitrary range cannot be summed from per-day rows.
-- Parameters: tenant, start, end.
SELECT campaign, COUNT(*) AS tips_delivered, COUNT(DISTINCT ksat_user_id) AS users_coached
FROM base_delivery_sent
WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
GROUP BY campaign
ORDER BY COUNT(*) DESC, COUNT(DISTINCT ksat_user_id) DESC, campaign
LIMIT 10

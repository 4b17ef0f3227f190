-- HTML report: the ten KSAT groups whose members received the most SecurityTips in the period, as
-- rpt_top_groups counts them (a user in two groups counts for both), over the period's range (see
-- html_top_campaigns.sql for why base_delivery_sent). Parameters: tenant, start, end.
SELECT g.group_id,
       COALESCE(kg.name, 'group ' || CAST(g.group_id AS TEXT)) AS group_name,
       COUNT(*) AS tips_delivered,
       COUNT(DISTINCT d.ksat_user_id) AS users_coached
FROM base_delivery_sent d
JOIN ksat_user_group g ON g.tenant_id = d.tenant_id AND g.ksat_user_id = d.ksat_user_id
LEFT JOIN ksat_group kg ON kg.tenant_id = g.tenant_id AND kg.group_id = g.group_id
WHERE d.tenant_id = :tenant AND d.period_type = 'day' AND d.period_start >= :start AND d.period_start <= :end
GROUP BY g.group_id, kg.name
ORDER BY COUNT(*) DESC, COUNT(DISTINCT d.ksat_user_id) DESC, COALESCE(kg.name, 'group ' || CAST(g.group_id AS TEXT))
LIMIT 10

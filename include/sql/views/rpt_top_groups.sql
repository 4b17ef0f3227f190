-- The ten KSAT groups whose members received the most SecurityTips per tenant and period. A tip to a
-- user in two groups counts for both (membership as the last KSAT directory refresh saw it).
DROP VIEW IF EXISTS rpt_top_groups;
CREATE VIEW rpt_top_groups AS
SELECT tenant_id, period_type, period_start, group_id, group_name, tips_delivered, users_coached,
       rnk AS rank
FROM (
    SELECT d.tenant_id, d.period_type, d.period_start, g.group_id,
           COALESCE(kg.name, 'group ' || CAST(g.group_id AS TEXT)) AS group_name,
           COUNT(*) AS tips_delivered,
           COUNT(DISTINCT d.ksat_user_id) AS users_coached,
           ROW_NUMBER() OVER (PARTITION BY d.tenant_id, d.period_type, d.period_start
                              ORDER BY COUNT(*) DESC, COUNT(DISTINCT d.ksat_user_id) DESC,
                                       COALESCE(kg.name, 'group ' || CAST(g.group_id AS TEXT))) AS rnk
    FROM base_delivery_sent d
    JOIN ksat_user_group g ON g.tenant_id = d.tenant_id AND g.ksat_user_id = d.ksat_user_id
    LEFT JOIN ksat_group kg ON kg.tenant_id = g.tenant_id AND kg.group_id = g.group_id
    GROUP BY d.tenant_id, d.period_type, d.period_start, g.group_id, kg.name
) ranked
WHERE rnk <= 10;

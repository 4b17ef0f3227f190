-- The ten campaigns that delivered the most SecurityTips per tenant and period (ties: more users
-- first, then by name).
DROP VIEW IF EXISTS rpt_top_campaigns;
CREATE VIEW rpt_top_campaigns AS
SELECT tenant_id, period_type, period_start, campaign, tips_delivered, users_coached, rnk AS rank
FROM (
    SELECT tenant_id, period_type, period_start, campaign,
           COUNT(*) AS tips_delivered,
           COUNT(DISTINCT ksat_user_id) AS users_coached,
           ROW_NUMBER() OVER (PARTITION BY tenant_id, period_type, period_start
                              ORDER BY COUNT(*) DESC, COUNT(DISTINCT ksat_user_id) DESC, campaign) AS rnk
    FROM base_delivery_sent
    GROUP BY tenant_id, period_type, period_start, campaign
) ranked
WHERE rnk <= 10;

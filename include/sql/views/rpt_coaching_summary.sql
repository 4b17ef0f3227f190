-- SecurityCoach's Real-Time Coaching Report: per tenant and day / week / month (UTC; weeks start
-- Monday), from delivered SecurityTips (delivery.status = 'sent', by sent_at). Users are distinct
-- KSAT users; "new" = coached in this period and never in an earlier one (per tenant).
DROP VIEW IF EXISTS rpt_coaching_summary;
CREATE VIEW rpt_coaching_summary AS
WITH per_user AS (
    SELECT tenant_id, period_type, period_start, ksat_user_id, COUNT(*) AS tips
    FROM base_delivery_sent
    GROUP BY tenant_id, period_type, period_start, ksat_user_id
), first_period AS (
    SELECT tenant_id, period_type, ksat_user_id, MIN(period_start) AS first_start
    FROM base_delivery_sent
    GROUP BY tenant_id, period_type, ksat_user_id
)
SELECT u.tenant_id,
       u.period_type,
       u.period_start,
       COUNT(*) AS users_coached,
       SUM(CASE WHEN u.tips > 1 THEN 1 ELSE 0 END) AS users_coached_more_than_once,
       SUM(CASE WHEN f.first_start = u.period_start THEN 1 ELSE 0 END) AS new_users_coached,
       SUM(u.tips) AS tips_delivered
FROM per_user u
JOIN first_period f
  ON f.tenant_id = u.tenant_id AND f.period_type = u.period_type AND f.ksat_user_id = u.ksat_user_id
GROUP BY u.tenant_id, u.period_type, u.period_start;

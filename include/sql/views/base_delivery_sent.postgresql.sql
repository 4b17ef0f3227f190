-- Helper for the rpt_* views (not granted to analysts): Delivered SecurityTips (delivery rows with status 'sent'), once per period type.
-- sent_jd is the UTC Julian day number (days, fractional), sent_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The postgresql
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_delivery_sent CASCADE;
CREATE VIEW base_delivery_sent AS
SELECT d.tenant_id, d.campaign, d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.ksat_user_id,
       CAST(EXTRACT(EPOCH FROM d.sent_at) AS DOUBLE PRECISION) / 86400.0 + 2440587.5 AS sent_jd,
       to_char(d.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS sent_iso,
       p.period_type,
       to_char(date_trunc(p.period_type, (d.sent_at AT TIME ZONE 'UTC')), 'YYYY-MM-DD') AS period_start
FROM delivery d
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p
WHERE d.status = 'sent' AND d.sent_at IS NOT NULL;

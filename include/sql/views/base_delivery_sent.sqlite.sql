-- Helper for the rpt_* views (not granted to analysts): Delivered SecurityTips (delivery rows with status 'sent'), once per period type.
-- sent_jd is the UTC Julian day number (days, fractional), sent_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The sqlite
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_delivery_sent;
CREATE VIEW base_delivery_sent AS
SELECT d.tenant_id, d.campaign, d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.ksat_user_id,
       julianday(d.sent_at) AS sent_jd,
       strftime('%Y-%m-%dT%H:%M:%SZ', d.sent_at) AS sent_iso,
       p.period_type,
       CASE p.period_type WHEN 'day' THEN date(d.sent_at)
                           WHEN 'week' THEN date(d.sent_at, 'weekday 0', '-6 days')
                           ELSE strftime('%Y-%m-01', d.sent_at) END AS period_start
FROM delivery d
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p
WHERE d.status = 'sent' AND d.sent_at IS NOT NULL;

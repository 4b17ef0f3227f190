-- Helper for the rpt_* views (not granted to analysts): Code42 alerts, once per period type of created_at.
-- created_jd is the UTC Julian day number (days, fractional), created_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The sqlite
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_alert;
CREATE VIEW base_alert AS
SELECT a.tenant_id, a.alert_id, a.actor_id, a.severity, a.risk_severity, a.state,
       julianday(a.created_at) AS created_jd,
       strftime('%Y-%m-%dT%H:%M:%SZ', a.created_at) AS created_iso,
       p.period_type,
       CASE p.period_type WHEN 'day' THEN date(a.created_at)
                           WHEN 'week' THEN date(a.created_at, 'weekday 0', '-6 days')
                           ELSE strftime('%Y-%m-01', a.created_at) END AS period_start
FROM code42_alert a
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

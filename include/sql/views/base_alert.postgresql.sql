-- Helper for the rpt_* views (not granted to analysts): Code42 alerts, once per period type of created_at.
-- created_jd is the UTC Julian day number (days, fractional), created_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The postgresql
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_alert CASCADE;
CREATE VIEW base_alert AS
SELECT a.tenant_id, a.alert_id, a.actor_id, a.severity, a.risk_severity, a.state,
       CAST(EXTRACT(EPOCH FROM a.created_at) AS DOUBLE PRECISION) / 86400.0 + 2440587.5 AS created_jd,
       to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_iso,
       p.period_type,
       to_char(date_trunc(p.period_type, (a.created_at AT TIME ZONE 'UTC')), 'YYYY-MM-DD') AS period_start
FROM code42_alert a
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

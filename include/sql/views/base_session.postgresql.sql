-- Helper for the rpt_* views (not granted to analysts): Code42 sessions, once per period type of begin_time.
-- begin_jd is the UTC Julian day number (days, fractional), begin_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The postgresql
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_session CASCADE;
CREATE VIEW base_session AS
SELECT s.tenant_id, s.session_id, s.actor_id, s.actor_name, s.severity, s.state, s.risk_score,
       CAST(EXTRACT(EPOCH FROM s.begin_time) AS DOUBLE PRECISION) / 86400.0 + 2440587.5 AS begin_jd,
       to_char(s.begin_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS begin_iso,
       p.period_type,
       to_char(date_trunc(p.period_type, (s.begin_time AT TIME ZONE 'UTC')), 'YYYY-MM-DD') AS period_start
FROM code42_session s
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

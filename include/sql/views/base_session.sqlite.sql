-- Helper for the rpt_* views (not granted to analysts): Code42 sessions, once per period type of begin_time.
-- begin_jd is the UTC Julian day number (days, fractional), begin_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The sqlite
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_session;
CREATE VIEW base_session AS
SELECT s.tenant_id, s.session_id, s.actor_id, s.actor_name, s.severity, s.state, s.risk_score,
       julianday(s.begin_time) AS begin_jd,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.begin_time) AS begin_iso,
       p.period_type,
       CASE p.period_type WHEN 'day' THEN date(s.begin_time)
                           WHEN 'week' THEN date(s.begin_time, 'weekday 0', '-6 days')
                           ELSE strftime('%Y-%m-01', s.begin_time) END AS period_start
FROM code42_session s
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

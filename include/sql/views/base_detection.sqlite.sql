-- Helper for the rpt_* views (not granted to analysts): Detections, once per period type of occurred_at.
-- occurred_jd is the UTC Julian day number (days, fractional), occurred_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The sqlite
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_detection;
CREATE VIEW base_detection AS
SELECT d.tenant_id, d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.severity,
       julianday(d.occurred_at) AS occurred_jd,
       strftime('%Y-%m-%dT%H:%M:%SZ', d.occurred_at) AS occurred_iso,
       p.period_type,
       CASE p.period_type WHEN 'day' THEN date(d.occurred_at)
                           WHEN 'week' THEN date(d.occurred_at, 'weekday 0', '-6 days')
                           ELSE strftime('%Y-%m-01', d.occurred_at) END AS period_start
FROM detection d
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

-- Helper for the rpt_* views (not granted to analysts): Detections, once per period type of occurred_at.
-- occurred_jd is the UTC Julian day number (days, fractional), occurred_iso the UTC time as
-- ISO text; period_start the UTC day / Monday / first of the month as 'YYYY-MM-DD'. The postgresql
-- variant; the other dialect's file computes the same columns.
DROP VIEW IF EXISTS base_detection CASCADE;
CREATE VIEW base_detection AS
SELECT d.tenant_id, d.rule_key, d.subject_type, d.subject_id, d.actor_id, d.severity,
       CAST(EXTRACT(EPOCH FROM d.occurred_at) AS DOUBLE PRECISION) / 86400.0 + 2440587.5 AS occurred_jd,
       to_char(d.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS occurred_iso,
       p.period_type,
       to_char(date_trunc(p.period_type, (d.occurred_at AT TIME ZONE 'UTC')), 'YYYY-MM-DD') AS period_start
FROM detection d
CROSS JOIN (SELECT 'day' AS period_type UNION ALL SELECT 'week' UNION ALL SELECT 'month') p;

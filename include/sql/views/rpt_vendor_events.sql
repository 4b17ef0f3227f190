-- Code42 activity as the vendor reports it, per tenant and period: sessions (by begin_time) counted
-- by severity, risk indicator and what the indicator means (vector, destination category, from
-- risk_indicator_vocabulary), and alerts (by created_at) counted by risk severity.
-- A session with several risk indicators counts once under each (events); events_weighted gives
-- each of its rows 1/n so that summing it over indicators counts every session exactly once.
-- Severity names: NO_RISK_INDICATED, LOW, MODERATE, HIGH, CRITICAL (severity_level 0..4).
DROP VIEW IF EXISTS rpt_vendor_events;
CREATE VIEW rpt_vendor_events AS
WITH indicators AS (
    SELECT tenant_id, session_id, name,
           COUNT(*) OVER (PARTITION BY tenant_id, session_id) AS n
    FROM code42_session_risk_indicator
)
SELECT s.tenant_id,
       s.period_type,
       s.period_start,
       'session' AS source,
       CASE s.severity WHEN 0 THEN 'NO_RISK_INDICATED' WHEN 1 THEN 'LOW' WHEN 2 THEN 'MODERATE'
                       WHEN 3 THEN 'HIGH' WHEN 4 THEN 'CRITICAL' END AS severity,
       s.severity AS severity_level,
       i.name AS risk_indicator,
       v.vector,
       v.destination_category AS destination,
       COUNT(DISTINCT s.session_id) AS events,
       CAST(SUM(1.0 / COALESCE(i.n, 1)) AS DOUBLE PRECISION) AS events_weighted
FROM base_session s
LEFT JOIN indicators i ON i.tenant_id = s.tenant_id AND i.session_id = s.session_id
LEFT JOIN risk_indicator_vocabulary v ON v.tenant_id = s.tenant_id AND v.indicator_name = i.name
GROUP BY s.tenant_id, s.period_type, s.period_start, s.severity, i.name, v.vector, v.destination_category
UNION ALL
SELECT a.tenant_id,
       a.period_type,
       a.period_start,
       'alert' AS source,
       UPPER(a.risk_severity) AS severity,
       CASE UPPER(a.risk_severity) WHEN 'NO_RISK_INDICATED' THEN 0 WHEN 'LOW' THEN 1 WHEN 'MODERATE' THEN 2
                                   WHEN 'HIGH' THEN 3 WHEN 'CRITICAL' THEN 4 END AS severity_level,
       NULL AS risk_indicator,
       NULL AS vector,
       NULL AS destination,
       COUNT(*) AS events,
       CAST(COUNT(*) AS DOUBLE PRECISION) AS events_weighted
FROM base_alert a
GROUP BY a.tenant_id, a.period_type, a.period_start, UPPER(a.risk_severity);

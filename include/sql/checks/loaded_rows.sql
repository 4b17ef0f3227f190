-- Data check after a sync run's load, for one tenant (SQLCheckOperator: every column must be true).
-- Rendered by Jinja: sessions / alerts = how many records the run's extract tasks read (integers);
-- the tenant uid is a bound parameter (named tenant_id, colon-prefixed below). The load keeps what
-- it read (the tenant holds at least as many rows), and no child row of a session points at a
-- session the warehouse does not hold.
SELECT
    (SELECT COUNT(*) FROM code42_session WHERE tenant_id = :tenant_id) >= {{ sessions }}
        AS sessions_loaded,
    (SELECT COUNT(*) FROM code42_alert WHERE tenant_id = :tenant_id) >= {{ alerts }}
        AS alerts_loaded,
    NOT EXISTS (
        SELECT 1 FROM code42_session_alert l
        WHERE l.tenant_id = :tenant_id
          AND NOT EXISTS (SELECT 1 FROM code42_session s
                          WHERE s.tenant_id = l.tenant_id AND s.session_id = l.session_id)
    ) AS session_alerts_have_sessions,
    NOT EXISTS (
        SELECT 1 FROM code42_session_risk_indicator r
        WHERE r.tenant_id = :tenant_id
          AND NOT EXISTS (SELECT 1 FROM code42_session s
                          WHERE s.tenant_id = r.tenant_id AND s.session_id = r.session_id)
    ) AS risk_indicators_have_sessions

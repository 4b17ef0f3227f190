-- The riskiest Code42 actors per tenant by a time-decayed risk score (rank 1 = riskiest).
-- risk_score = sum over the actor's sessions of session.risk_score * 0.5 ^ (age_days / 14):
-- a half-life of 14 days, so a session two weeks older than another counts half as much. age_days is
-- measured from the tenant's latest session (as_of), not from the wall clock, so the figure only
-- changes when data changes. raw_risk_score is the undecayed sum.
DROP VIEW IF EXISTS rpt_risk_overview;
CREATE VIEW rpt_risk_overview AS
WITH latest AS (
    SELECT tenant_id, MAX(begin_jd) AS as_of_jd, MAX(begin_iso) AS as_of_iso
    FROM base_session
    WHERE period_type = 'day'
    GROUP BY tenant_id
), scored AS (
    SELECT s.tenant_id,
           s.actor_id,
           l.as_of_iso,
           SUM(COALESCE(s.risk_score, 0) * power(0.5, (l.as_of_jd - s.begin_jd) / 14.0)) AS risk_score,
           SUM(COALESCE(s.risk_score, 0)) AS raw_risk_score,
           COUNT(*) AS sessions,
           MAX(s.begin_iso) AS last_seen,
           MAX(s.actor_name) AS session_actor_name
    FROM base_session s
    JOIN latest l ON l.tenant_id = s.tenant_id
    WHERE s.period_type = 'day' AND s.actor_id IS NOT NULL
    GROUP BY s.tenant_id, s.actor_id, l.as_of_iso
)
SELECT sc.tenant_id,
       SUBSTR(sc.as_of_iso, 1, 10) AS as_of,
       sc.actor_id,
       COALESCE(a.name, sc.session_actor_name) AS actor_name,
       m.ksat_user_id,
       sc.risk_score,
       sc.raw_risk_score,
       14 AS half_life_days,
       sc.sessions,
       sc.last_seen,
       ROW_NUMBER() OVER (PARTITION BY sc.tenant_id ORDER BY sc.risk_score DESC, sc.actor_id) AS rank
FROM scored sc
LEFT JOIN code42_actor a ON a.tenant_id = sc.tenant_id AND a.actor_id = sc.actor_id
LEFT JOIN user_mapping m ON m.tenant_id = sc.tenant_id AND m.actor_id = sc.actor_id;

-- HTML report: the ten riskiest Code42 actors of the tenant (time-decayed score, half-life 14 days, as of
-- the tenant's latest session; not limited to the period). Parameter: tenant.
SELECT rank, actor_id, actor_name, ksat_user_id, risk_score, raw_risk_score, half_life_days, sessions,
       last_seen, as_of
FROM rpt_risk_overview
WHERE tenant_id = :tenant AND rank <= 10
ORDER BY rank

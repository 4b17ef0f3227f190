-- HTML report: recidivism by campaign and rule over the period's days. users_coached and users_repeated
-- are summed over the days (a user coached on two days counts twice: coached user-days); complete = 1
-- when every day's 30-day window is already covered by data. Parameters: tenant, start, end.
SELECT campaign, rule_key,
       SUM(users_coached) AS coached,
       SUM(users_repeated) AS repeated,
       MIN(window_complete) AS complete
FROM rpt_recidivism
WHERE tenant_id = :tenant AND period_type = 'day' AND period_start >= :start AND period_start <= :end
GROUP BY campaign, rule_key
ORDER BY campaign, rule_key

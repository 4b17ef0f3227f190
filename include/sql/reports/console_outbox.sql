-- SecurityCoach view: the outbox (delivery) of a tenant per campaign, channel and status, with the
-- latest time a row of that status was planned or sent. Parameter: tenant.
SELECT campaign, channel, status, COUNT(*) AS n, MAX(COALESCE(sent_at, created_at)) AS latest
FROM delivery
WHERE tenant_id = :tenant
GROUP BY campaign, channel, status
ORDER BY campaign, channel, status

-- HTML report, pipeline health: campaigns that send nothing for now because a check they need
-- failed (coaching_block, e.g. 403 on Code42 Watchlists). Parameter: tenant.
SELECT campaign, reason, since, checked_at
FROM coaching_block
WHERE tenant_id = :tenant
ORDER BY campaign

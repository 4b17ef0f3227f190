-- HTML report, pipeline health: the tenant's sync runs whose interval ends in the period.
-- Parameters: tenant, from_ts (inclusive), to_ts (exclusive)
SELECT COUNT(*) AS runs,
       COALESCE(SUM(requests), 0) AS requests,
       COALESCE(SUM(retries), 0) AS retries,
       COALESCE(SUM(n_429), 0) AS n_429,
       COALESCE(SUM(n_5xx), 0) AS n_5xx,
       COALESCE(SUM(items), 0) AS items,
       COALESCE(SUM(rows_changed), 0) AS rows_changed
FROM sync_audit
WHERE tenant_id = :tenant AND interval_end >= :from_ts AND interval_end < :to_ts

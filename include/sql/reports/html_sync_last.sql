-- HTML report, pipeline health: the tenant's last successful sync run (a sync_audit row is written by
-- the last task of a successful run). Parameter: tenant.
SELECT dag_id, run_id, interval_start, interval_end, finished_at
FROM sync_audit
WHERE tenant_id = :tenant
ORDER BY interval_end DESC, finished_at DESC
LIMIT 1

-- HTML report: the tenants the reporting DAG writes a report for: every tenant with synced runs or data.
SELECT tenant_id FROM sync_audit
UNION
SELECT tenant_id FROM code42_session
ORDER BY tenant_id

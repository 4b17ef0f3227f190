-- One line per tenant: what the sync runs did (read by the demo summary and the HTML report).
SELECT tenant_id,
       COUNT(*)            AS runs,
       MIN(interval_start) AS first_interval,
       MAX(interval_end)   AS last_interval,
       SUM(pages)          AS pages,
       SUM(items)          AS items,
       SUM(requests)       AS requests,
       SUM(retries)        AS retries,
       SUM(n_429)          AS n_429,
       SUM(n_5xx)          AS n_5xx,
       SUM(rows_changed)   AS rows_changed,
       SUM(seconds)        AS seconds
FROM sync_audit
GROUP BY tenant_id
ORDER BY tenant_id

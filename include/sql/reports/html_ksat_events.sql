-- HTML report, pipeline health: the KnowBe4 User Event API push of this tenant. Events on the KSAT
-- timelines by status (all time), and the quota of the key(s) that pushed them on the latest UTC day
-- a call was counted (calls used and left). Parameter: tenant.
SELECT 'status' AS what, k.status AS name, COUNT(*) AS n, NULL AS quota, NULL AS day
FROM ksat_event k
WHERE k.tenant_id = :tenant
GROUP BY k.status
UNION ALL
SELECT 'quota', q.key_id, q.calls, q.quota, q.day
FROM ksat_event_quota q
WHERE q.key_id IN (SELECT DISTINCT key_id FROM ksat_event WHERE tenant_id = :tenant AND key_id IS NOT NULL)
  AND q.day = (SELECT MAX(day) FROM ksat_event_quota q2 WHERE q2.key_id = q.key_id)
ORDER BY 1, 2

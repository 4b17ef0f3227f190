-- Per tenant: actors mapped to a KSAT user, and unmapped ones by reason.
SELECT a.tenant_id,
       COUNT(*) AS actors,
       SUM(CASE WHEN m.actor_id IS NOT NULL THEN 1 ELSE 0 END) AS mapped,
       SUM(CASE WHEN u.reason = 'ambiguous' THEN 1 ELSE 0 END) AS ambiguous,
       SUM(CASE WHEN u.reason = 'no_match' THEN 1 ELSE 0 END) AS no_match
FROM code42_actor a
LEFT JOIN user_mapping m ON m.tenant_id = a.tenant_id AND m.actor_id = a.actor_id
LEFT JOIN unmapped_actor u ON u.tenant_id = a.tenant_id AND u.actor_id = a.actor_id
GROUP BY a.tenant_id
ORDER BY a.tenant_id

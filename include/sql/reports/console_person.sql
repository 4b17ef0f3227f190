-- SecurityCoach view: one KSAT user of a tenant (the timeline page's heading) and the Code42 actors
-- mapped to them. Parameters: tenant, ksat_user_id.
SELECT u.ksat_user_id, u.email, u.first_name, u.last_name, u.department, u.status,
       m.actor_id, a.name AS actor_name, m.rule AS mapping_rule
FROM ksat_user u
LEFT JOIN user_mapping m ON m.tenant_id = u.tenant_id AND m.ksat_user_id = u.ksat_user_id
LEFT JOIN code42_actor a ON a.tenant_id = m.tenant_id AND a.actor_id = m.actor_id
WHERE u.tenant_id = :tenant AND u.ksat_user_id = :ksat_user_id
ORDER BY m.actor_id

-- SecurityCoach view: the Code42 actors of a tenant that cannot be coached yet (rpt_unmapped_events:
-- no KSAT user, or two that fit), the most activity first. Parameters: tenant, limit.
SELECT actor_id, actor_name, reason, evidence, sessions, alerts, first_session, last_session
FROM rpt_unmapped_events
WHERE tenant_id = :tenant
ORDER BY sessions + alerts DESC, actor_id
LIMIT :limit

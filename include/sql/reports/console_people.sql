-- SecurityCoach view: the people of a tenant with something on their timeline (rpt_user_timeline), the
-- most recent first, with their KSAT name and email, detections, tips and the time of their latest
-- event. Parameters: tenant, limit.
SELECT tl.ksat_user_id,
       MAX(u.email) AS email,
       MAX(TRIM(COALESCE(u.first_name, '') || ' ' || COALESCE(u.last_name, ''))) AS name,
       SUM(CASE WHEN tl.kind = 'detection' THEN 1 ELSE 0 END) AS detections,
       SUM(CASE WHEN tl.kind = 'tip' THEN 1 ELSE 0 END) AS tips,
       MAX(tl.event_time) AS last_event
FROM rpt_user_timeline tl
LEFT JOIN ksat_user u ON u.tenant_id = tl.tenant_id AND u.ksat_user_id = tl.ksat_user_id
WHERE tl.tenant_id = :tenant
GROUP BY tl.ksat_user_id
ORDER BY MAX(tl.event_time) DESC, tl.ksat_user_id
LIMIT :limit

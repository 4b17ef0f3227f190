-- Code42 identities SecurityCoach cannot coach yet: no KSAT user, or two that fit (ambiguous).
-- One row per unmapped actor with the reason and how much activity is waiting on a mapping.
DROP VIEW IF EXISTS rpt_unmapped_events;
CREATE VIEW rpt_unmapped_events AS
SELECT u.tenant_id,
       u.actor_id,
       a.name AS actor_name,
       u.reason,
       u.evidence,
       (SELECT COUNT(*) FROM code42_session s
         WHERE s.tenant_id = u.tenant_id AND s.actor_id = u.actor_id) AS sessions,
       (SELECT COUNT(*) FROM code42_alert al
         WHERE al.tenant_id = u.tenant_id AND al.actor_id = u.actor_id) AS alerts,
       (SELECT MIN(s.begin_time) FROM code42_session s
         WHERE s.tenant_id = u.tenant_id AND s.actor_id = u.actor_id) AS first_session,
       (SELECT MAX(s.begin_time) FROM code42_session s
         WHERE s.tenant_id = u.tenant_id AND s.actor_id = u.actor_id) AS last_session
FROM unmapped_actor u
LEFT JOIN code42_actor a ON a.tenant_id = u.tenant_id AND a.actor_id = u.actor_id;

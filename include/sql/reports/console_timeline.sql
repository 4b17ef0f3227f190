-- SecurityCoach view: a person's timeline (rpt_user_timeline), oldest first, with the rule's name.
-- Parameters: tenant, ksat_user_id.
SELECT tl.event_time, tl.kind, tl.rule_key, COALESCE(r.name, tl.rule_key) AS rule_name, tl.severity,
       tl.subject_type, tl.subject_id, tl.campaign, tl.status
FROM rpt_user_timeline tl
LEFT JOIN detection_rule r ON r.tenant_id = tl.tenant_id AND r.rule_key = tl.rule_key
WHERE tl.tenant_id = :tenant AND tl.ksat_user_id = :ksat_user_id
ORDER BY tl.event_time, tl.kind, tl.subject_id, tl.campaign

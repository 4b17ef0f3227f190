-- SecurityCoach view: tips in doubt (a worker stopped between claiming and recording them: they may
-- or may not have reached the person, and are never resent by themselves), oldest claim first: a
-- person must check the channel and decide. Parameter: tenant.
SELECT dl.campaign, dl.rule_key, dl.subject_type, dl.subject_id, dl.ksat_user_id, u.email, dl.channel,
       dl.claimed_at, dl.attempts, dl.reason, dl.idempotency_key
FROM delivery dl
LEFT JOIN ksat_user u ON u.tenant_id = dl.tenant_id AND u.ksat_user_id = dl.ksat_user_id
WHERE dl.tenant_id = :tenant AND dl.status = 'in_doubt'
ORDER BY dl.claimed_at, dl.campaign, dl.subject_id

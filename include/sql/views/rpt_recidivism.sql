-- Does coaching work? Of the KSAT users sent a SecurityTip for rule R by campaign C in the period
-- (by sent_at), how many had another detection of the same rule within window_days (30) after a tip:
-- same Code42 actor, or an actor mapped to the same KSAT user. window_complete = 1 once the tenant's
-- data (its latest session) reaches 30 days past the period's last tip; before that the share can
-- still grow.
DROP VIEW IF EXISTS rpt_recidivism;
CREATE VIEW rpt_recidivism AS
WITH tips AS (
    SELECT t.tenant_id, t.period_type, t.period_start, t.campaign, t.rule_key, t.ksat_user_id, t.sent_jd,
           CASE WHEN EXISTS (
               SELECT 1
               FROM base_detection d
               LEFT JOIN user_mapping m ON m.tenant_id = d.tenant_id AND m.actor_id = d.actor_id
               WHERE d.period_type = 'day'
                 AND d.tenant_id = t.tenant_id
                 AND d.rule_key = t.rule_key
                 AND (d.actor_id = t.actor_id OR m.ksat_user_id = t.ksat_user_id)
                 AND (d.subject_type <> t.subject_type OR d.subject_id <> t.subject_id)
                 AND d.occurred_jd > t.sent_jd
                 AND d.occurred_jd <= t.sent_jd + 30
           ) THEN 1 ELSE 0 END AS repeated
    FROM base_delivery_sent t
), latest AS (
    SELECT tenant_id, MAX(begin_jd) AS latest_jd
    FROM base_session
    WHERE period_type = 'day'
    GROUP BY tenant_id
)
SELECT t.tenant_id,
       t.period_type,
       t.period_start,
       t.campaign,
       t.rule_key,
       30 AS window_days,
       COUNT(DISTINCT t.ksat_user_id) AS users_coached,
       COUNT(DISTINCT CASE WHEN t.repeated = 1 THEN t.ksat_user_id END) AS users_repeated,
       CAST(COUNT(DISTINCT CASE WHEN t.repeated = 1 THEN t.ksat_user_id END) AS DOUBLE PRECISION)
           / COUNT(DISTINCT t.ksat_user_id) AS repeat_share,
       CASE WHEN MAX(t.sent_jd) + 30 <= MAX(l.latest_jd) THEN 1 ELSE 0 END AS window_complete
FROM tips t
LEFT JOIN latest l ON l.tenant_id = t.tenant_id
GROUP BY t.tenant_id, t.period_type, t.period_start, t.campaign, t.rule_key;

-- Per tenant and campaign: SecurityTips by outcome (sent, test, stale, suppressed, no_chat_account,
-- withdrawn, covered_by_instructor, on_watchlist, failed, ...).
SELECT tenant_id,
       campaign,
       channel,
       SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS sent,
       SUM(CASE WHEN status = 'test' THEN 1 ELSE 0 END) AS test,
       SUM(CASE WHEN status = 'stale' THEN 1 ELSE 0 END) AS stale,
       SUM(CASE WHEN status = 'suppressed' THEN 1 ELSE 0 END) AS suppressed,
       SUM(CASE WHEN status = 'no_chat_account' THEN 1 ELSE 0 END) AS no_chat_account,
       SUM(CASE WHEN status = 'withdrawn' THEN 1 ELSE 0 END) AS withdrawn,
       SUM(CASE WHEN status = 'covered_by_instructor' THEN 1 ELSE 0 END) AS covered_by_instructor,
       SUM(CASE WHEN status = 'on_watchlist' THEN 1 ELSE 0 END) AS on_watchlist,
       SUM(CASE WHEN status IN ('pending', 'sending') THEN 1 ELSE 0 END) AS pending,
       SUM(CASE WHEN status IN ('failed', 'in_doubt') THEN 1 ELSE 0 END) AS failed,
       COUNT(DISTINCT CASE WHEN status = 'sent' THEN ksat_user_id END) AS users_coached
FROM delivery
GROUP BY tenant_id, campaign, channel
ORDER BY tenant_id, campaign

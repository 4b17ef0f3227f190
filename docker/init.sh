#!/bin/bash
# airflow-init: migrate the metadata DB, create the admin user's auth, the connections and pools.
# Every value comes from the environment (.env), none from docker-compose.yaml.
set -euo pipefail
airflow db migrate

# Load the project's plugin in these CLI calls too (the CLI loads plugins lazily, i.e. not for
# `connections add`): it stores each code42 / knowbe4 connection's Base URL port, which the UI's Test needs.
export AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False

replace_connection() {  # name, then `airflow connections add` options
  local name="$1"; shift
  airflow connections delete "$name" >/dev/null 2>&1 || true
  airflow connections add "$name" "$@"
}

replace_connection code42_default --conn-type code42 --conn-host "${CODE42_BASE_URL}" \
  --conn-login "${CODE42_CLIENT_ID}" --conn-password "${CODE42_CLIENT_SECRET}"
replace_connection knowbe4_default --conn-type knowbe4 --conn-host "${KNOWBE4_BASE_URL}" \
  --conn-password "${KNOWBE4_API_KEY}"
replace_connection securitycoach_warehouse --conn-type postgres --conn-host postgres --conn-port 5432 \
  --conn-schema warehouse --conn-login warehouse --conn-password "${WAREHOUSE_PASSWORD}"
replace_connection securitycoach_chat_webhook --conn-type http --conn-host "${CHAT_WEBHOOK_HOST}" \
  --conn-password "${CHAT_WEBHOOK_SECRET}"
slack_extra='{}'  # the sandbox's Slack Web API in the example .env; empty SLACK_BASE_URL: slack.com
if [ -n "${SLACK_BASE_URL:-}" ]; then slack_extra="{\"base_url\": \"${SLACK_BASE_URL}\"}"; fi
replace_connection securitycoach_slack --conn-type slack --conn-password "${SLACK_BOT_TOKEN}" \
  --conn-extra "$slack_extra"
replace_connection securitycoach_smtp --conn-type smtp --conn-host "${SMTP_HOST}" --conn-port "${SMTP_PORT}" \
  --conn-extra '{"disable_tls": true, "disable_ssl": true}'

# One pool per tenant of include/config/tenants.yaml: code42_<name>, its slots = the Code42 pages the
# tenant's extract tasks may fetch at once (each task holds pages_in_flight slots).
pools="$(mktemp)"
securitycoach tenant pools > "$pools"   # fails (and stops the init) on a bad tenants file
while IFS=$'\t' read -r pool slots description; do
  airflow pools set "$pool" "$slots" "$description"
done < "$pools"
rm -f "$pools"
echo "airflow-init: done"

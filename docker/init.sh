#!/bin/bash
# airflow-init: check the required secrets, migrate the metadata DB, create the connections, the
# pools and the admin user's password, then give the mounted folders to AIRFLOW_UID.
# Every value comes from the environment (.env), none from docker-compose.yaml.
set -euo pipefail

refuse() { echo "airflow-init: $*" >&2; exit 1; }

# Airflow encrypts connection passwords and variables with the Fernet key: without one they would be
# stored in clear, and a key that changes makes the stored ones unreadable.
[ -n "${AIRFLOW__CORE__FERNET_KEY:-}" ] || refuse "FERNET_KEY is empty in .env: make one with" \
  "python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\""
python -c 'import os, sys
from cryptography.fernet import Fernet
try:
    Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"])
except ValueError as exc:
    sys.exit(f"airflow-init: FERNET_KEY in .env is not a Fernet key ({exc}): make one with "
             "python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"")'
[ -n "${AIRFLOW_ADMIN_USER:-}" ] || refuse "AIRFLOW_ADMIN_USER is empty in .env: name the Airflow admin user"
[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ] || refuse "AIRFLOW_ADMIN_PASSWORD is empty in .env: set the password of" \
  "the Airflow admin user"

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

# The simple auth manager's users are AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (the admin); their
# passwords are this file. The admin's is set from .env on every start (a new AIRFLOW_ADMIN_PASSWORD
# takes effect at the next `up`); any other user keeps the password the api-server generated for it.
passwords="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME:-/opt/airflow}/simple_auth_manager_passwords.json.generated}"
mkdir -p "$(dirname "$passwords")"
(umask 077 && PASSWORDS_FILE="$passwords" python -c 'import json, os, pathlib
path = pathlib.Path(os.environ["PASSWORDS_FILE"])
users = json.loads(path.read_text() or "{}") if path.exists() else {}
users[os.environ["AIRFLOW_ADMIN_USER"]] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
path.with_name(path.name + ".partial").write_text(json.dumps(users) + "\n")
path.with_name(path.name + ".partial").replace(path)')

# Run as root by compose: the bind-mounted folders (created by Docker as root when missing), the
# auth and throttle volumes go to the user the other services run as.
if [ "$(id -u)" = 0 ]; then
  logs="${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-${AIRFLOW_HOME:-/opt/airflow}/logs}"
  data="${SECURITYCOACH_DATA_DIR:-/opt/securitycoach/data}"
  folders=("$logs" "$data/reports" "${SECURITYCOACH_UPLOAD_DIR:-$data/uploads}" "$(dirname "$passwords")")
  if [ -n "${CODE42_THROTTLE_DIR:-}" ]; then folders+=("$CODE42_THROTTLE_DIR"); fi
  mkdir -p "${folders[@]}"
  chown -R "${AIRFLOW_UID:-50000}:0" "${folders[@]}"
fi
echo "airflow-init: done"

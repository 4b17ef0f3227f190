#!/bin/bash
# First start of the postgres service: a separate database and owner for the warehouse.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v pw="$WAREHOUSE_PASSWORD" <<'SQL'
CREATE ROLE warehouse LOGIN PASSWORD :'pw';
CREATE DATABASE warehouse OWNER warehouse;
SQL

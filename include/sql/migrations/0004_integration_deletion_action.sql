-- Version 4: integration_deletion_action (what Delete Integration did to disable a tenant).
-- Only a new table: migrate() creates it from schema.py after this script.
SELECT 1;

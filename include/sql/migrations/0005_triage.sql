-- Version 5: triage-aware delivery. delivery.status holds longer outcomes (covered_by_instructor:
-- SQLite does not enforce VARCHAR lengths, so nothing to alter here; see 0005_triage.postgresql.sql),
-- and coaching_block (campaigns held by a failed check) is a new table migrate() creates from schema.py.
SELECT 1;

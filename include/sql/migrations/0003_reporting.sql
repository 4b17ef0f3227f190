-- Version 3: reporting. Two new tables, ksat_user_group (KSAT group membership as rows) and
-- risk_indicator_vocabulary (what a Code42 risk indicator means: vector, destination); migrate()
-- creates them from schema.py after this script. They fill on the next KSAT directory refresh and
-- the next detection run; the rpt_* views are recreated by every migrate.
SELECT 1;

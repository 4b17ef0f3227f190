-- Version 2: detection rules, detections, campaigns and the delivery outbox.
-- Only new tables (detection_rule, detection, coaching_campaign, delivery, stg_detection_queue):
-- migrate() creates them from schema.py after this script, so there is nothing to alter here.
SELECT 1;

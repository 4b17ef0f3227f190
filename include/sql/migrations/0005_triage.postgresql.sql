-- Version 5 on PostgreSQL: delivery.status widened to VARCHAR(32) (covered_by_instructor). Views
-- that read delivery are dropped first (PostgreSQL does not alter a column a view uses); migrate()
-- recreates every view after the migrations. coaching_block comes from schema.py after this script.
DROP VIEW IF EXISTS rpt_coaching_summary CASCADE;
DROP VIEW IF EXISTS rpt_recidivism CASCADE;
DROP VIEW IF EXISTS rpt_top_campaigns CASCADE;
DROP VIEW IF EXISTS rpt_top_groups CASCADE;
DROP VIEW IF EXISTS base_delivery_sent CASCADE;
ALTER TABLE delivery ALTER COLUMN status TYPE VARCHAR(32);

-- Version 6: Code42 detections on the KSAT users' timelines (KnowBe4 User Event API) and the
-- optional Code42 session notes. ksat_event, ksat_event_type and ksat_event_quota are new tables
-- migrate() creates from schema.py after this script; delivery gains the write-back's two columns
-- (the same statements on SQLite and PostgreSQL; adding a column leaves the views that read
-- delivery as they are).
ALTER TABLE delivery ADD COLUMN note_status VARCHAR(16);
ALTER TABLE delivery ADD COLUMN note_at TIMESTAMP WITH TIME ZONE;

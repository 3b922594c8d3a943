-- A collection's running actor learns of weeks given back to it (retry-failed, rerun) or added
-- to it (keep-fresh) while it runs: the daemon's scan reads `work_added_us` of the collections it
-- holds and tells their actors to look again. Written by triggers, so every writer of weeks (the
-- CLI, the console, the DbWriter) is covered without each statement having to remember it.
-- Microseconds since the epoch of the database's clock; 0 = never.
ALTER TABLE report_data_collections ADD COLUMN work_added_us INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER weeks_added AFTER INSERT ON report_data_weeks
BEGIN
    UPDATE report_data_collections
       SET work_added_us = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
     WHERE id = NEW.collection_id;
END;

CREATE TRIGGER weeks_reopened AFTER UPDATE OF status ON report_data_weeks
    WHEN NEW.status = 'pending' AND OLD.status IN ('failed', 'completed')
BEGIN
    UPDATE report_data_collections
       SET work_added_us = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
     WHERE id = NEW.collection_id;
END;

-- A collection's running actor learns of weeks given back to it (retry-failed, rerun) or added
-- to it (keep-fresh) while it runs: the daemon's scan reads `work_added_us` of the collections it
-- holds and tells their actors to look again. Written by triggers, so every writer of weeks (the
-- CLI, the console, the DbWriter) is covered without each statement having to remember it.
-- Microseconds since the epoch of the database's clock; 0 = never.
ALTER TABLE report_data_collections ADD COLUMN work_added_us BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION note_work_added() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE report_data_collections
       SET work_added_us = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
     WHERE id = NEW.collection_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER weeks_added AFTER INSERT ON report_data_weeks
    FOR EACH ROW EXECUTE FUNCTION note_work_added();
CREATE TRIGGER weeks_reopened AFTER UPDATE OF status ON report_data_weeks
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status IN ('failed', 'completed'))
    EXECUTE FUNCTION note_work_added();

-- A collection AMC will never run (every execution failed with the same reason, or every create
-- was refused with the same message, before any week completed) is held: it is `paused` with the
-- reason AMC gave, so no process claims it, and `collection resume` clears the mark.
ALTER TABLE report_data_collections ADD COLUMN held_reason TEXT;
ALTER TABLE report_data_collections ADD COLUMN held_at TEXT;

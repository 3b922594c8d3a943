-- A collection the supervisor gave up on (its actor kept crashing) stays failed: late week writes
-- must not re-derive it back to running. `retry-failed` clears the mark.
ALTER TABLE report_data_collections ADD COLUMN given_up BOOLEAN NOT NULL DEFAULT FALSE;

-- Re-running a completed week (`collection rerun`, the console): the new execution's rows are
-- staged beside the old execution's, which readers keep using until the new one completes, so a
-- row is keyed by its execution too (SQLite cannot change a primary key: the table is rebuilt);
-- `rerun_of` names the execution whose rows stay readable while the week is collected again
-- (store/rerun.rs).
CREATE TABLE report_data_rows_keyed (
    week_id       TEXT NOT NULL REFERENCES report_data_weeks(id) ON DELETE CASCADE,
    file_index    INTEGER NOT NULL,
    row_index     INTEGER NOT NULL,
    collection_id TEXT NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    execution_id  TEXT NOT NULL REFERENCES workflow_executions(id),
    data          TEXT NOT NULL,
    PRIMARY KEY (week_id, execution_id, file_index, row_index)
);
INSERT INTO report_data_rows_keyed
    (week_id, file_index, row_index, collection_id, execution_id, data)
    SELECT week_id, file_index, row_index, collection_id, execution_id, data FROM report_data_rows;
DROP TABLE report_data_rows;
ALTER TABLE report_data_rows_keyed RENAME TO report_data_rows;
CREATE INDEX report_data_rows_collection_idx ON report_data_rows (collection_id);
ALTER TABLE report_data_weeks ADD COLUMN rerun_of TEXT;

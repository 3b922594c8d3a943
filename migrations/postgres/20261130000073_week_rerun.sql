-- Re-running a completed week (`collection rerun`, the console): the new execution's rows are
-- staged beside the old execution's, which readers keep using until the new one completes, so a
-- row is keyed by its execution too; `rerun_of` names the execution whose rows stay readable
-- while the week is collected again (store/rerun.rs).
ALTER TABLE report_data_rows DROP CONSTRAINT IF EXISTS report_data_rows_pkey;
ALTER TABLE report_data_rows ADD PRIMARY KEY (week_id, execution_id, file_index, row_index);
ALTER TABLE report_data_weeks ADD COLUMN rerun_of UUID;

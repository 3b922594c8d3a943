-- What a week serves while it is collected again: a rerun keeps, beside `rerun_of`, the AMC id,
-- row count and checksum of the execution whose rows stay readable, so `collection show` names
-- them in every state and a rerun that is cancelled or fails for good puts the week back to
-- `completed` with them (store/lineage.rs, store/rerun.rs).
ALTER TABLE report_data_weeks ADD COLUMN rerun_of_amc_execution_id TEXT;
ALTER TABLE report_data_weeks ADD COLUMN rerun_of_row_count BIGINT;
ALTER TABLE report_data_weeks ADD COLUMN rerun_of_data_checksum TEXT;

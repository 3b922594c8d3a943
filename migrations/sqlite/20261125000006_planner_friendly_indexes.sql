-- A week's execution belongs to that week alone: saying so lets the planner go straight to the
-- one row (with a plain index and fresh, un-analysed tables Postgres also scanned the status index).
DROP INDEX report_data_weeks_execution_idx;
CREATE UNIQUE INDEX report_data_weeks_execution_key ON report_data_weeks (execution_id);
-- The slot count of an instance (every intent) finds the instance's collections without a scan.
CREATE INDEX report_data_collections_instance_idx ON report_data_collections (instance_id);

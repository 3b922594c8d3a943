-- Week transitions keyed by execution (submitted, downloading) must not scan every week.
CREATE INDEX report_data_weeks_execution_idx ON report_data_weeks (execution_id);

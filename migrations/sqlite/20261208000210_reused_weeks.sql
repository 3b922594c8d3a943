-- A week completed from another collection's stored execution (store/reuse.rs) names the
-- execution that produced its rows, which the other collection's week names too: an execution
-- is still minted for one week and one collection, so a week's execution stays unique within its
-- collection, and lookups by execution keep an index led by it.
DROP INDEX report_data_weeks_execution_key;
CREATE UNIQUE INDEX report_data_weeks_execution_key ON report_data_weeks (execution_id, collection_id);

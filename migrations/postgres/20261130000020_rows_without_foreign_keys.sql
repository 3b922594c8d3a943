-- Result rows arrive by the million through COPY, and a foreign key costs a trigger and an index
-- probe per row and key: with its three keys the table loaded five times slower than without.
-- The keys guard nothing the writers could get wrong: rows are written only under the week,
-- collection and execution of a downloading week (store/staging.rs), readers join them to
-- completed weeks, and weeks, collections and executions are never deleted. (SQLite keeps its
-- keys: its checks are cheap, and dropping them would mean rebuilding the table.)
ALTER TABLE report_data_rows
    DROP CONSTRAINT IF EXISTS report_data_rows_week_id_fkey,
    DROP CONSTRAINT IF EXISTS report_data_rows_collection_id_fkey,
    DROP CONSTRAINT IF EXISTS report_data_rows_execution_id_fkey;

-- Keep-fresh collections: after the backfill, each new week is added once it is complete and past
-- the data lag. `keep_weeks` (optional) keeps only the newest N completed weeks' rows; the weeks and
-- their executions stay, so lineage keeps both ids, and `rows_dropped_at` says when rows went.
ALTER TABLE report_data_collections ADD COLUMN keep_fresh BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE report_data_collections ADD COLUMN keep_weeks INTEGER CHECK (keep_weeks IS NULL OR keep_weeks >= 1);
ALTER TABLE report_data_weeks ADD COLUMN rows_dropped_at TIMESTAMPTZ;
-- The daemon looks for due weeks at every scan: only keep-fresh collections are read.
CREATE INDEX report_data_collections_keep_fresh_idx ON report_data_collections (id) WHERE keep_fresh;

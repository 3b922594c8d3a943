-- Leasing support: fast lookups of a collection's weeks by status (slot counts, claims), and the
-- single-process guard used by SQLite deployments (unused on Postgres, kept for one schema).
CREATE INDEX report_data_weeks_collection_status_idx ON report_data_weeks (collection_id, status);
CREATE INDEX report_data_collections_lease_idx ON report_data_collections (lease_owner);
CREATE TABLE process_lock (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

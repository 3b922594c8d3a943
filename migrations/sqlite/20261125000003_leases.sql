-- Leasing support: fast lookups of a collection's weeks by status, and the single-process guard
-- (SQLite serves one daemon process at a time).
CREATE INDEX report_data_weeks_collection_status_idx ON report_data_weeks (collection_id, status);
CREATE INDEX report_data_collections_lease_idx ON report_data_collections (lease_owner);
CREATE TABLE process_lock (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- amc-collector schema (SQLite). Names follow the seed system (DESIGN.md §4).

CREATE TABLE amc_instances (
    id              TEXT PRIMARY KEY,
    instance_id     TEXT NOT NULL UNIQUE,
    instance_name   TEXT NOT NULL,
    region          TEXT NOT NULL CHECK (region IN ('na', 'eu', 'fe')),
    advertiser_id   TEXT NOT NULL,
    marketplace_id  TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE workflows (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    sql_query       TEXT,
    amc_workflow_id TEXT,
    created_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT workflow_has_exactly_one_source CHECK ((sql_query IS NULL) <> (amc_workflow_id IS NULL))
);

CREATE TABLE report_data_collections (
    id               TEXT PRIMARY KEY,
    workflow_id      TEXT NOT NULL REFERENCES workflows(id),
    instance_id      TEXT NOT NULL REFERENCES amc_instances(id),
    target_weeks     INTEGER NOT NULL CHECK (target_weeks BETWEEN 1 AND 60),
    start_date       DATE NOT NULL,
    end_date         DATE NOT NULL,
    week_start_day   TEXT NOT NULL CHECK (week_start_day IN ('monday', 'sunday')),
    time_zone        TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    error_message    TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX report_data_collections_status_idx ON report_data_collections (status);

CREATE TABLE report_data_weeks (
    id               TEXT PRIMARY KEY,
    collection_id    TEXT NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    week_start_date  DATE NOT NULL,
    week_end_date    DATE NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'submitting', 'running', 'downloading', 'completed', 'failed', 'cancelled')),
    -- SQLite resolves this forward reference when rows are written.
    execution_id     TEXT REFERENCES workflow_executions(id),
    amc_execution_id TEXT,
    row_count        INTEGER,
    data_checksum    TEXT,
    error_message    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    started_at       TEXT,
    completed_at     TEXT,
    updated_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT unique_collection_week UNIQUE (collection_id, week_start_date),
    -- The seed's bug, made impossible in the database too: a completed week is always traceable.
    CONSTRAINT completed_week_is_traceable CHECK (
        status <> 'completed' OR (execution_id IS NOT NULL AND amc_execution_id IS NOT NULL
                                  AND row_count IS NOT NULL AND data_checksum IS NOT NULL))
);
CREATE INDEX report_data_weeks_status_idx ON report_data_weeks (status);

CREATE TABLE workflow_executions (
    id                TEXT PRIMARY KEY,
    week_id           TEXT NOT NULL REFERENCES report_data_weeks(id) ON DELETE CASCADE,
    collection_id     TEXT NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    instance_id       TEXT NOT NULL REFERENCES amc_instances(id),
    idempotency_key   TEXT NOT NULL,
    amc_execution_id  TEXT UNIQUE,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    time_window_start TEXT NOT NULL,
    time_window_end   TEXT NOT NULL,
    time_zone         TEXT NOT NULL,
    parameters        TEXT,
    attempt           INTEGER NOT NULL,
    created_at        TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    submitted_at      TEXT,
    completed_at      TEXT,
    updated_at        TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX workflow_executions_week_idx ON workflow_executions (week_id);
CREATE INDEX workflow_executions_key_idx ON workflow_executions (idempotency_key);


-- One row per CSV data row; the key makes a re-download replace rather than duplicate.
CREATE TABLE report_data_rows (
    week_id       TEXT NOT NULL REFERENCES report_data_weeks(id) ON DELETE CASCADE,
    file_index    INTEGER NOT NULL,
    row_index     INTEGER NOT NULL,
    collection_id TEXT NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    execution_id  TEXT NOT NULL REFERENCES workflow_executions(id),
    data          TEXT NOT NULL,
    PRIMARY KEY (week_id, file_index, row_index)
);
CREATE INDEX report_data_rows_collection_idx ON report_data_rows (collection_id);

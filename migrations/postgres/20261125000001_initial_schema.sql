-- amc-collector schema (Postgres / Supabase). Names follow the seed system (DESIGN.md §4).

CREATE TABLE amc_instances (
    id              UUID PRIMARY KEY,
    instance_id     TEXT NOT NULL UNIQUE,
    instance_name   TEXT NOT NULL,
    region          TEXT NOT NULL CHECK (region IN ('na', 'eu', 'fe')),
    advertiser_id   TEXT NOT NULL,
    marketplace_id  TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE workflows (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    sql_query       TEXT,
    amc_workflow_id TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT workflow_has_exactly_one_source CHECK ((sql_query IS NULL) <> (amc_workflow_id IS NULL))
);

CREATE TABLE report_data_collections (
    id               UUID PRIMARY KEY,
    workflow_id      UUID NOT NULL REFERENCES workflows(id),
    instance_id      UUID NOT NULL REFERENCES amc_instances(id),
    target_weeks     INTEGER NOT NULL CHECK (target_weeks BETWEEN 1 AND 60),
    start_date       DATE NOT NULL,
    end_date         DATE NOT NULL,
    week_start_day   TEXT NOT NULL CHECK (week_start_day IN ('monday', 'sunday')),
    time_zone        TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    error_message    TEXT,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    lease_epoch      BIGINT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX report_data_collections_status_idx ON report_data_collections (status);

CREATE TABLE report_data_weeks (
    id               UUID PRIMARY KEY,
    collection_id    UUID NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    week_start_date  DATE NOT NULL,
    week_end_date    DATE NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'submitting', 'running', 'downloading', 'completed', 'failed', 'cancelled')),
    execution_id     UUID,
    amc_execution_id TEXT,
    row_count        BIGINT,
    data_checksum    TEXT,
    error_message    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT unique_collection_week UNIQUE (collection_id, week_start_date),
    -- The seed's bug, made impossible in the database too: a completed week is always traceable.
    CONSTRAINT completed_week_is_traceable CHECK (
        status <> 'completed' OR (execution_id IS NOT NULL AND amc_execution_id IS NOT NULL
                                  AND row_count IS NOT NULL AND data_checksum IS NOT NULL))
);
CREATE INDEX report_data_weeks_status_idx ON report_data_weeks (status);

CREATE TABLE workflow_executions (
    id                UUID PRIMARY KEY,
    week_id           UUID NOT NULL REFERENCES report_data_weeks(id) ON DELETE CASCADE,
    collection_id     UUID NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    instance_id       UUID NOT NULL REFERENCES amc_instances(id),
    idempotency_key   TEXT NOT NULL,
    amc_execution_id  TEXT UNIQUE,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    time_window_start TEXT NOT NULL,
    time_window_end   TEXT NOT NULL,
    time_zone         TEXT NOT NULL,
    parameters        JSONB,
    attempt           INTEGER NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    submitted_at      TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX workflow_executions_week_idx ON workflow_executions (week_id);
CREATE INDEX workflow_executions_key_idx ON workflow_executions (idempotency_key);

ALTER TABLE report_data_weeks
    ADD CONSTRAINT report_data_weeks_execution_fk
    FOREIGN KEY (execution_id) REFERENCES workflow_executions(id);

-- One row per CSV data row; the key makes a re-download replace rather than duplicate.
CREATE TABLE report_data_rows (
    week_id       UUID NOT NULL REFERENCES report_data_weeks(id) ON DELETE CASCADE,
    file_index    INTEGER NOT NULL,
    row_index     INTEGER NOT NULL,
    collection_id UUID NOT NULL REFERENCES report_data_collections(id) ON DELETE CASCADE,
    execution_id  UUID NOT NULL REFERENCES workflow_executions(id),
    data          JSONB NOT NULL,
    PRIMARY KEY (week_id, file_index, row_index)
);
CREATE INDEX report_data_rows_collection_idx ON report_data_rows (collection_id);

-- Alerts (issue 15) wait here until the webhook took them: a row is written in the same
-- transaction as the state change it reports, so a crash can neither lose nor invent one, and
-- the alerter delivers it at least once. `dedup_key` makes a repeated write of the same event a
-- no-op. (Same layout as the Postgres migration.)
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event           TEXT NOT NULL,
    collection_id   TEXT,
    week_id         TEXT,
    execution_id    TEXT,
    dedup_key       TEXT UNIQUE,
    payload         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by      TEXT,
    claimed_until   TEXT,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX alert_outbox_undelivered_idx ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL;
ALTER TABLE report_data_collections ADD COLUMN alerted_status TEXT;

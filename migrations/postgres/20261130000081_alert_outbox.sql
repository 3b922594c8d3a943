-- Alerts (issue 15) wait here until the webhook took them: a row is written in the same
-- transaction as the state change it reports, so a crash can neither lose nor invent one, and
-- the alerter delivers it at least once (`claimed_by`/`claimed_until` lease a row to one process;
-- an expired lease is taken again). `dedup_key` makes a repeated write of the same event a no-op.
CREATE TABLE alert_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event           TEXT NOT NULL,
    collection_id   UUID,
    week_id         UUID,
    execution_id    UUID,
    dedup_key       TEXT UNIQUE,
    payload         TEXT NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claimed_by      TEXT,
    claimed_until   TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT
);
-- The alerter's scan and the undelivered count read only rows still to deliver.
CREATE INDEX alert_outbox_undelivered_idx ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL;
ALTER TABLE alert_outbox ENABLE ROW LEVEL SECURITY;
-- The last collection status an alert was written for, so each arrival at completed, failed or
-- cancelled is reported once (and again after `retry-failed` reopened the collection).
ALTER TABLE report_data_collections ADD COLUMN alerted_status TEXT;

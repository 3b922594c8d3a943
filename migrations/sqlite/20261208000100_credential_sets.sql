-- Credential sets: one Login-with-Amazon login each (an advertiser reached through its own
-- login). A row records WHERE each secret is read (an environment variable of the daemon or a
-- file), never the secret. The refresh token has exactly one location; the client id and secret
-- have at most one each (none: `[amc]`'s). Sets are never changed once stored.
CREATE TABLE credential_sets (
    name                TEXT PRIMARY KEY,
    refresh_token_env   TEXT,
    refresh_token_file  TEXT,
    client_id_env       TEXT,
    client_id_file      TEXT,
    client_secret_env   TEXT,
    client_secret_file  TEXT,
    created_at          TEXT NOT NULL,
    CONSTRAINT credential_sets_one_refresh_token
        CHECK ((refresh_token_env IS NULL) <> (refresh_token_file IS NULL)),
    CONSTRAINT credential_sets_one_client_id
        CHECK (client_id_env IS NULL OR client_id_file IS NULL),
    CONSTRAINT credential_sets_one_client_secret
        CHECK (client_secret_env IS NULL OR client_secret_file IS NULL)
);
-- The set an instance's AMC calls use; NULL is the `[amc]` set.
ALTER TABLE amc_instances ADD COLUMN credential_set TEXT REFERENCES credential_sets(name);

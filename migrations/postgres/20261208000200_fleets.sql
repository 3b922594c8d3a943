-- A fleet: one workflow collected on several instances, created in one transaction by
-- `collection create --instances a,b,c` (or `--all-instances`). Each member is an ordinary
-- collection; `fleet_id` only groups them for `fleet show|pause|resume|cancel|retry-failed|
-- watch|export` (store/fleets.rs). NULL for a collection created alone.
ALTER TABLE report_data_collections ADD COLUMN fleet_id UUID;
CREATE INDEX report_data_collections_fleet_idx ON report_data_collections (fleet_id)
    WHERE fleet_id IS NOT NULL;

-- A collection's query parameters (`collection create --param`): the canonical JSON of
-- `query_params::QueryParams` (keys sorted, a value a string, a list an array of strings), `{}`
-- for none. Part of what identifies its executions: inline SQL carries them substituted, a saved
-- workflow as `parameterValues`.
ALTER TABLE report_data_collections ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';

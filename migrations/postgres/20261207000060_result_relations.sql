-- One typed relation per workflow (amc_results.<name>): which name it has, where it lives and its
-- columns ([{"source": AMC's column name, "column": the relation's, "type": ...}] in AMC's order),
-- whose types only ever widen. The relations themselves are created by the collector.
CREATE TABLE result_relations (
    workflow_id     UUID PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
    relation_schema TEXT NOT NULL,
    relation_name   TEXT NOT NULL UNIQUE,
    columns         JSONB NOT NULL DEFAULT '[]',
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE result_relations ENABLE ROW LEVEL SECURITY;

-- The schema new relations are created in (`results.schema`, written by every command).
CREATE TABLE result_options (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    relation_schema TEXT NOT NULL
);
INSERT INTO result_options (id, relation_schema) VALUES (1, 'amc_results');
ALTER TABLE result_options ENABLE ROW LEVEL SECURITY;

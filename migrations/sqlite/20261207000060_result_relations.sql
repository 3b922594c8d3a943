-- One typed relation per workflow (amc_results_<name>): which name it has and its columns
-- ([{"source": AMC's column name, "column": the relation's, "type": ...}] in AMC's order), whose
-- types only ever widen. The relations themselves are created by the collector.
CREATE TABLE result_relations (
    workflow_id     TEXT PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
    relation_schema TEXT NOT NULL,
    relation_name   TEXT NOT NULL UNIQUE,
    columns         TEXT NOT NULL DEFAULT '[]',
    updated_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE result_options (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    relation_schema TEXT NOT NULL
);
INSERT INTO result_options (id, relation_schema) VALUES (1, '');

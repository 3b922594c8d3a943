-- The daily limit counts an instance's executions created within a rolling window at every intent.
CREATE INDEX workflow_executions_instance_created_idx ON workflow_executions (instance_id, created_at);

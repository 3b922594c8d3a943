-- The daily limit counts an instance's executions created (answered by AMC) within a rolling
-- window at every intent.
CREATE INDEX workflow_executions_instance_submitted_idx ON workflow_executions (instance_id, submitted_at);

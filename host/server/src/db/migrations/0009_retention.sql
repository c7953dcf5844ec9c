-- Retention deletes ended runs with everything recorded about them. An
-- event stays append-only while its run exists.
DROP TRIGGER events_are_append_only_delete;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
WHEN EXISTS (SELECT 1 FROM runs WHERE id = OLD.run_id)
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Retention finds the oldest ended runs.
CREATE INDEX runs_by_finished_at ON runs (finished_at) WHERE finished_at IS NOT NULL;

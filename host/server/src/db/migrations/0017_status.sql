-- When a job first ran and when it ended, the summary it last reported;
-- when a run first ran. Kept for the status view of stories.
ALTER TABLE jobs ADD COLUMN started_at INTEGER;
ALTER TABLE jobs ADD COLUMN ended_at INTEGER;
ALTER TABLE jobs ADD COLUMN summary TEXT;
ALTER TABLE runs ADD COLUMN started_at INTEGER;
UPDATE jobs SET started_at = (SELECT min(a.started_at) FROM attempts a WHERE a.job_id = jobs.id);
UPDATE jobs SET ended_at = updated_at
 WHERE state IN ('completed', 'failed', 'skipped', 'cancelled');
UPDATE jobs SET summary = (
    SELECT json_extract(a.progress, '$.summary') FROM attempts a
     WHERE a.job_id = jobs.id AND a.progress IS NOT NULL ORDER BY a.number DESC LIMIT 1);
UPDATE runs SET started_at = (SELECT min(j.started_at) FROM jobs j WHERE j.run_id = runs.id);
CREATE INDEX runs_by_story ON runs (story_id, updated_at) WHERE story_id IS NOT NULL;

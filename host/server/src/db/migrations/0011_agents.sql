-- What an agent version said of itself in describe(), as JSON (name,
-- version, description, requires, produces); NULL for jobs.
ALTER TABLE plugin_versions ADD COLUMN agent_info TEXT;

-- The documents a job in state needs_input waits for, as a JSON array of
-- names; NULL in any other state.
ALTER TABLE jobs ADD COLUMN pending_docs TEXT;

-- needs_input no longer ends a job: it waits for the documents named in
-- pending_docs. A job that ended needs_input before this has no such list
-- and nothing could resume it; it ended failed, as its run did.
UPDATE jobs SET state = 'failed' WHERE state = 'needs_input';

-- A job's approval gate, as JSON (see ApprovalGate); NULL when ungated.
ALTER TABLE jobs ADD COLUMN approval TEXT;
-- Rejections sent back for rework since the job's last manual retry.
ALTER TABLE jobs ADD COLUMN reworks INTEGER NOT NULL DEFAULT 0;
-- Unix milliseconds since when a job waits for people (needs_input or
-- waiting_approval); NULL otherwise. A gate's timeout counts from here,
-- across restarts.
ALTER TABLE jobs ADD COLUMN waiting_since INTEGER;
CREATE INDEX jobs_waiting ON jobs (waiting_since) WHERE waiting_since IS NOT NULL;
-- The documents an agent's output wrote while it waits for a decision, as
-- a JSON array of names (they are its artifacts documents/<name>): stored
-- as story versions if it is approved. NULL in any other state.
ALTER TABLE jobs ADD COLUMN held_docs TEXT;

-- Decisions on a job's output and input given to it, oldest first: what
-- the job's plugin sees on its next attempt, and what `GET /v1/jobs/{id}`
-- lists. Deleted with the job's run.
CREATE TABLE reviews (
    id        INTEGER PRIMARY KEY,
    job_id    TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    decision  TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'input')),
    final     INTEGER NOT NULL DEFAULT 0,
    comments  TEXT,
    -- JSON, as given.
    data      TEXT,
    -- The token's name (NULL on a server without tokens) and role; role
    -- NULL when Warren decided (a gate's timeout).
    by_name   TEXT,
    by_role   TEXT,
    -- Unix milliseconds.
    at        INTEGER NOT NULL,
    attempt   INTEGER NOT NULL
);
CREATE INDEX reviews_by_job ON reviews (job_id, id);

-- What an event says beyond its states, as JSON (a review's decision,
-- who, comments); NULL for most events.
ALTER TABLE events ADD COLUMN detail TEXT;

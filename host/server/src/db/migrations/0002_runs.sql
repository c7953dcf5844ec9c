-- Templates, runs, jobs, their dependencies and attempts, artifacts and the
-- append-only event history. Times are Unix milliseconds.
CREATE TABLE templates (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    template_name    TEXT,
    template_version INTEGER,
    spec             TEXT NOT NULL,
    input            TEXT NOT NULL,
    story_id         TEXT,
    state            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    -- Set when a cancel is asked for, so a restart finishes cancelling.
    cancel_requested_at INTEGER,
    FOREIGN KEY (template_name, template_version) REFERENCES templates (name, version)
);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    name          TEXT NOT NULL,
    plugin        TEXT NOT NULL,
    input         TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry         TEXT NOT NULL,
    limits        TEXT NOT NULL,
    parent_job_id TEXT REFERENCES jobs (id),
    spawn_reason  TEXT,
    depth         INTEGER NOT NULL DEFAULT 0,
    ready_at      INTEGER,
    output        TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    -- Also the index for a run's jobs.
    UNIQUE (run_id, name)
);

CREATE TABLE job_deps (
    job_id     TEXT NOT NULL REFERENCES jobs (id),
    depends_on TEXT NOT NULL REFERENCES jobs (id),
    condition  TEXT NOT NULL,
    PRIMARY KEY (job_id, depends_on)
);

-- Attempts are found by (job, number); the id is only shown.
CREATE TABLE attempts (
    id                TEXT NOT NULL,
    job_id            TEXT NOT NULL REFERENCES jobs (id),
    number            INTEGER NOT NULL,
    state             TEXT NOT NULL,
    plugin_digest     TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    error             TEXT,
    log               TEXT,
    fuel_consumed     INTEGER,
    peak_memory_bytes INTEGER,
    wall_time_us      INTEGER,
    -- Also the index for a job's attempts (recovery goes through jobs).
    UNIQUE (job_id, number)
);

CREATE TABLE artifacts (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    name   TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size   INTEGER NOT NULL,
    PRIMARY KEY (job_id, name)
);

CREATE TABLE artifact_uses (
    consumer_job_id TEXT NOT NULL REFERENCES jobs (id),
    producer_job_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    PRIMARY KEY (consumer_job_id, producer_job_id, name, attempt),
    FOREIGN KEY (producer_job_id, name) REFERENCES artifacts (job_id, name)
);

-- Rows are never deleted, so rowids only grow (no AUTOINCREMENT, whose
-- bookkeeping costs a write per event).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    run_id     TEXT NOT NULL,
    job_id     TEXT,
    kind       TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT
);
CREATE INDEX events_by_run ON events (run_id, id);

-- History is never rewritten.
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

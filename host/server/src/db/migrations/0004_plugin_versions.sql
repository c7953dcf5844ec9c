-- Plugin versions: each distinct file content seen under a plugin name, the
-- manifest it came with, and what became of it. Times are Unix milliseconds.
CREATE TABLE plugin_versions (
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    -- active, pending_approval, inactive (replaced) or retired (file deleted)
    state         TEXT NOT NULL,
    -- The manifest's TOML text, if it had one.
    manifest      TEXT,
    -- Why it waits for approval.
    note          TEXT,
    first_seen_at INTEGER NOT NULL,
    activated_at  INTEGER,
    approved_at   INTEGER,
    PRIMARY KEY (name, digest)
);

-- The plugin version a job runs, fixed when the job is created, so a run
-- keeps the versions it started with. NULL for jobs stored before versions.
ALTER TABLE jobs ADD COLUMN plugin_digest TEXT;

-- Usage totals per plugin version.
CREATE INDEX attempts_by_plugin ON attempts (plugin_digest);

-- Documents of a story: named content (text or JSON) that people write
-- through the API and jobs write as they run. Every version is kept, from
-- 1 up per (story, name). Documents belong to stories, not runs: nothing
-- here refers to runs or jobs by foreign key, so retention, which deletes
-- runs, leaves them be.
CREATE TABLE documents (
    story_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    -- Of the content: 64 lowercase hex digits.
    sha256      TEXT NOT NULL,
    writer_kind TEXT NOT NULL CHECK (writer_kind IN ('person', 'job')),
    -- A person's token name (NULL when the server has no tokens); for a
    -- job, what its writer called it.
    writer      TEXT,
    -- The job, and its run, that wrote a version of kind 'job'.
    job_id      TEXT,
    run_id      TEXT,
    -- Unix milliseconds.
    created_at  INTEGER NOT NULL,
    -- Last: listings read the columns before it without reading through
    -- up to 1 MiB of content.
    content     BLOB NOT NULL,
    PRIMARY KEY (story_id, name, version),
    CHECK ((writer_kind = 'job') = (job_id IS NOT NULL AND run_id IS NOT NULL))
);

-- Guards' verdicts: on runs' inputs (a refused submission has no run), on
-- jobs' outputs and on documents. Never the text checked: its sha256.
CREATE TABLE screenings (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    run_id   TEXT,
    job_id   TEXT,
    guard    TEXT NOT NULL,
    subject  TEXT NOT NULL,
    origin   TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    verdict  TEXT NOT NULL,
    category TEXT,
    reason   TEXT,
    -- JSON: [{"category", "start", "length"}]
    findings TEXT NOT NULL
);
CREATE INDEX screenings_by_run ON screenings (run_id, id);

-- The last progress an attempt reported (`jobs.progress`), as JSON
-- {"percent": N, "summary": "..."}; NULL when it reported none.
ALTER TABLE attempts ADD COLUMN progress TEXT;

-- Attempts made before a manual retry, which do not count against the
-- retry policy's max_attempts after it. Kept so a restart honours them.
ALTER TABLE jobs ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;

-- What each memory namespace holds (keys, and bytes of keys and values),
-- kept by triggers so a quota check reads one row instead of summing.
CREATE TABLE memory_usage (
    namespace TEXT PRIMARY KEY,
    keys      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO memory_usage (namespace, keys, bytes)
SELECT namespace, count(*), sum(length(CAST(key AS BLOB)) + length(value))
FROM memory GROUP BY namespace;

CREATE TRIGGER memory_usage_on_insert AFTER INSERT ON memory
BEGIN
    INSERT INTO memory_usage (namespace, keys, bytes)
    VALUES (NEW.namespace, 1, length(CAST(NEW.key AS BLOB)) + length(NEW.value))
    ON CONFLICT (namespace) DO UPDATE SET
        keys = keys + 1,
        bytes = bytes + length(CAST(NEW.key AS BLOB)) + length(NEW.value);
END;

CREATE TRIGGER memory_usage_on_update AFTER UPDATE OF value ON memory
BEGIN
    UPDATE memory_usage SET bytes = bytes - length(OLD.value) + length(NEW.value)
    WHERE namespace = NEW.namespace;
END;

CREATE TRIGGER memory_usage_on_delete AFTER DELETE ON memory
BEGIN
    UPDATE memory_usage SET
        keys = keys - 1,
        bytes = bytes - length(CAST(OLD.key AS BLOB)) - length(OLD.value)
    WHERE namespace = OLD.namespace;
    DELETE FROM memory_usage WHERE namespace = OLD.namespace AND keys <= 0;
END;

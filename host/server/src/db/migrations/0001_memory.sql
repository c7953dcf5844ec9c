-- Key-value memory of plugins. A namespace is `run:<run-id>` or
-- `story:<story-id>`; the host picks it, never the guest.
CREATE TABLE memory (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

-- Idempotency keys: the answer to the first request that came with a key,
-- committed in the same transaction as what that request created, so a
-- client that lost the answer gets it again instead of creating twice.
CREATE TABLE idempotency_keys (
    -- The token's name; '' when the server has no tokens.
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    -- sha256 (hex) of the method, the path with its query, and the body.
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    -- The JSON body answered, byte for byte.
    body        TEXT NOT NULL,
    -- The `location` header answered, if any.
    location    TEXT,
    -- Unix milliseconds; the key is forgotten once it is older than the
    -- server's retention window.
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- Expired keys are removed oldest first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

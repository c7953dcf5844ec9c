//! Idempotency keys: the first answer given to a request that came with a
//! key, kept for a retention window. A key is inserted in the same
//! transaction as what its request created (a run, a template version), so
//! both are committed or neither is.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A client's key inside its scope (the name of the token that sent it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    pub scope: String,
    pub key: String,
}

/// An answer as it was given, to give again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The JSON body, byte for byte.
    pub body: String,
    pub location: Option<String>,
}

/// A key as stored: what its first request looked like and what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// sha256 (hex) of the first request's method, path and body.
    pub fingerprint: String,
    pub answer: Answer,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// The key `id`, unless it is missing or was created before `not_before`
/// (Unix ms): an expired key is as good as gone, even before it is removed.
pub fn find(conn: &Connection, id: &KeyId, not_before: i64) -> Result<Option<StoredKey>, DbError> {
    let found = conn
        .prepare_cached(
            "SELECT fingerprint, status, body, location, created_at FROM idempotency_keys
             WHERE scope = ?1 AND key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![id.scope, id.key, not_before], |row| {
            Ok(StoredKey {
                fingerprint: row.get(0)?,
                answer: Answer {
                    status: row.get(1)?,
                    body: row.get(2)?,
                    location: row.get(3)?,
                },
                created_at: row.get(4)?,
            })
        })
        .optional()?;
    Ok(found)
}

/// Stores `answer` under `id` in the caller's transaction, first removing
/// every key created before `not_before` (this one too, if it expired). A
/// key still held makes the insert fail, and with it the piece of the
/// transaction that created the answer: no second run for one key.
pub fn insert(
    conn: &Connection,
    id: &KeyId,
    fingerprint: &str,
    answer: &Answer,
    now: i64,
    not_before: i64,
) -> Result<(), DbError> {
    remove_expired(conn, not_before)?;
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, location, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id.scope,
        id.key,
        fingerprint,
        answer.status,
        answer.body,
        answer.location,
        now
    ])?;
    Ok(())
}

/// Removes keys created before `not_before`; returns how many. The index
/// on `created_at` makes this cheap when nothing expired.
pub fn remove_expired(conn: &Connection, not_before: i64) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
        .execute(params![not_before])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, Durability};

    fn key(key: &str) -> KeyId {
        KeyId {
            scope: "ops".into(),
            key: key.into(),
        }
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: 201,
            body: body.into(),
            location: Some("/v1/runs/x".into()),
        }
    }

    fn open() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        (dir, db)
    }

    #[tokio::test]
    async fn a_key_is_found_until_it_expires_and_expired_keys_are_removed_on_insert() {
        let (_dir, db) = open();
        db.write(|conn| insert(conn, &key("a"), "f1", &answer("{\"a\":1}"), 1_000, 0))
            .await
            .expect("insert a");
        let found = db.read(|conn| find(conn, &key("a"), 500)).expect("find");
        assert_eq!(
            found,
            Some(StoredKey {
                fingerprint: "f1".into(),
                answer: answer("{\"a\":1}"),
                created_at: 1_000,
            })
        );
        // Another scope does not see it.
        let other = KeyId {
            scope: String::new(),
            key: "a".into(),
        };
        assert_eq!(db.read(|conn| find(conn, &other, 0)).expect("find"), None);
        // Past its window it is not found, then removed by the next insert.
        assert_eq!(
            db.read(|conn| find(conn, &key("a"), 1_001)).expect("find"),
            None
        );
        db.write(|conn| insert(conn, &key("b"), "f2", &answer("{}"), 2_000, 1_001))
            .await
            .expect("insert b");
        let left: Vec<String> = db
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT key FROM idempotency_keys ORDER BY key")?;
                let keys = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(keys)
            })
            .expect("keys");
        assert_eq!(left, vec!["b"]);
    }

    #[tokio::test]
    async fn a_held_key_fails_the_write_that_would_store_it_again_with_what_it_created() {
        let (_dir, db) = open();
        db.write(|conn| insert(conn, &key("k"), "f1", &answer("first"), 1_000, 0))
            .await
            .expect("first");
        // What the second request would create goes in the same write as
        // its key: the key is taken, so neither is committed.
        let second = db
            .write(|conn| {
                conn.execute(
                    "INSERT INTO memory (namespace, key, value, updated_at) VALUES ('n', 'created', x'00', 0)",
                    [],
                )?;
                insert(conn, &key("k"), "f2", &answer("second"), 1_001, 0)
            })
            .await;
        assert!(second.is_err(), "{second:?}");
        assert_eq!(db.memory_get("n", "created").expect("get"), None);
        let kept = db
            .read(|conn| find(conn, &key("k"), 0))
            .expect("find")
            .expect("kept");
        assert_eq!(kept.answer.body, "first");
    }
}

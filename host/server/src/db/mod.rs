//! SQLite storage: PRAGMAs applied on open, migrations embedded in the binary
//! and applied in order at start. One thread owns the write connection
//! ([`writer`]): every write, plugin memory included, goes through it, so no
//! two connections ever contend for SQLite's write lock. Reads use a few
//! connections of their own, so they never wait behind writes (WAL) nor,
//! mostly, behind each other.

pub mod checkpoint;
pub mod documents;
pub mod graph;
pub mod idempotency;
pub mod plugins;
pub mod reads;
pub mod retention;
pub mod runs;
pub mod screenings;
pub mod stories;
pub mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use warren_sandbox::artifact_store::{ArtifactStoreError, ContentByDigest};
use warren_sandbox::capabilities::memory::{MemoryStore, NamespaceQuota, SetOutcome, StoreError};

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a commit survives a crash of the
    /// process; the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous=FULL`: a commit survives power loss, at a cost per commit.
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this binary knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("a database read did not finish: {0}")]
    Read(String),
}

/// Migrations in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_memory.sql"),
    include_str!("migrations/0002_runs.sql"),
    include_str!("migrations/0003_retry_base.sql"),
    include_str!("migrations/0004_plugin_versions.sql"),
    include_str!("migrations/0005_limits_in_ms.sql"),
    include_str!("migrations/0006_attempt_progress.sql"),
    include_str!("migrations/0007_artifacts_by_digest.sql"),
    include_str!("migrations/0008_idempotency.sql"),
    include_str!("migrations/0009_retention.sql"),
    include_str!("migrations/0010_memory_usage.sql"),
    include_str!("migrations/0011_agents.sql"),
    include_str!("migrations/0012_documents.sql"),
    include_str!("migrations/0013_approvals.sql"),
    include_str!("migrations/0014_model_tokens.sql"),
    include_str!("migrations/0015_replay.sql"),
    include_str!("migrations/0016_screenings.sql"),
    include_str!("migrations/0017_status.sql"),
    include_str!("migrations/0018_budgets.sql"),
    include_str!("migrations/0019_document_artifacts.sql"),
];

/// Read connections: API requests and event streams read concurrently.
const READERS: usize = 4;

/// An open database: the writer thread and connections for reads.
pub struct Database {
    writer: writer::Writer,
    checkpointer: checkpoint::Checkpointer,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The scheduler's own: its short reads never wait behind the API's.
    scheduler_reader: Mutex<Connection>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

fn open_connection(path: &Path, durability: Durability) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    // The engine's writes and the API's reads use many more statements
    // than rusqlite's default cache of 16 holds: past it, each commit
    // prepared again what the one before had evicted.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    // auto_vacuum first: only a file with nothing in it yet takes it (an
    // older database changes with a full VACUUM, which `warren gc` does);
    // on any other it does nothing.
    conn.execute_batch(&format!(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 0;"
    ))?;
    Ok(conn)
}

impl Database {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, DbError> {
        let mut write_conn = open_connection(path, durability)?;
        migrate(&mut write_conn)?;
        // Checkpoints run on their own thread (see `checkpoint`).
        let checkpointer = checkpoint::Checkpointer::start(
            open_connection(path, durability)?,
            checkpoint::CATCH_UP_PAGES,
        )
        .map_err(|e| DbError::Commit(format!("cannot start the checkpoint thread: {e}")))?;
        let writer = writer::Writer::start(write_conn, checkpointer.clone())
            .map_err(|e| DbError::Commit(format!("cannot start the writer thread: {e}")))?;
        let readers = (0..READERS)
            .map(|_| open_connection(path, durability).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            writer,
            checkpointer,
            readers,
            next_reader: AtomicUsize::new(0),
            scheduler_reader: Mutex::new(open_connection(path, durability)?),
        })
    }

    /// Runs `work` in a write transaction, grouped with other writers.
    pub async fn write<R, F>(&self, work: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Runs `work` on a free read connection, or waits for one.
    pub fn read<R>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let free = (0..READERS).find_map(|i| self.readers[(start + i) % READERS].try_lock().ok());
        let conn = match free {
            Some(conn) => conn,
            None => self.readers[start % READERS]
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        };
        work(&conn)
    }

    /// Runs `work` on the scheduler's own read connection, on the calling
    /// thread: for the scheduler's few short reads (which documents a story
    /// has), which must not wait for a connection an API request holds.
    pub fn scheduler_read<R>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let conn = self
            .scheduler_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        work(&conn)
    }

    /// Runs `work` on a read connection from a blocking thread, so the async
    /// worker threads (HTTP, guests, the scheduler) never wait on SQLite.
    pub async fn query<R, F>(self: &Arc<Self>, work: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read(work))
            .await
            .map_err(|e| DbError::Read(e.to_string()))?
    }

    /// Why the database cannot keep up with commits, if it cannot: its
    /// writer or checkpoint thread has stopped.
    pub fn health(&self) -> Result<(), String> {
        if !self.writer.is_running() {
            return Err("the database writer thread has stopped".into());
        }
        if !self.checkpointer.is_running() {
            return Err(
                "the WAL checkpoint thread has stopped; the WAL would grow without bound".into(),
            );
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, DbError> {
        self.read(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }

    pub fn memory_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM memory WHERE namespace = ?1 AND key = ?2")?
                .query_row(params![namespace, key], |r| r.get(0))
                .optional()?)
        })
    }

    /// Sets `key` unless `namespace` would then hold more than `quota`
    /// (keys, or bytes of keys and values, as `memory_usage` counts them).
    /// Check and write are one piece of the writer's transaction.
    pub async fn memory_set(
        &self,
        namespace: String,
        key: String,
        value: Vec<u8>,
        quota: NamespaceQuota,
    ) -> Result<SetOutcome, DbError> {
        self.write(move |conn| {
            let (keys, bytes): (i64, i64) = conn
                .prepare_cached("SELECT keys, bytes FROM memory_usage WHERE namespace = ?1")?
                .query_row(params![namespace], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or((0, 0));
            let replaced: Option<i64> = conn
                .prepare_cached(
                    "SELECT length(CAST(key AS BLOB)) + length(value) FROM memory
                     WHERE namespace = ?1 AND key = ?2",
                )?
                .query_row(params![namespace, key], |r| r.get(0))
                .optional()?;
            if replaced.is_none() && keys as u64 >= quota.max_keys {
                return Ok(SetOutcome::TooManyKeys);
            }
            let after = bytes - replaced.unwrap_or(0) + (key.len() + value.len()) as i64;
            if after as u64 > quota.max_bytes {
                return Ok(SetOutcome::TooManyBytes);
            }
            conn.prepare_cached(
                "INSERT INTO memory (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, unixepoch())
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![namespace, key, value])?;
            Ok(SetOutcome::Stored)
        })
        .await
    }

    /// Returns whether the key existed.
    pub async fn memory_delete(&self, namespace: String, key: String) -> Result<bool, DbError> {
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM memory WHERE namespace = ?1 AND key = ?2")?
                .execute(params![namespace, key])?;
            Ok(deleted > 0)
        })
        .await
    }

    /// Keys of `namespace` starting with `prefix` and after `start_after`,
    /// in byte order, at most `limit`.
    pub fn memory_keys(
        &self,
        namespace: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, DbError> {
        // Byte-wise prefix match without LIKE's wildcards, as a range of
        // the primary key: prefix <= key < the prefix's successor. (Text
        // functions such as length() stop at a NUL; comparisons do not.)
        let end = prefix_successor(prefix);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key FROM memory WHERE namespace = ?1 AND key >= ?2
                 AND (?3 IS NULL OR key < CAST(?3 AS TEXT))
                 AND (?4 IS NULL OR key > ?4) ORDER BY key LIMIT ?5",
            )?;
            let keys = stmt
                .query_map(
                    params![namespace, prefix, end, start_after, limit as i64],
                    |r| r.get(0),
                )?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(keys)
        })
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix` (`None` when there is none: an empty prefix matches all).
/// UTF-8 has no 0xff byte, so the last byte can always be raised.
fn prefix_successor(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An agent's documents are the bytes of its artifacts `documents/<name>`,
/// which have no blob: the artifact store finds them here.
impl ContentByDigest for Database {
    fn content(&self, digest: &str, limit: u64) -> Result<Option<Vec<u8>>, ArtifactStoreError> {
        let found = self
            .read(|conn| documents::content_by_digest(conn, digest, limit))
            .map_err(std::io::Error::other)?;
        match found {
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(size)) => Err(ArtifactStoreError::TooLarge {
                digest: digest.to_owned(),
                size,
                limit,
            }),
            None => Ok(None),
        }
    }
}

/// Plugin memory lives in the `memory` table; writes go through the writer
/// thread like every other write.
#[async_trait::async_trait]
impl MemoryStore for Database {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.memory_get(namespace, key)?)
    }

    async fn set(
        &self,
        namespace: String,
        key: String,
        value: Vec<u8>,
        quota: NamespaceQuota,
    ) -> Result<SetOutcome, StoreError> {
        Ok(self.memory_set(namespace, key, value, quota).await?)
    }

    async fn delete(&self, namespace: String, key: String) -> Result<bool, StoreError> {
        Ok(self.memory_delete(namespace, key).await?)
    }

    fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.memory_keys(namespace, prefix, start_after, limit)?)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(DbError::SchemaTooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_migrates_to_the_latest_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        assert_eq!(
            db.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        // Opening again applies nothing twice.
        drop(db);
        let db = Database::open(&dir.path().join("w.db"), Durability::Full).expect("reopen");
        assert_eq!(
            db.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn stored_limits_move_from_a_duration_to_milliseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.execute_batch("PRAGMA user_version = 0; PRAGMA foreign_keys = OFF;")
            .expect("pragmas");
        // Migrate to the schema before the change, store a job the old way.
        for (index, sql) in MIGRATIONS[..4].iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .expect("version");
        }
        let old = r#"{"fuel":5,"memory_bytes":1048576,"timeout":{"secs":2,"nanos":500000000},"max_output_bytes":10,"max_log_bytes":10,"max_artifact_bytes":10,"max_spawned_jobs":0}"#;
        conn.execute(
            "INSERT INTO jobs (id, run_id, name, plugin, input, state, retry, limits, depth, created_at, updated_at)
             VALUES ('j', 'r', 'a', 'echo', '{}', 'pending', '{}', ?1, 0, 0, 0)",
            params![old],
        )
        .expect("old job");
        migrate(&mut conn).expect("migrate");
        let stored: String = conn
            .query_row("SELECT limits FROM jobs WHERE id = 'j'", [], |r| r.get(0))
            .expect("limits");
        let limits: warren_vocabulary::Limits = serde_json::from_str(&stored).expect("parses");
        assert_eq!(limits.timeout_ms, 2_500);
        assert_eq!(limits.memory_bytes, 1 << 20);
        assert!(!stored.contains("secs"), "{stored}");
    }

    /// Sets `key` in `namespace` to `value`, as a plugin would.
    async fn set(db: &Database, namespace: &str, key: &str, value: &[u8], max_keys: u64) -> bool {
        let quota = NamespaceQuota {
            max_keys,
            max_bytes: 1 << 20,
        };
        db.memory_set(namespace.into(), key.into(), value.to_vec(), quota)
            .await
            .expect("set")
            == SetOutcome::Stored
    }

    #[tokio::test]
    async fn key_prefixes_are_literal_not_like_patterns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        for key in ["a_1", "a%2", "ab", "b"] {
            assert!(set(&db, "run:1", key, b"v", 10).await);
        }
        set(&db, "run:2", "a_other", b"v", 10).await;
        assert_eq!(
            db.memory_keys("run:1", "a_", None, 10).expect("keys"),
            vec!["a_1"]
        );
        assert_eq!(
            db.memory_keys("run:1", "a", None, 10).expect("keys"),
            vec!["a%2", "a_1", "ab"]
        );
        assert_eq!(
            db.memory_keys("run:1", "", None, 2).expect("keys"),
            vec!["a%2", "a_1"]
        );
        assert_eq!(
            db.memory_keys("run:1", "", Some("a_1"), 2).expect("keys"),
            vec!["ab", "b"]
        );
        let delete = || db.memory_delete("run:1".into(), "b".into());
        assert!(delete().await.expect("delete"));
        assert!(!delete().await.expect("delete again"));
        assert_eq!(db.memory_get("run:2", "a_1").expect("get"), None);
    }

    #[tokio::test]
    async fn namespace_usage_follows_every_write_and_caps_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        let usage = |ns: &'static str| {
            db.read(move |c| {
                Ok(c.query_row(
                    "SELECT keys, bytes FROM memory_usage WHERE namespace = ?1",
                    [ns],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?)
            })
            .expect("usage")
        };
        let quota = NamespaceQuota {
            max_keys: 10,
            max_bytes: 100,
        };
        let put = |key: &str, len: usize| {
            db.memory_set("story:s".into(), key.into(), vec![b'v'; len], quota)
        };
        assert_eq!(put("a", 40).await.expect("set"), SetOutcome::Stored);
        assert_eq!(put("bb", 40).await.expect("set"), SetOutcome::Stored);
        assert_eq!(usage("story:s"), Some((2, 83)));
        // 83 - 41 + 61 = 103: over.
        assert_eq!(put("a", 60).await.expect("set"), SetOutcome::TooManyBytes);
        assert_eq!(put("a", 50).await.expect("set"), SetOutcome::Stored);
        assert_eq!(usage("story:s"), Some((2, 93)));
        assert!(
            db.memory_delete("story:s".into(), "a".into())
                .await
                .expect("delete")
        );
        assert_eq!(usage("story:s"), Some((1, 42)));
        assert!(
            db.memory_delete("story:s".into(), "bb".into())
                .await
                .expect("delete")
        );
        assert_eq!(usage("story:s"), None, "an empty namespace has no row");
    }

    #[tokio::test]
    async fn key_prefixes_may_hold_nul_and_any_character() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        for key in ["a\0b", "a\0c", "a", "a\u{1}", "é1", "éa", "f"] {
            assert!(set(&db, "run:1", key, b"v", 10).await);
        }
        let keys = |prefix: &str| db.memory_keys("run:1", prefix, None, 10).expect("keys");
        assert_eq!(keys("a\0"), vec!["a\0b", "a\0c"]);
        assert_eq!(keys("a\0c"), vec!["a\0c"]);
        assert_eq!(keys("é"), vec!["é1", "éa"]);
        assert_eq!(keys("a").len(), 4);
        assert!(keys("a\0d").is_empty());
    }

    #[tokio::test]
    async fn a_full_namespace_refuses_new_keys_but_updates_existing_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        assert!(set(&db, "story:s", "a", b"1", 2).await);
        assert!(set(&db, "story:s", "b", b"1", 2).await);
        assert!(!set(&db, "story:s", "c", b"1", 2).await, "refused");
        assert!(set(&db, "story:s", "a", b"2", 2).await, "update");
        assert_eq!(
            db.memory_get("story:s", "a").expect("get").as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(db.memory_get("story:s", "c").expect("get"), None);
    }
}

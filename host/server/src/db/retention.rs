//! Deleting what retention no longer keeps, and giving the space back.

use std::path::Path;

use rusqlite::{Connection, params};

use warren_vocabulary::MemoryScope;

use super::DbError;

/// Deletes at most `batch` runs that ended before `cutoff_ms` (oldest
/// first), with their jobs, dependencies, attempts and their logs, artifact
/// rows and uses, reviews, guards' verdicts, run memory and events (and
/// the verdicts on submissions refused before `cutoff_ms`). Returns how many runs went. The
/// blobs the artifact rows named are left to the artifact collector.
///
/// The newest event row is never deleted, so event ids (which clients
/// follow) never repeat.
pub fn delete_ended_runs(
    conn: &Connection,
    cutoff_ms: i64,
    batch: usize,
) -> Result<usize, DbError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1
             ORDER BY finished_at LIMIT ?2",
        )?
        .query_map(params![cutoff_ms, batch as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // Refused submissions have no run: their verdicts go by age, all of
    // them each pass (a row is small; they may come faster than runs end).
    conn.prepare_cached("DELETE FROM screenings WHERE run_id IS NULL AND at < ?1")?
        .execute(params![cutoff_ms])?;
    if ids.is_empty() {
        return Ok(0);
    }
    let list = serde_json::to_string(&ids).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let runs = "SELECT value FROM json_each(?1)";
    let jobs = format!("SELECT id FROM jobs WHERE run_id IN ({runs})");
    for statement in [
        format!("DELETE FROM artifact_uses WHERE consumer_job_id IN ({jobs})"),
        format!("DELETE FROM artifacts WHERE job_id IN ({jobs})"),
        format!("DELETE FROM reviews WHERE job_id IN ({jobs})"),
        format!("DELETE FROM screenings WHERE run_id IN ({runs})"),
        format!("DELETE FROM attempts WHERE job_id IN ({jobs})"),
        format!("DELETE FROM job_deps WHERE job_id IN ({jobs})"),
        format!("DELETE FROM jobs WHERE run_id IN ({runs})"),
        // Run memory goes when its run ends; this catches runs that ended
        // before that rule.
        format!(
            "DELETE FROM memory WHERE namespace IN (SELECT '{}' || value FROM json_each(?1))",
            MemoryScope::Run.namespace("")
        ),
        format!("DELETE FROM runs WHERE id IN ({runs})"),
        format!(
            "DELETE FROM events WHERE run_id IN ({runs}) AND id < (SELECT max(id) FROM events)"
        ),
    ] {
        conn.prepare_cached(&statement)?.execute([&list])?;
    }
    Ok(ids.len())
}

/// Gives free pages back to the file system, at most `pages` of them
/// (in incremental auto-vacuum mode; nothing otherwise).
pub fn incremental_vacuum(conn: &Connection, pages: u32) -> Result<(), DbError> {
    // The pragma returns nothing but must be stepped to run.
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Free pages left in the database file.
pub fn free_pages(conn: &Connection) -> Result<u64, DbError> {
    Ok(conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Rewrites the database at `path` so it gives space back incrementally
/// from now on (databases made before this mode existed), then empties
/// the WAL into it. Needs a database no other process uses.
pub fn rewrite_incremental(path: &Path) -> Result<(), DbError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    truncate_wal(&conn)
}

/// [`truncate_wal`] on the database at `path`.
pub fn truncate_wal_at(path: &Path) -> Result<(), DbError> {
    truncate_wal(&Connection::open(path)?)
}

/// Copies the whole WAL into the database file and empties it.
pub fn truncate_wal(conn: &Connection) -> Result<(), DbError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Whether the database gives space back incrementally.
pub fn is_incremental(conn: &Connection) -> Result<bool, DbError> {
    Ok(conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_database_is_rewritten_to_give_space_back_incrementally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
             INSERT INTO t SELECT zeroblob(4096) FROM n;",
        )
        .expect("filled");
        assert!(!is_incremental(&conn).expect("mode"));
        conn.execute_batch("DELETE FROM t").expect("emptied");
        drop(conn);

        rewrite_incremental(&path).expect("rewritten");
        let conn = Connection::open(&path).expect("open");
        assert!(is_incremental(&conn).expect("mode"));
        assert_eq!(free_pages(&conn).expect("free"), 0, "VACUUM dropped them");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0);
    }
}

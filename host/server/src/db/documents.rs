//! Story documents: what the scheduler reads and writes for agents.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// Stores `content` as the next version of document `name` of `story`,
/// written by job `job_id` of run `run_id`; returns the version.
pub fn put_from_job(
    conn: &Connection,
    story: &str,
    name: &str,
    content: &str,
    run_id: &str,
    job_id: &str,
) -> Result<i64, DbError> {
    let version: i64 = conn
        .prepare_cached(
            "SELECT coalesce(max(version), 0) + 1 FROM documents WHERE story_id = ?1 AND name = ?2",
        )?
        .query_row(params![story, name], |r| r.get(0))?;
    let media_type = if serde_json::from_str::<serde::de::IgnoredAny>(content).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    conn.prepare_cached(
        "INSERT INTO documents (story_id, name, version, media_type, content, size, sha256, writer_kind, writer, job_id, run_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'job', NULL, ?8, ?9, ?10)",
    )?
    .execute(params![
        story,
        name,
        version,
        media_type,
        content.as_bytes(),
        content.len() as i64,
        warren_sandbox::artifact_store::sha256_hex(content.as_bytes()),
        job_id,
        run_id,
        warren_vocabulary::now_ms()
    ])?;
    Ok(version)
}

/// Which of `names` story `story` has.
pub fn existing(
    conn: &Connection,
    story: &str,
    names: &[String],
) -> Result<HashSet<String>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM documents WHERE story_id = ?1 AND name = ?2 LIMIT 1")?;
    let mut found = HashSet::new();
    for name in names {
        if stmt.exists(params![story, name])? {
            found.insert(name.clone());
        }
    }
    Ok(found)
}

/// The latest content of each of `names` that `story` has, as text.
pub fn latest_texts(
    conn: &Connection,
    story: &str,
    names: &[String],
) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT content FROM documents WHERE story_id = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1",
    )?;
    let mut found = Vec::new();
    for name in names {
        let content: Option<Vec<u8>> = stmt
            .query_row(params![story, name], |r| r.get(0))
            .optional()?;
        if let Some(bytes) = content {
            let text = String::from_utf8(bytes)
                .map_err(|_| DbError::Corrupt(format!("document {name:?} is not UTF-8")))?;
            found.push((name.clone(), text));
        }
    }
    Ok(found)
}

//! The status view of stories: each story's latest run, and the latest job
//! of each name across a story's runs.

use rusqlite::{Connection, params};

use super::DbError;

/// A story in the list: its latest run and its last change.
#[derive(Debug, Clone)]
pub struct StoryRecord {
    pub story_id: String,
    pub latest_run_id: String,
    pub latest_run_state: String,
    pub latest_run_template: Option<String>,
    /// The last change of any of its runs (Unix ms).
    pub updated_at: i64,
    pub runs: u64,
}

/// Stories in id order, after `after`; with `state`, only those whose
/// latest run is in it.
pub fn list(
    conn: &Connection,
    state: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoryRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.story_id, r.id, r.state, r.template_name, g.updated_at, g.runs
         FROM (SELECT story_id, max(id) AS latest, max(updated_at) AS updated_at, count(*) AS runs
               FROM runs WHERE story_id IS NOT NULL AND (?2 IS NULL OR story_id > ?2)
               GROUP BY story_id) g
         JOIN runs r ON r.id = g.latest
         WHERE ?1 IS NULL OR r.state = ?1
         ORDER BY g.story_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![state, after, limit as i64], |r| {
        Ok(StoryRecord {
            story_id: r.get(0)?,
            latest_run_id: r.get(1)?,
            latest_run_state: r.get(2)?,
            latest_run_template: r.get(3)?,
            updated_at: r.get(4)?,
            runs: r.get::<_, i64>(5)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest job of one name in a story.
#[derive(Debug, Clone)]
pub struct AgentStatusRecord {
    pub name: String,
    pub job_id: String,
    pub run_id: String,
    pub state: String,
    /// When its latest attempt started (or an outside reporter said it
    /// started); `None` if it never ran.
    pub last_execution: Option<i64>,
    pub updated_at: i64,
    pub summary: Option<String>,
}

/// For each job name in the story's runs, its most recently changed job,
/// in name order; at most `limit` names.
pub fn statuses(
    conn: &Connection,
    story_id: &str,
    limit: usize,
) -> Result<Vec<AgentStatusRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, id, run_id, state, last_execution, updated_at, summary FROM (
             SELECT j.name, j.id, j.run_id, j.state, j.updated_at, j.summary,
                    coalesce((SELECT max(a.started_at) FROM attempts a WHERE a.job_id = j.id),
                             j.started_at) AS last_execution,
                    row_number() OVER (PARTITION BY j.name ORDER BY j.updated_at DESC, j.rowid DESC) AS n
             FROM jobs j JOIN runs r ON r.id = j.run_id
             WHERE r.story_id = ?1)
         WHERE n = 1 ORDER BY name LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![story_id, limit as i64], |r| {
        Ok(AgentStatusRecord {
            name: r.get(0)?,
            job_id: r.get(1)?,
            run_id: r.get(2)?,
            state: r.get(3)?,
            last_execution: r.get(4)?,
            updated_at: r.get(5)?,
            summary: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

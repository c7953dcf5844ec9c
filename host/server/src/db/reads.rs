//! Reads for the HTTP API: lists with filters and cursors, one job with its
//! attempts, history after a point, a run's artifacts, templates.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use super::runs::{AttemptRecord, JOB_RECORD_COLUMNS, JobRecord, JobRow};
use warren_vocabulary::{Artifact, JobState, Usage};

/// A run in a list (its jobs are fetched with the run).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummaryRecord {
    pub id: String,
    pub state: String,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub state: Option<String>,
    pub template: Option<String>,
    pub story_id: Option<String>,
    /// Only runs created before this one (ids sort by creation).
    pub before: Option<String>,
    pub limit: usize,
}

/// Newest first.
pub fn list_runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunSummaryRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, state, template_name, template_version, story_id, created_at, finished_at FROM runs
         WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR template_name = ?2)
           AND (?3 IS NULL OR story_id = ?3) AND (?4 IS NULL OR id < ?4)
         ORDER BY id DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![
            filter.state,
            filter.template,
            filter.story_id,
            filter.before,
            filter.limit as i64
        ],
        |r| {
            Ok(RunSummaryRecord {
                id: r.get(0)?,
                state: r.get(1)?,
                template: r.get(2)?,
                template_version: r.get(3)?,
                story_id: r.get(4)?,
                created_at: r.get(5)?,
                finished_at: r.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A job with its run, attempts and artifacts.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetailRecord {
    pub run_id: String,
    #[serde(flatten)]
    pub job: JobRecord,
    pub input: serde_json::Value,
    pub attempts: Vec<AttemptRecord>,
    pub artifacts: Vec<ArtifactRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRecord {
    pub job_id: String,
    pub job: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

fn json_or_text(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

pub fn get_job(conn: &Connection, job_id: &str) -> Result<Option<JobDetailRecord>, DbError> {
    let row = conn
        .query_row(
            &format!("SELECT {JOB_RECORD_COLUMNS}, run_id, input FROM jobs WHERE id = ?1"),
            [job_id],
            |r| {
                Ok((
                    JobRow::read(r)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ))
            },
        )
        .optional()?;
    let Some((job, run_id, input)) = row else {
        return Ok(None);
    };
    let job = job.into_view()?;
    Ok(Some(JobDetailRecord {
        run_id,
        input: json_or_text(input),
        attempts: super::runs::attempts(conn, &job.id)?,
        artifacts: artifacts(conn, "a.job_id = ?1", &job.id)?,
        job,
    }))
}

/// Artifacts of every job of a run.
pub fn run_artifacts(conn: &Connection, run_id: &str) -> Result<Vec<ArtifactRecord>, DbError> {
    artifacts(conn, "j.run_id = ?1", run_id)
}

fn artifacts(conn: &Connection, filter: &str, key: &str) -> Result<Vec<ArtifactRecord>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.job_id, j.name, a.name, a.sha256, a.size FROM artifacts a JOIN jobs j ON j.id = a.job_id
         WHERE {filter} ORDER BY a.rowid"
    ))?;
    let rows = stmt.query_map([key], |r| {
        Ok(ArtifactRecord {
            job_id: r.get(0)?,
            job: r.get(1)?,
            name: r.get(2)?,
            sha256: r.get(3)?,
            size: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether some job recorded an artifact with this digest.
pub fn artifact_exists(conn: &Connection, sha256: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM artifacts WHERE sha256 = ?1 LIMIT 1")?
        .exists([sha256])?)
}

/// Which of `digests` some artifact row references.
pub fn referenced_digests(
    conn: &Connection,
    digests: &[String],
) -> Result<std::collections::HashSet<String>, DbError> {
    let list = serde_json::to_string(digests).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT sha256 FROM artifacts WHERE sha256 IN (SELECT value FROM json_each(?1))",
    )?;
    let found = stmt
        .query_map([list], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(found)
}

/// The log each attempt of a job left, in attempt order.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptLogRecord {
    pub attempt: u32,
    pub state: String,
    pub log: serde_json::Value,
}

pub fn job_logs(conn: &Connection, job_id: &str) -> Result<Vec<AttemptLogRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT number, state, log FROM attempts WHERE job_id = ?1 ORDER BY number",
    )?;
    let rows = stmt.query_map([job_id], |r| {
        Ok(AttemptLogRecord {
            attempt: r.get(0)?,
            state: r.get(1)?,
            log: r
                .get::<_, Option<String>>(2)?
                .map_or(serde_json::Value::Null, json_or_text),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One entry of the history, with its run.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    pub run_id: String,
    pub job_id: Option<String>,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: Option<String>,
}

/// Events after `after` (an event id), of one run or of all, oldest first.
pub fn events_after(
    conn: &Connection,
    run_id: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, run_id, job_id, kind, from_state, to_state, reason FROM events
         WHERE id > ?1 AND (?2 IS NULL OR run_id = ?2) ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, run_id, limit as i64], |r| {
        Ok(EventRecord {
            id: r.get(0)?,
            at: r.get(1)?,
            run_id: r.get(2)?,
            job_id: r.get(3)?,
            kind: r.get(4)?,
            from_state: r.get(5)?,
            to_state: r.get(6)?,
            reason: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateRecord {
    pub name: String,
    pub latest_version: i64,
    pub updated_at: i64,
}

pub fn list_templates(conn: &Connection) -> Result<Vec<TemplateRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, max(version), max(created_at) FROM templates GROUP BY name ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TemplateRecord {
            name: r.get(0)?,
            latest_version: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Keys and values of one memory namespace, in key order, after a cursor.
pub fn memory_entries(
    conn: &Connection,
    namespace: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM memory WHERE namespace = ?1 AND (?2 IS NULL OR key > ?2)
         ORDER BY key LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![namespace, start_after, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How one job of a run ended, with its last attempt: what `warren run`
/// reports.
#[derive(Debug, Clone)]
pub struct JobOutcomeRecord {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub plugin_digest: Option<String>,
    pub state: JobState,
    pub spawn_reason: Option<String>,
    /// JSON text, as the plugin produced it.
    pub output: Option<String>,
    /// The last attempt's failure, JSON.
    pub error: Option<String>,
    /// The last attempt's captured log, JSON.
    pub log: Option<String>,
    /// The last attempt's progress, JSON.
    pub progress: Option<String>,
    pub usage: Usage,
    pub artifacts: Vec<Artifact>,
}

/// Every job of `run_id` in the order it was created (spawned jobs after
/// their parent), each with its last attempt and its artifacts.
pub fn job_outcomes(conn: &Connection, run_id: &str) -> Result<Vec<JobOutcomeRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.name, j.plugin, j.plugin_digest, j.state, j.spawn_reason, j.output,
                a.error, a.log, a.progress, a.fuel_consumed, a.peak_memory_bytes, a.wall_time_us
         FROM jobs j LEFT JOIN attempts a ON a.job_id = j.id AND a.number = j.attempts
         WHERE j.run_id = ?1 ORDER BY j.rowid",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            JobOutcomeRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                plugin: r.get(2)?,
                plugin_digest: r.get(3)?,
                state: JobState::Pending,
                spawn_reason: r.get(5)?,
                output: r.get(6)?,
                error: r.get(7)?,
                log: r.get(8)?,
                progress: r.get(9)?,
                usage: Usage {
                    fuel_consumed: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                    peak_memory_bytes: r.get::<_, Option<i64>>(11)?.unwrap_or(0) as u64,
                    wall_time: std::time::Duration::from_micros(
                        r.get::<_, Option<i64>>(12)?.unwrap_or(0) as u64,
                    ),
                },
                artifacts: Vec::new(),
            },
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut jobs = Vec::new();
    for row in rows {
        let (mut job, state) = row?;
        job.state = JobState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("job state {state:?}")))?;
        jobs.push(job);
    }
    let mut artifacts = conn.prepare_cached(
        "SELECT name, sha256, size FROM artifacts WHERE job_id = ?1 ORDER BY rowid",
    )?;
    for job in &mut jobs {
        job.artifacts = artifacts
            .query_map([&job.id], |r| {
                Ok(Artifact {
                    name: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    producer: job.name.clone(),
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(jobs)
}

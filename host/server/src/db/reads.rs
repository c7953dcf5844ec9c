//! Reads for the HTTP API: lists with filters and cursors, one job with its
//! attempts, history after a point, a run's artifacts, templates.

use rusqlite::{Connection, OptionalExtension, named_params, params};
use serde::Serialize;

use super::DbError;
use super::runs::AttemptRecord;
use warren_vocabulary::{ApprovalGate, Artifact, JobState, Review, RunState, Usage};

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

/// A stored JSON text: its size in bytes and, when it is at most the size
/// the caller inlines, the text itself (a longer one is not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJson {
    pub bytes: u64,
    pub text: Option<String>,
}

/// The two columns [`stored_json`] reads: `column`'s size in bytes and its
/// text when it is at most `:max_inline` bytes. `octet_length` counts bytes
/// (SQLite's `length` counts characters) without reading the text.
fn sized(column: &str) -> String {
    format!(
        "octet_length({column}), CASE WHEN octet_length({column}) <= :max_inline THEN {column} END"
    )
}

/// Reads the two columns of [`sized`] at `index`; `None` for a NULL column.
fn stored_json(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<StoredJson>> {
    let bytes: Option<i64> = r.get(index)?;
    let text: Option<String> = r.get(index + 1)?;
    Ok(bytes.map(|bytes| StoredJson {
        bytes: bytes.max(0) as u64,
        text,
    }))
}

/// Document names stored as a JSON array (`pending_docs`); none for NULL.
fn document_names(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let json: Option<String> = r.get(index)?;
    Ok(json
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

/// A run without its jobs: what `GET /v1/runs/{id}` shows above them.
#[derive(Debug, Clone)]
pub struct RunHeadRecord {
    pub id: String,
    pub state: RunState,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub input: StoredJson,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub jobs_total: u64,
    /// What its jobs in `needs_input` wait for, in name order.
    pub pending_docs: Vec<String>,
    /// Model tokens its attempts used.
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The run it replays.
    pub replay_of: Option<String>,
    pub updated_at: i64,
    /// When its first job started.
    pub started_at: Option<i64>,
    /// Its budget as it applies (JSON), the one it reached, and what its
    /// attempts used of fuel and kept of artifacts.
    pub budget: Option<String>,
    pub budget_exceeded: Option<String>,
    pub fuel_used: u64,
    pub artifact_bytes: u64,
}

pub fn run_head(
    conn: &Connection,
    run_id: &str,
    max_inline: usize,
) -> Result<Option<RunHeadRecord>, DbError> {
    let sql = format!(
        "SELECT id, state, template_name, template_version, story_id, created_at, finished_at,
                (SELECT count(*) FROM jobs WHERE run_id = runs.id), {},
                (SELECT json_group_array(DISTINCT d.value) FROM jobs j, json_each(j.pending_docs) d
                 WHERE j.run_id = runs.id AND j.pending_docs IS NOT NULL),
                (SELECT coalesce(sum(a.tokens_in), 0) FROM attempts a JOIN jobs j ON j.id = a.job_id
                 WHERE j.run_id = runs.id),
                (SELECT coalesce(sum(a.tokens_out), 0) FROM attempts a JOIN jobs j ON j.id = a.job_id
                 WHERE j.run_id = runs.id),
                replay_of, updated_at, started_at, budget, budget_exceeded,
                (SELECT coalesce(sum(a.fuel_consumed), 0) FROM attempts a JOIN jobs j ON j.id = a.job_id
                 WHERE j.run_id = runs.id),
                (SELECT coalesce(sum(f.size), 0) FROM artifacts f JOIN jobs j ON j.id = f.job_id
                 WHERE j.run_id = runs.id)
         FROM runs WHERE id = :run",
        sized("input")
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(
            named_params! {":run": run_id, ":max_inline": max_inline as i64},
            |r| {
                Ok((
                    RunHeadRecord {
                        id: r.get(0)?,
                        state: RunState::Pending,
                        template: r.get(2)?,
                        template_version: r.get(3)?,
                        story_id: r.get(4)?,
                        created_at: r.get(5)?,
                        finished_at: r.get(6)?,
                        jobs_total: r.get::<_, i64>(7)?.max(0) as u64,
                        input: stored_json(r, 8)?.unwrap_or(StoredJson {
                            bytes: 0,
                            text: None,
                        }),
                        pending_docs: {
                            let mut names = document_names(r, 10)?;
                            names.sort();
                            names
                        },
                        tokens_in: r.get::<_, i64>(11)?.max(0) as u64,
                        tokens_out: r.get::<_, i64>(12)?.max(0) as u64,
                        replay_of: r.get(13)?,
                        updated_at: r.get(14)?,
                        started_at: r.get(15)?,
                        budget: r.get(16)?,
                        budget_exceeded: r.get(17)?,
                        fuel_used: r.get::<_, i64>(18)?.max(0) as u64,
                        artifact_bytes: r.get::<_, i64>(19)?.max(0) as u64,
                    },
                    r.get::<_, String>(1)?,
                ))
            },
        )
        .optional()?;
    row.map(|(mut run, state)| {
        run.state = RunState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("run state {state:?}")))?;
        Ok(run)
    })
    .transpose()
}

/// A run's state, without reading anything else of it.
pub fn run_state(conn: &Connection, run_id: &str) -> Result<Option<RunState>, DbError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    state
        .map(|s| RunState::parse(&s).ok_or_else(|| DbError::Corrupt(format!("run state {s:?}"))))
        .transpose()
}

/// A job as a list shows it: its input and output only when small.
#[derive(Debug, Clone)]
pub struct JobSummaryRecord {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    pub input: StoredJson,
    /// `None` until the job has succeeded.
    pub output: Option<StoredJson>,
    /// JSON text; bounded when stored (`warren_vocabulary::text`).
    pub error: Option<String>,
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
    /// The documents it waits for, in state `needs_input`.
    pub pending_docs: Vec<String>,
    pub times: JobTimes,
    /// The summary its plugin last reported (`jobs.progress`), or an
    /// outside reporter gave.
    pub summary: Option<String>,
}

/// When a job was created, last changed, first ran and ended (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTimes {
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
}

impl JobSummaryRecord {
    /// Bytes of the texts it holds: what a page's byte budget counts.
    fn held_bytes(&self) -> usize {
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        text(&self.input.text)
            + self.output.as_ref().map_or(0, |o| text(&o.text))
            + text(&self.error)
            + text(&self.spawn_reason)
            + text(&self.summary)
            + self.pending_docs.iter().map(String::len).sum::<usize>()
    }
}

/// How many columns [`job_summary_columns`] selects: what a query adds
/// after them starts here.
const JOB_SUMMARY_COLUMNS: usize = 19;

fn job_summary_columns() -> String {
    format!(
        "id, name, plugin, state, attempts, error, parent_job_id, spawn_reason, depth, {}, {}, pending_docs,
         created_at, updated_at, started_at, ended_at, summary",
        sized("input"),
        sized("output")
    )
}

fn job_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobSummaryRecord, String)> {
    Ok((
        JobSummaryRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            plugin: r.get(2)?,
            state: JobState::Pending,
            attempts: r.get(4)?,
            error: r.get(5)?,
            parent_job_id: r.get(6)?,
            spawn_reason: r.get(7)?,
            depth: r.get(8)?,
            input: stored_json(r, 9)?.unwrap_or(StoredJson {
                bytes: 0,
                text: None,
            }),
            output: stored_json(r, 11)?,
            pending_docs: document_names(r, 13)?,
            times: JobTimes {
                created_at: r.get(14)?,
                updated_at: r.get(15)?,
                started_at: r.get(16)?,
                ended_at: r.get(17)?,
            },
            summary: r.get(18)?,
        },
        r.get(3)?,
    ))
}

fn with_state((mut job, state): (JobSummaryRecord, String)) -> Result<JobSummaryRecord, DbError> {
    job.state =
        JobState::parse(&state).ok_or_else(|| DbError::Corrupt(format!("job state {state:?}")))?;
    Ok(job)
}

/// Where a job of `run_id` sits in its run's order (a page cursor); `None`
/// when the run has no such job.
pub fn job_position(conn: &Connection, run_id: &str, job_id: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT rowid FROM jobs WHERE id = ?1 AND run_id = ?2")?
        .query_row([job_id, run_id], |r| r.get(0))
        .optional()?)
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether more items follow the last one.
    pub more: bool,
}

/// Rows of `rows` in order until `limit` of them, or until the texts they
/// hold pass `max_bytes` (the row that passes included: the caller trims
/// to its exact budget); says whether more rows follow.
pub(super) fn page_of<T>(
    rows: impl Iterator<Item = Result<T, DbError>>,
    limit: usize,
    max_bytes: usize,
    held: impl Fn(&T) -> usize,
) -> Result<Page<T>, DbError> {
    let mut rows = rows.peekable();
    let mut items = Vec::new();
    let mut bytes = 0usize;
    while items.len() < limit && bytes <= max_bytes {
        let Some(row) = rows.next() else {
            return Ok(Page { items, more: false });
        };
        let row = row?;
        bytes = bytes.saturating_add(held(&row));
        items.push(row);
    }
    let more = rows.peek().is_some();
    Ok(Page { items, more })
}

/// A run's jobs in the order they were created, after the job at
/// `after` (a [`job_position`]; 0 for the start): at most `limit`, and
/// not much past `max_bytes` of texts.
pub fn run_jobs(
    conn: &Connection,
    run_id: &str,
    after: i64,
    limit: usize,
    max_inline: usize,
    max_bytes: usize,
) -> Result<Page<JobSummaryRecord>, DbError> {
    let sql = format!(
        "SELECT {} FROM jobs WHERE run_id = :run AND rowid > :after ORDER BY rowid LIMIT :limit",
        job_summary_columns()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        named_params! {
            ":run": run_id,
            ":after": after,
            ":limit": (limit as i64).saturating_add(1),
            ":max_inline": max_inline as i64,
        },
        job_summary,
    )?;
    page_of(
        rows.map(|row| with_state(row?)),
        limit,
        max_bytes,
        JobSummaryRecord::held_bytes,
    )
}

/// A job with its run, its latest attempts and its artifacts.
#[derive(Debug, Clone)]
pub struct JobDetailRecord {
    pub run_id: String,
    pub job: JobSummaryRecord,
    /// The latest attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    pub artifacts: Vec<ArtifactRecord>,
    pub approval: Option<ApprovalGate>,
    pub reworks: u32,
    pub waiting_since: Option<i64>,
    /// Its latest reviews, oldest first.
    pub reviews: Vec<Review>,
    pub reviews_total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRecord {
    pub job_id: String,
    pub job: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// A job with at most its `max_attempts` latest attempts.
pub fn job_detail(
    conn: &Connection,
    job_id: &str,
    max_inline: usize,
    max_attempts: usize,
) -> Result<Option<JobDetailRecord>, DbError> {
    let sql = format!(
        "SELECT {}, run_id FROM jobs WHERE id = :job",
        job_summary_columns()
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(
            named_params! {":job": job_id, ":max_inline": max_inline as i64},
            |r| Ok((job_summary(r)?, r.get::<_, String>(JOB_SUMMARY_COLUMNS)?)),
        )
        .optional()?;
    let Some((job, run_id)) = row else {
        return Ok(None);
    };
    let job = with_state(job)?;
    let (approval, reworks, waiting_since) = conn
        .prepare_cached("SELECT approval, reworks, waiting_since FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
    let approval = approval
        .map(|json| serde_json::from_str(&json).map_err(|e| DbError::Corrupt(e.to_string())))
        .transpose()?;
    let (reviews, reviews_total) = super::runs::job_reviews(conn, job_id)?;
    Ok(Some(JobDetailRecord {
        run_id,
        attempts: super::runs::latest_attempts(conn, &job.id, max_attempts)?,
        artifacts: artifacts(conn, "a.job_id = ?1", &job.id)?,
        job,
        approval,
        reworks,
        waiting_since,
        reviews,
        reviews_total,
    }))
}

/// A job's whole input or output, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobText {
    Input,
    Output,
}

/// The text of `which`: `None` when there is no such job, `Some(None)`
/// when the job has no output (yet).
pub fn job_text(
    conn: &Connection,
    job_id: &str,
    which: JobText,
) -> Result<Option<Option<String>>, DbError> {
    let sql = match which {
        JobText::Input => "SELECT input FROM jobs WHERE id = ?1",
        JobText::Output => "SELECT output FROM jobs WHERE id = ?1",
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([job_id], |r| r.get(0))
        .optional()?)
}

/// A run's whole input, as stored.
pub fn run_input(conn: &Connection, run_id: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT input FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?)
}

/// A page of the artifacts of every job of a run, in the order they were
/// recorded, after the artifact at `after` (a cursor: its position).
pub fn run_artifacts(
    conn: &Connection,
    run_id: &str,
    after: i64,
    limit: usize,
) -> Result<Page<(i64, ArtifactRecord)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.rowid, a.job_id, j.name, a.name, a.sha256, a.size FROM artifacts a
         JOIN jobs j ON j.id = a.job_id
         WHERE j.run_id = ?1 AND a.rowid > ?2 ORDER BY a.rowid LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![run_id, after, (limit as i64).saturating_add(1)],
        |r| {
            Ok((
                r.get(0)?,
                ArtifactRecord {
                    job_id: r.get(1)?,
                    job: r.get(2)?,
                    name: r.get(3)?,
                    sha256: r.get(4)?,
                    size: r.get::<_, i64>(5)?.max(0) as u64,
                },
            ))
        },
    )?;
    page_of(rows.map(|row| Ok(row?)), limit, usize::MAX, |_| 0)
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

/// The log an attempt of a job left: small ones inline.
#[derive(Debug, Clone)]
pub struct AttemptLogRecord {
    pub attempt: u32,
    pub state: String,
    /// `None` while the attempt runs (a log is stored when it ends).
    pub log: Option<StoredJson>,
}

/// A job's attempts after number `after`, in order: at most `limit`, and
/// not much past `max_bytes` of logs.
pub fn job_logs(
    conn: &Connection,
    job_id: &str,
    after: u32,
    limit: usize,
    max_inline: usize,
    max_bytes: usize,
) -> Result<Page<AttemptLogRecord>, DbError> {
    let sql = format!(
        "SELECT number, state, {} FROM attempts WHERE job_id = :job AND number > :after
         ORDER BY number LIMIT :limit",
        sized("log")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        named_params! {
            ":job": job_id,
            ":after": after,
            ":limit": (limit as i64).saturating_add(1),
            ":max_inline": max_inline as i64,
        },
        |r| {
            Ok(AttemptLogRecord {
                attempt: r.get(0)?,
                state: r.get(1)?,
                log: stored_json(r, 2)?,
            })
        },
    )?;
    page_of(rows.map(|row| Ok(row?)), limit, max_bytes, |a| {
        a.log
            .as_ref()
            .and_then(|l| l.text.as_ref())
            .map_or(0, String::len)
    })
}

/// The whole log of attempt `number` of a job: `None` when there is no
/// such attempt, `Some(None)` while it runs.
pub fn attempt_log(
    conn: &Connection,
    job_id: &str,
    number: u32,
) -> Result<Option<Option<String>>, DbError> {
    Ok(conn
        .prepare_cached("SELECT log FROM attempts WHERE job_id = ?1 AND number = ?2")?
        .query_row(params![job_id, number], |r| r.get(0))
        .optional()?)
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
    /// JSON saying more (a review's decision, who, comments).
    pub detail: Option<String>,
}

/// Events after `after` (an event id), of one run or of all, oldest first.
pub fn events_after(
    conn: &Connection,
    run_id: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, run_id, job_id, kind, from_state, to_state, reason, detail FROM events
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
            detail: r.get(8)?,
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

/// Template names after `after`, in name order, at most `limit`.
pub fn list_templates(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<TemplateRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, max(version), max(created_at) FROM templates
         WHERE (?1 IS NULL OR name > ?1) GROUP BY name ORDER BY name LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, (limit as i64).saturating_add(1)], |r| {
        Ok(TemplateRecord {
            name: r.get(0)?,
            latest_version: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    page_of(rows.map(|row| Ok(row?)), limit, usize::MAX, |_| 0)
}

/// Keys and values of one memory namespace, in key order, after a cursor:
/// at most `limit`, and not much past `max_bytes` of values.
pub fn memory_entries(
    conn: &Connection,
    namespace: &str,
    start_after: Option<&str>,
    limit: usize,
    max_bytes: usize,
) -> Result<Page<(String, Vec<u8>)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM memory WHERE namespace = ?1 AND (?2 IS NULL OR key > ?2)
         ORDER BY key LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![namespace, start_after, (limit as i64).saturating_add(1)],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
    )?;
    page_of(rows.map(|row| Ok(row?)), limit, max_bytes, |(_, value)| {
        value.len()
    })
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
    /// The documents it waits for, in state `needs_input`.
    pub pending_docs: Vec<String>,
}

/// Every job of `run_id` in the order it was created (spawned jobs after
/// their parent), each with its last attempt and its artifacts.
pub fn job_outcomes(conn: &Connection, run_id: &str) -> Result<Vec<JobOutcomeRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.name, j.plugin, j.plugin_digest, j.state, j.spawn_reason, j.output,
                a.error, a.log, a.progress, a.fuel_consumed, a.peak_memory_bytes, a.wall_time_us,
                j.pending_docs, a.tokens_in, a.tokens_out
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
                    tokens_in: r.get::<_, Option<i64>>(14)?.unwrap_or(0) as u64,
                    tokens_out: r.get::<_, Option<i64>>(15)?.unwrap_or(0) as u64,
                },
                artifacts: Vec::new(),
                pending_docs: document_names(r, 13)?,
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

/// What a flow's answer is made of: the run's state and pipeline, and its
/// jobs (outputs only when small enough to answer inline).
#[derive(Debug, Clone)]
pub struct FlowRecord {
    pub state: RunState,
    /// The pipeline as stored (JSON).
    pub spec: String,
    pub story_id: Option<String>,
    /// In the order they were created.
    pub jobs: Vec<FlowJobRecord>,
}

#[derive(Debug, Clone)]
pub struct FlowJobRecord {
    pub id: String,
    pub name: String,
    pub state: JobState,
    pub output: Option<StoredJson>,
    /// JSON of how it failed.
    pub error: Option<String>,
    pub pending_docs: Vec<String>,
}

pub fn flow(
    conn: &Connection,
    run_id: &str,
    max_inline: usize,
) -> Result<Option<FlowRecord>, DbError> {
    // The run and its jobs from one snapshot: a run seen waiting has its
    // waiting jobs.
    let snapshot = conn.unchecked_transaction()?;
    let conn = &*snapshot;
    let head: Option<(String, String, Option<String>)> = conn
        .prepare_cached("SELECT state, spec, story_id FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((state, spec, story_id)) = head else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT id, name, state, error, pending_docs, {} FROM jobs WHERE run_id = :run ORDER BY rowid",
        sized("output")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        named_params! {":run": run_id, ":max_inline": max_inline as i64},
        |r| {
            Ok((
                FlowJobRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    state: JobState::Pending,
                    error: r.get(3)?,
                    pending_docs: document_names(r, 4)?,
                    output: stored_json(r, 5)?,
                },
                r.get::<_, String>(2)?,
            ))
        },
    )?;
    let jobs = rows
        .map(|row| {
            let (mut job, state) = row?;
            job.state = JobState::parse(&state)
                .ok_or_else(|| DbError::Corrupt(format!("job state {state:?}")))?;
            Ok(job)
        })
        .collect::<Result<_, DbError>>()?;
    Ok(Some(FlowRecord {
        state: RunState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("run state {state:?}")))?,
        spec,
        story_id,
        jobs,
    }))
}

/// A job waiting for people: a decision or input.
#[derive(Debug, Clone, Serialize)]
pub struct PendingJobRecord {
    pub job_id: String,
    pub job: String,
    pub run_id: String,
    pub plugin: String,
    pub state: JobState,
    pub since: i64,
    pub story_id: Option<String>,
    pub template: Option<String>,
    /// The first bytes of its output (held while it waits for a decision).
    pub output_summary: Option<String>,
    pub pending_docs: Vec<String>,
    pub approval: Option<ApprovalGate>,
    pub reworks: u32,
    /// Attempts so far: a decision sent with it applies to this output only.
    pub attempts: u32,
}

/// Bytes of a waiting job's output a listing shows.
pub const OUTPUT_SUMMARY_BYTES: usize = 240;

/// Jobs waiting for people, longest waiting first, after `after` (the
/// `(since, job id)` of the last one of the previous page: it holds when
/// that job no longer waits), at most `limit`; only those in `state` when
/// given.
pub fn pending_jobs(
    conn: &Connection,
    state: Option<JobState>,
    after: Option<(i64, &str)>,
    limit: usize,
) -> Result<Vec<PendingJobRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.name, j.run_id, j.plugin, j.state, j.waiting_since, r.story_id, r.template_name,
                substr(CAST(j.output AS BLOB), 1, ?3), j.pending_docs, j.approval, j.reworks, j.attempts
         FROM jobs j JOIN runs r ON r.id = j.run_id
         WHERE j.waiting_since IS NOT NULL AND (?1 IS NULL OR j.state = ?1)
           AND (?2 IS NULL OR (j.waiting_since, j.id) > (?2, ?5))
         ORDER BY j.waiting_since, j.id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            state.map(JobState::as_str),
            after.map(|(since, _)| since),
            OUTPUT_SUMMARY_BYTES as i64,
            limit as i64,
            after.map(|(_, id)| id)
        ],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<Vec<u8>>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, u32>(11)?,
                r.get::<_, u32>(12)?,
            ))
        },
    )?;
    let corrupt = |e: serde_json::Error| DbError::Corrupt(e.to_string());
    let mut pending = Vec::new();
    for row in rows {
        let (
            job_id,
            job,
            run_id,
            plugin,
            state,
            since,
            story_id,
            template,
            output,
            pending_docs,
            approval,
            reworks,
            attempts,
        ) = row?;
        pending.push(PendingJobRecord {
            state: JobState::parse(&state)
                .ok_or_else(|| DbError::Corrupt(format!("job state {state:?}")))?,
            job_id,
            job,
            run_id,
            plugin,
            since,
            story_id,
            template,
            // Cut at a byte count: a character cut in two is dropped.
            output_summary: output.map(|bytes| {
                let text = String::from_utf8_lossy(&bytes);
                text.trim_end_matches('\u{FFFD}').to_owned()
            }),
            pending_docs: pending_docs
                .map(|json| serde_json::from_str(&json).map_err(corrupt))
                .transpose()?
                .unwrap_or_default(),
            approval: approval
                .map(|json| serde_json::from_str(&json).map_err(corrupt))
                .transpose()?,
            reworks,
            attempts,
        });
    }
    Ok(pending)
}

//! Persistence of runs, jobs, attempts, artifacts and events. The scheduler
//! decides; this module writes its decisions as [`Change`]s, each state
//! change with its event row, in the caller's transaction.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;
use warren_sandbox::runtime::WrittenDocument;
use warren_vocabulary::text;
use warren_vocabulary::{
    ApprovalGate, Artifact, BudgetKind, Condition, Decision, GuardVerdict, JobState, Limits,
    MAX_REVIEWS_HANDED, MemoryScope, RetryPolicy, Review, Reviewer, Role, RunState, Screening,
    Usage, now_ms,
};

#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub template: Option<(String, i64)>,
    /// The pipeline as validated, JSON.
    pub spec: String,
    pub input: String,
    pub story_id: Option<String>,
    /// The run whose recorded answers this one replays.
    pub replay_of: Option<String>,
    /// Its budget as it applies, JSON; `None` without one.
    pub budget: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub name: String,
    pub plugin: String,
    /// The plugin version it runs (`None`: whichever is active).
    pub plugin_digest: Option<String>,
    pub input: String,
    pub state: JobState,
    pub retry: RetryPolicy,
    pub limits: Limits,
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
    /// Its gate (spawned jobs have none).
    pub approval: Option<ApprovalGate>,
}

#[derive(Debug, Clone)]
pub struct NewDep {
    pub job_id: String,
    pub depends_on: String,
    pub condition: Condition,
}

/// One decision of the scheduler, written with its event.
#[derive(Debug, Clone)]
pub enum Change {
    InsertRun(NewRun),
    InsertJobs {
        run_id: String,
        jobs: Vec<NewJob>,
        deps: Vec<NewDep>,
        reason: String,
    },
    /// A cancel was asked for; kept so a restart finishes cancelling.
    CancelRequested {
        run_id: String,
    },
    /// The run reached a budget: it is stopped as a cancel is, and ends
    /// `failed`; kept so a restart finishes it so.
    BudgetExceeded {
        run_id: String,
        kind: BudgetKind,
    },
    RunState {
        run_id: String,
        from: RunState,
        to: RunState,
        reason: Option<String>,
    },
    JobState {
        run_id: String,
        job_id: String,
        from: JobState,
        to: JobState,
        reason: Option<String>,
        attempts: u32,
        /// Attempts that do not count against the retry policy (made
        /// before a manual retry).
        retry_base: u32,
        /// Rejections sent back for rework since the last manual retry.
        reworks: u32,
        ready_at: Option<i64>,
        output: Option<String>,
        error: Option<String>,
        /// The documents the job waits for, when it goes to `needs_input`.
        pending_docs: Option<Vec<String>>,
        /// Since when it waits for people, in a waiting state (ms).
        waiting_since: Option<i64>,
        /// The documents its output wrote, when it goes to
        /// `waiting_approval`.
        held_docs: Option<Vec<String>>,
    },
    StartAttempt {
        attempt_id: String,
        job_id: String,
        number: u32,
        plugin_digest: String,
    },
    FinishAttempt {
        job_id: String,
        number: u32,
        succeeded: bool,
        error: Option<String>,
        log: String,
        usage: Usage,
        /// The last progress reported, JSON.
        progress: Option<String>,
    },
    Artifacts {
        job_id: String,
        artifacts: Vec<Artifact>,
        /// Names among `artifacts` whose bytes are the content of a story
        /// document this batch writes (an agent's documents): no blob.
        in_documents: Vec<String>,
    },
    ArtifactUses {
        consumer_job_id: String,
        attempt: u32,
        /// `(producer job id, artifact name)`.
        uses: Vec<(String, String)>,
    },
    /// A decision on a job's output, or input given to it, with its event.
    Review {
        run_id: String,
        job_id: String,
        review: Review,
    },
    /// The summary a job's outside reporter gave.
    Summary {
        job_id: String,
        summary: String,
    },
    /// A guard's verdict on the run's input, a job's output or a
    /// document, with its event.
    Screened {
        run_id: String,
        job_id: Option<String>,
        screening: Screening,
    },
    /// An agent's documents: each a new version in `scope` (a story).
    Documents {
        scope: String,
        run_id: String,
        job_id: String,
        documents: Vec<WrittenDocument>,
    },
}

impl Change {
    /// The run this change is about, when it names one: the run whose
    /// history it may add to. The changes that name only a job write no
    /// event, and come with a change of that job in the same batch.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Change::InsertRun(run) => Some(&run.id),
            Change::InsertJobs { run_id, .. }
            | Change::CancelRequested { run_id }
            | Change::BudgetExceeded { run_id, .. }
            | Change::RunState { run_id, .. }
            | Change::JobState { run_id, .. }
            | Change::Review { run_id, .. }
            | Change::Screened { run_id, .. }
            | Change::Documents { run_id, .. } => Some(run_id),
            Change::StartAttempt { .. }
            | Change::FinishAttempt { .. }
            | Change::Artifacts { .. }
            | Change::ArtifactUses { .. }
            | Change::Summary { .. } => None,
        }
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, DbError> {
    serde_json::to_string(value).map_err(|e| DbError::Corrupt(e.to_string()))
}

/// One row of the history.
struct Event<'a> {
    run_id: &'a str,
    job_id: Option<&'a str>,
    kind: &'a str,
    from: Option<&'a str>,
    to: &'a str,
    reason: Option<&'a str>,
    /// JSON saying more (a review's decision, who, comments).
    detail: Option<&'a str>,
}

fn event(conn: &Connection, at: i64, e: Event<'_>) -> Result<(), DbError> {
    let reason = e.reason.map(|r| text::bounded(r, text::MAX_REASON_BYTES));
    conn.prepare_cached(
        "INSERT INTO events (at, run_id, job_id, kind, from_state, to_state, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![at, e.run_id, e.job_id, e.kind, e.from, e.to, reason, e.detail])?;
    Ok(())
}

/// What a review event says besides its decision: who, and the comments
/// (the data stays with the review; the event says whether there was any).
#[derive(Serialize)]
struct ReviewDetail<'a> {
    decision: Decision,
    #[serde(rename = "final")]
    is_final: bool,
    by: &'a Reviewer,
    /// Cut as a reason is: the review keeps them whole.
    comments: Option<String>,
    with_data: bool,
    attempt: u32,
}

impl<'a> ReviewDetail<'a> {
    fn of(review: &'a Review) -> Self {
        Self {
            decision: review.decision,
            is_final: review.is_final,
            by: &review.by,
            comments: review
                .comments
                .as_deref()
                .map(|c| text::bounded(c, text::MAX_REASON_BYTES)),
            with_data: review.data.is_some(),
            attempt: review.attempt,
        }
    }
}

/// A review in one line, for the event's reason.
fn review_summary(review: &Review) -> String {
    let who = match (&review.by.name, review.by.role) {
        (Some(name), Some(role)) => format!("{name} ({role})"),
        (Some(name), None) => name.clone(),
        (None, Some(role)) => format!("an anonymous {role}"),
        (None, None) => "someone".to_owned(),
    };
    let what = match (review.decision, review.is_final) {
        (Decision::Approve, _) => "approved",
        (Decision::Reject, true) => "rejected (final)",
        (Decision::Reject, false) => "rejected",
        (Decision::Input, _) => "gave input",
    };
    match &review.comments {
        Some(comments) => format!("{what} by {who}: {comments}"),
        None => format!("{what} by {who}"),
    }
}

/// A backstop on stored errors (JSON of a failure): the guest's texts in
/// them were cut at `text::MAX_ERROR_BYTES` already, and escaping can at
/// most double them, so only a host bug reaches this bound.
fn bounded_error(error: &Option<String>) -> Option<String> {
    error
        .as_deref()
        .map(|e| text::bounded(e, 4 * text::MAX_REASON_BYTES))
}

/// Writes `changes` in order, in the caller's transaction. A job that
/// changes state several times in one batch (ready, then running) gets one
/// row update with its last state, and one event per change.
pub fn apply(conn: &Connection, changes: &[Change]) -> Result<(), DbError> {
    let at = now_ms();
    let mut last_update: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (index, change) in changes.iter().enumerate() {
        if let Change::JobState { job_id, .. } = change {
            last_update.insert(job_id, index);
        }
    }
    // Runs whose jobs changed: their `updated_at` says so, once a batch.
    let mut touched_runs: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (index, change) in changes.iter().enumerate() {
        match change {
            Change::InsertRun(run) => {
                conn.prepare_cached(
                    "INSERT INTO runs (id, template_name, template_version, spec, input, story_id, replay_of, budget, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?9, 'pending', ?7, ?7)",
                )?
                .execute(params![
                    run.id,
                    run.template.as_ref().map(|t| &t.0),
                    run.template.as_ref().map(|t| t.1),
                    run.spec,
                    run.input,
                    run.story_id,
                    at,
                    run.replay_of,
                    run.budget
                ])?;
                event(
                    conn,
                    at,
                    Event {
                        run_id: &run.id,
                        job_id: None,
                        kind: "run",
                        from: None,
                        to: RunState::Pending.as_str(),
                        reason: Some("submitted"),
                        detail: None,
                    },
                )?;
            }
            Change::InsertJobs {
                run_id,
                jobs,
                deps,
                reason,
            } => {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO jobs (id, run_id, name, plugin, input, state, retry, limits, parent_job_id, spawn_reason, depth, created_at, updated_at, plugin_digest, approval)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14)",
                )?;
                // Jobs of a run mostly share their settings: serialize each
                // distinct value once (this runs on the writer thread).
                let mut settings: Option<(RetryPolicy, Limits, String, String)> = None;
                for job in jobs {
                    let fresh = settings.as_ref().is_none_or(|(retry, limits, _, _)| {
                        *retry != job.retry || *limits != job.limits
                    });
                    if fresh {
                        settings = Some((
                            job.retry,
                            job.limits.clone(),
                            json(&job.retry)?,
                            json(&job.limits)?,
                        ));
                    }
                    let Some((_, _, retry_json, limits_json)) = &settings else {
                        continue;
                    };
                    insert.execute(params![
                        job.id,
                        run_id,
                        job.name,
                        job.plugin,
                        job.input,
                        job.state.as_str(),
                        retry_json,
                        limits_json,
                        job.parent_job_id,
                        job.spawn_reason,
                        job.depth,
                        at,
                        job.plugin_digest,
                        job.approval.as_ref().map(json).transpose()?
                    ])?;
                    event(
                        conn,
                        at,
                        Event {
                            run_id,
                            job_id: Some(&job.id),
                            kind: "job",
                            from: None,
                            to: job.state.as_str(),
                            reason: Some(reason),
                            detail: None,
                        },
                    )?;
                }
                let mut insert_dep = conn.prepare_cached(
                    "INSERT INTO job_deps (job_id, depends_on, condition) VALUES (?1, ?2, ?3)",
                )?;
                for dep in deps {
                    insert_dep.execute(params![
                        dep.job_id,
                        dep.depends_on,
                        dep.condition.as_str()
                    ])?;
                }
            }
            Change::CancelRequested { run_id } => {
                conn.prepare_cached("UPDATE runs SET cancel_requested_at = ?2 WHERE id = ?1")?
                    .execute(params![run_id, at])?;
                event(
                    conn,
                    at,
                    Event {
                        run_id,
                        job_id: None,
                        kind: "cancel",
                        from: None,
                        to: "cancelling",
                        reason: Some("cancel requested"),
                        detail: None,
                    },
                )?;
            }
            Change::RunState {
                run_id,
                from,
                to,
                reason,
            } => {
                let finished = to.is_terminal().then_some(at);
                conn.prepare_cached(
                    "UPDATE runs SET state = ?2, updated_at = ?3, finished_at = ?4,
                     started_at = coalesce(started_at, CASE WHEN ?2 <> 'pending' THEN ?3 END)
                     WHERE id = ?1",
                )?
                .execute(params![run_id, to.as_str(), at, finished])?;
                // Run memory lives as long as its run, and goes in the same
                // commit as the run's end.
                if finished.is_some() {
                    conn.prepare_cached("DELETE FROM memory WHERE namespace = ?1")?
                        .execute(params![MemoryScope::Run.namespace(run_id)])?;
                }
                event(
                    conn,
                    at,
                    Event {
                        run_id,
                        job_id: None,
                        kind: "run",
                        from: Some(from.as_str()),
                        to: to.as_str(),
                        reason: reason.as_deref(),
                        detail: None,
                    },
                )?;
            }
            Change::JobState {
                run_id,
                job_id,
                from,
                to,
                reason,
                attempts,
                retry_base,
                reworks,
                ready_at,
                output,
                error,
                pending_docs,
                waiting_since,
                held_docs,
            } => {
                // Only the last state change of a job in this batch is written
                // to its row; none before it carries an output or an error.
                if last_update.get(job_id.as_str()) == Some(&index) {
                    let pending_docs = pending_docs.as_ref().map(json).transpose()?;
                    let held_docs = held_docs.as_ref().map(json).transpose()?;
                    conn.prepare_cached(
                        "UPDATE jobs SET state = ?2, attempts = ?3, ready_at = ?4, output = coalesce(?5, output),
                         error = ?6, updated_at = ?7, retry_base = ?8, pending_docs = ?9, reworks = ?10,
                         waiting_since = ?11, held_docs = ?12,
                         started_at = coalesce(started_at, CASE WHEN ?3 > 0 OR ?2 = 'running' THEN ?7 END),
                         ended_at = CASE WHEN ?13 THEN ?7 END
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        job_id,
                        to.as_str(),
                        attempts,
                        ready_at,
                        output,
                        bounded_error(error),
                        at,
                        retry_base,
                        pending_docs,
                        reworks,
                        waiting_since,
                        held_docs,
                        to.is_terminal()
                    ])?;
                    touched_runs.insert(run_id.as_str());
                }
                event(
                    conn,
                    at,
                    Event {
                        run_id,
                        job_id: Some(job_id),
                        kind: "job",
                        from: Some(from.as_str()),
                        to: to.as_str(),
                        reason: reason.as_deref(),
                        detail: None,
                    },
                )?;
            }
            Change::StartAttempt {
                attempt_id,
                job_id,
                number,
                plugin_digest,
            } => {
                conn.prepare_cached(
                    "INSERT INTO attempts (id, job_id, number, state, plugin_digest, started_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                )?
                .execute(params![attempt_id, job_id, number, plugin_digest, at])?;
            }
            Change::FinishAttempt {
                job_id,
                number,
                succeeded,
                error,
                log,
                usage,
                progress,
            } => {
                conn.prepare_cached(
                    "UPDATE attempts SET state = ?3, finished_at = ?4, error = ?5, log = ?6, fuel_consumed = ?7,
                     peak_memory_bytes = ?8, wall_time_us = ?9, progress = ?10, tokens_in = ?11, tokens_out = ?12
                     WHERE job_id = ?1 AND number = ?2",
                )?
                .execute(params![
                    job_id,
                    number,
                    if *succeeded { "succeeded" } else { "failed" },
                    at,
                    bounded_error(error),
                    log,
                    usage.fuel_consumed as i64,
                    usage.peak_memory_bytes as i64,
                    usage.wall_time.as_micros() as i64,
                    progress,
                    usage.tokens_in as i64,
                    usage.tokens_out as i64
                ])?;
                if progress.is_some() {
                    conn.prepare_cached(
                        "UPDATE jobs SET summary = json_extract(?2, '$.summary') WHERE id = ?1",
                    )?
                    .execute(params![job_id, progress])?;
                }
            }
            Change::Artifacts {
                job_id,
                artifacts,
                in_documents,
            } => {
                let mut insert = conn.prepare_cached(
                    "INSERT OR REPLACE INTO artifacts (job_id, name, sha256, size, in_documents)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for artifact in artifacts {
                    insert.execute(params![
                        job_id,
                        artifact.name,
                        artifact.sha256,
                        artifact.size as i64,
                        in_documents.contains(&artifact.name)
                    ])?;
                }
            }
            Change::ArtifactUses {
                consumer_job_id,
                attempt,
                uses,
            } => {
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO artifact_uses (consumer_job_id, producer_job_id, name, attempt) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (producer, name) in uses {
                    insert.execute(params![consumer_job_id, producer, name, attempt])?;
                }
            }
            Change::BudgetExceeded { run_id, kind } => {
                conn.prepare_cached(
                    "UPDATE runs SET budget_exceeded = ?2, cancel_requested_at = coalesce(cancel_requested_at, ?3)
                     WHERE id = ?1",
                )?
                .execute(params![run_id, kind.as_str(), at])?;
            }
            Change::Summary { job_id, summary } => {
                conn.prepare_cached("UPDATE jobs SET summary = ?2 WHERE id = ?1")?
                    .execute(params![job_id, summary])?;
            }
            Change::Screened {
                run_id,
                job_id,
                screening,
            } => {
                // The run's events hold every verdict; the screenings table
                // those that changed something (kept with refused ones).
                if screening.verdict != GuardVerdict::Allow {
                    super::screenings::insert(
                        conn,
                        at,
                        Some(run_id),
                        job_id.as_deref(),
                        screening,
                    )?;
                }
                let detail = json(&super::screenings::ScreeningDetail::of(screening))?;
                let reason = match &screening.verdict {
                    GuardVerdict::Deny {
                        category, reason, ..
                    } => format!("guard {} denied it: {category}: {reason}", screening.guard),
                    GuardVerdict::Redact { findings, .. } => format!(
                        "guard {} redacted {} finding(s)",
                        screening.guard,
                        findings.len()
                    ),
                    GuardVerdict::Allow => format!("guard {} allowed it", screening.guard),
                };
                event(
                    conn,
                    at,
                    Event {
                        run_id,
                        job_id: job_id.as_deref(),
                        kind: "guard",
                        from: None,
                        to: screening.verdict.name(),
                        reason: Some(&reason),
                        detail: Some(&detail),
                    },
                )?;
            }
            Change::Review {
                run_id,
                job_id,
                review,
            } => {
                conn.prepare_cached(
                    "INSERT INTO reviews (job_id, run_id, decision, final, comments, data, by_name, by_role, at, attempt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    job_id,
                    run_id,
                    review.decision.as_str(),
                    review.is_final,
                    review.comments,
                    review.data,
                    review.by.name,
                    review.by.role.map(Role::as_str),
                    review.at,
                    review.attempt
                ])?;
                let detail = json(&ReviewDetail::of(review))?;
                event(
                    conn,
                    review.at,
                    Event {
                        run_id,
                        job_id: Some(job_id),
                        kind: "review",
                        from: None,
                        to: review.decision.as_str(),
                        reason: Some(&review_summary(review)),
                        detail: Some(&detail),
                    },
                )?;
            }
            Change::Documents {
                scope,
                run_id,
                job_id,
                documents,
            } => {
                for document in documents {
                    super::documents::put_from_job(
                        conn,
                        scope,
                        &document.name,
                        &document.content,
                        run_id,
                        job_id,
                    )?;
                }
            }
        }
    }
    for run_id in touched_runs {
        conn.prepare_cached("UPDATE runs SET updated_at = ?2 WHERE id = ?1 AND updated_at < ?2")?
            .execute(params![run_id, at])?;
    }
    Ok(())
}

/// A job as stored, for the scheduler to rebuild its state.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub plugin_digest: Option<String>,
    pub input: String,
    pub state: JobState,
    pub attempts: u32,
    pub retry_base: u32,
    pub retry: RetryPolicy,
    pub limits: Limits,
    pub parent_job_id: Option<String>,
    pub depth: u32,
    pub ready_at: Option<i64>,
    pub output: Option<String>,
    /// The documents it waits for, in state `needs_input`.
    pub pending_docs: Vec<String>,
    pub approval: Option<ApprovalGate>,
    pub reworks: u32,
    /// Since when it waits for people (ms since the epoch).
    pub waiting_since: Option<i64>,
    /// The documents its waiting output wrote.
    pub held_docs: Vec<String>,
    /// Its reviews, oldest first.
    pub reviews: Vec<Review>,
}

/// A run that is not finished, with everything the scheduler needs.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub id: String,
    pub spec: String,
    pub input: String,
    pub story_id: Option<String>,
    pub replay_of: Option<String>,
    /// Its budget as it applies, JSON.
    pub budget: Option<String>,
    pub budget_exceeded: Option<BudgetKind>,
    /// Fuel its attempts consumed, and bytes of artifacts its jobs keep.
    pub fuel_used: u64,
    pub artifact_bytes: u64,
    pub created_at: i64,
    pub state: RunState,
    pub cancel_requested: bool,
    pub jobs: Vec<StoredJob>,
    pub deps: Vec<NewDep>,
    /// `(producer job id, artifact)`.
    pub artifacts: Vec<(String, Artifact)>,
    /// Attempts still marked running: the process died during them.
    pub running_attempts: Vec<(String, String)>,
    /// Model tokens its attempts used.
    pub tokens_used: u64,
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn job_state(text: &str) -> Result<JobState, DbError> {
    JobState::parse(text).ok_or_else(|| DbError::Corrupt(format!("job state {text:?}")))
}

fn run_state(text: &str) -> Result<RunState, DbError> {
    RunState::parse(text).ok_or_else(|| DbError::Corrupt(format!("run state {text:?}")))
}

/// A run waiting for people with nothing else to do: no job ready, running
/// or waiting for a retry's backoff, no cancel asked for. Such a run stays
/// a row until someone acts (see `scheduler::parking`).
const PARKED: &str = "r.state IN ('needs_input', 'waiting_approval')
    AND r.cancel_requested_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.run_id = r.id
        AND (b.state IN ('ready', 'running') OR (b.state = 'pending' AND b.ready_at IS NOT NULL)))";

/// Every run not in a terminal state, but those [`load_parked_runs`] gives.
pub fn load_active_runs(conn: &Connection) -> Result<Vec<StoredRun>, DbError> {
    load_runs(
        conn,
        &format!(
            "state IN ('pending', 'running', 'needs_input', 'waiting_approval') AND id NOT IN (SELECT r.id FROM runs r WHERE {PARKED})"
        ),
        &[],
    )
}

/// A run waiting for people, as the scheduler keeps it without its jobs.
#[derive(Debug, Clone)]
pub struct ParkedRun {
    pub id: String,
    pub state: RunState,
    /// Where its documents live (its story, or its own id).
    pub scope: String,
    /// Its jobs, by state.
    pub jobs: Vec<(JobState, u32)>,
    /// `(job index in the run, waiting since, gate)` of its jobs waiting
    /// for a decision.
    pub gates: Vec<(usize, i64, ApprovalGate)>,
    /// When its wall budget runs out (Unix ms), if it has one.
    pub wall_deadline: Option<i64>,
}

/// Every run waiting for people with nothing else to do, without its jobs.
pub fn load_parked_runs(conn: &Connection) -> Result<Vec<ParkedRun>, DbError> {
    let mut runs: Vec<ParkedRun> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT r.id, r.state, coalesce(r.story_id, r.id),
                CAST(min(r.created_at + json_extract(r.budget, '$.max_wall_ms'), 9223372036854775807) AS INTEGER)
         FROM runs r WHERE {PARKED} ORDER BY r.created_at, r.id"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, state, scope, wall_deadline) = row?;
        index.insert(id.clone(), runs.len());
        runs.push(ParkedRun {
            state: run_state(&state)?,
            id,
            scope,
            jobs: Vec::new(),
            gates: Vec::new(),
            wall_deadline,
        });
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT j.run_id, j.state, count(*) FROM jobs j JOIN runs r ON r.id = j.run_id
         WHERE {PARKED} GROUP BY j.run_id, j.state"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
        ))
    })?;
    for row in rows {
        let (run_id, state, count) = row?;
        if let Some(&i) = index.get(&run_id) {
            runs[i].jobs.push((job_state(&state)?, count));
        }
    }
    // A job's index is its place among its run's jobs, in the order they
    // were stored: the order the scheduler rebuilds them in.
    let mut stmt = conn.prepare(&format!(
        "SELECT run_id, place, waiting_since, approval FROM (
             SELECT j.run_id, j.state, j.waiting_since, j.approval,
                    row_number() OVER (PARTITION BY j.run_id ORDER BY j.rowid) - 1 AS place
             FROM jobs j JOIN runs r ON r.id = j.run_id WHERE {PARKED})
         WHERE state = 'waiting_approval' AND approval IS NOT NULL AND waiting_since IS NOT NULL"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (run_id, place, since, approval) = row?;
        if let Some(&i) = index.get(&run_id) {
            runs[i]
                .gates
                .push((place as usize, since, parse_json(&approval)?));
        }
    }
    Ok(runs)
}

/// One run, whatever its state.
pub fn load_run(conn: &Connection, run_id: &str) -> Result<Option<StoredRun>, DbError> {
    Ok(load_runs(conn, "id = ?1", &[&run_id])?.pop())
}

fn load_runs(
    conn: &Connection,
    filter: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<StoredRun>, DbError> {
    let mut runs = Vec::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT id, spec, input, story_id, state, cancel_requested_at IS NOT NULL,
                (SELECT coalesce(sum(a.tokens_in + a.tokens_out), 0) FROM attempts a
                 JOIN jobs j ON j.id = a.job_id WHERE j.run_id = runs.id),
                replay_of, budget, budget_exceeded, created_at,
                (SELECT coalesce(sum(a.fuel_consumed), 0) FROM attempts a
                 JOIN jobs j ON j.id = a.job_id WHERE j.run_id = runs.id),
                (SELECT coalesce(sum(f.size), 0) FROM artifacts f
                 JOIN jobs j ON j.id = f.job_id WHERE j.run_id = runs.id)
         FROM runs WHERE {filter} ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map(values, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, i64>(6)?,
            r.get(7)?,
            (
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
            ),
        ))
    })?;
    for row in rows {
        let (id, spec, input, story_id, state, cancel_requested, tokens_used, replay_of, budgets) =
            row?;
        let (budget, budget_exceeded, created_at, fuel_used, artifact_bytes) = budgets;
        runs.push(StoredRun {
            state: run_state(&state)?,
            cancel_requested,
            jobs: load_jobs(conn, &id)?,
            deps: load_deps(conn, &id)?,
            artifacts: load_artifacts(conn, &id)?,
            running_attempts: load_running_attempts(conn, &id)?,
            tokens_used: tokens_used.max(0) as u64,
            id,
            spec,
            input,
            story_id,
            replay_of,
            budget,
            budget_exceeded: budget_exceeded.as_deref().and_then(BudgetKind::parse),
            fuel_used: fuel_used.max(0) as u64,
            artifact_bytes: artifact_bytes.max(0) as u64,
            created_at,
        });
    }
    Ok(runs)
}

/// The run and state of a job.
pub fn job_run(conn: &Connection, job_id: &str) -> Result<Option<(String, JobState)>, DbError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT run_id, state FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(run_id, state)| Ok((run_id, job_state(&state)?)))
        .transpose()
}

fn load_jobs(conn: &Connection, run_id: &str) -> Result<Vec<StoredJob>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, plugin, input, state, attempts, retry, limits, parent_job_id, depth, ready_at, output,
         retry_base, plugin_digest, pending_docs, approval, reworks, waiting_since, held_docs
         FROM jobs WHERE run_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, u32>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, u32>(9)?,
            r.get::<_, Option<i64>>(10)?,
            r.get::<_, Option<String>>(11)?,
            r.get::<_, u32>(12)?,
            r.get::<_, Option<String>>(13)?,
            r.get::<_, Option<String>>(14)?,
            r.get::<_, Option<String>>(15)?,
            r.get::<_, u32>(16)?,
            r.get::<_, Option<i64>>(17)?,
            r.get::<_, Option<String>>(18)?,
        ))
    })?;
    let mut jobs = Vec::new();
    for row in rows {
        let (
            id,
            name,
            plugin,
            input,
            state,
            attempts,
            retry,
            limits,
            parent_job_id,
            depth,
            ready_at,
            output,
            retry_base,
            plugin_digest,
            pending_docs,
            approval,
            reworks,
            waiting_since,
            held_docs,
        ) = row?;
        jobs.push(StoredJob {
            id,
            name,
            plugin,
            plugin_digest,
            input,
            state: job_state(&state)?,
            attempts,
            retry_base,
            retry: parse_json(&retry)?,
            limits: parse_json(&limits)?,
            parent_job_id,
            depth,
            ready_at,
            output,
            pending_docs: pending_docs
                .map(|json| parse_json(&json))
                .transpose()?
                .unwrap_or_default(),
            approval: approval.map(|json| parse_json(&json)).transpose()?,
            reworks,
            waiting_since,
            held_docs: held_docs
                .map(|json| parse_json(&json))
                .transpose()?
                .unwrap_or_default(),
            reviews: Vec::new(),
        });
    }
    let mut reviews = run_reviews(conn, run_id)?;
    if !reviews.is_empty() {
        for job in &mut jobs {
            job.reviews = reviews.remove(&job.id).unwrap_or_default();
        }
    }
    Ok(jobs)
}

fn load_deps(conn: &Connection, run_id: &str) -> Result<Vec<NewDep>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT d.job_id, d.depends_on, d.condition FROM job_deps d JOIN jobs j ON j.id = d.job_id WHERE j.run_id = ?1",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut deps = Vec::new();
    for row in rows {
        let (job_id, depends_on, condition) = row?;
        let condition = Condition::parse(&condition)
            .ok_or_else(|| DbError::Corrupt(format!("condition {condition:?}")))?;
        deps.push(NewDep {
            job_id,
            depends_on,
            condition,
        });
    }
    Ok(deps)
}

/// The run of a job, the job's name and the run's pipeline (JSON).
pub fn job_with_pipeline(
    conn: &Connection,
    job_id: &str,
) -> Result<Option<(String, String, String)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT j.run_id, j.name, r.spec FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ?1",
        )?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// Whether a run of this id exists.
pub fn run_exists(conn: &Connection, run_id: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
        .exists([run_id])?)
}

/// The answers job `job_name` of run `run_id` recorded to its calls out
/// (its `replay/...` artifacts), for a replay by a job of `plugin`: a job
/// of another plugin gets none (they were answers to what that one was
/// granted).
pub fn recordings(
    conn: &Connection,
    run_id: &str,
    job_name: &str,
    plugin: &str,
) -> Result<Vec<Artifact>, DbError> {
    // `replay0` is the first name past every `replay/...` one.
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, a.sha256, a.size, j.name FROM artifacts a JOIN jobs j ON j.id = a.job_id
         WHERE j.run_id = ?1 AND j.name = ?2 AND j.plugin = ?3
           AND a.name >= 'replay/' AND a.name < 'replay0'",
    )?;
    let rows = stmt.query_map([run_id, job_name, plugin], |r| {
        Ok(Artifact {
            name: r.get(0)?,
            sha256: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            producer: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_artifacts(conn: &Connection, run_id: &str) -> Result<Vec<(String, Artifact)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT a.job_id, a.name, a.sha256, a.size, j.name FROM artifacts a JOIN jobs j ON j.id = a.job_id
         WHERE j.run_id = ?1 ORDER BY a.rowid",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Artifact {
                name: r.get(1)?,
                sha256: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                producer: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_running_attempts(
    conn: &Connection,
    run_id: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.job_id FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?1 AND a.state = 'running'",
    )?;
    let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A run as a client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub state: RunState,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub input: serde_json::Value,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub jobs: Vec<JobRecord>,
}

/// A job as a client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    pub output: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
}

/// An attempt as a client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub id: String,
    pub number: u32,
    pub state: String,
    pub plugin_digest: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<serde_json::Value>,
    pub fuel_consumed: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    pub wall_time_us: Option<i64>,
    /// Model tokens its calls used.
    pub tokens_in: i64,
    pub tokens_out: i64,
}

fn json_value(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

/// The columns [`JobRow::read`] reads, first in a `SELECT`.
pub(crate) const JOB_RECORD_COLUMNS: &str =
    "id, name, plugin, state, attempts, output, error, parent_job_id, spawn_reason, depth";

/// A job row as stored, before its state and JSON are checked.
pub(crate) struct JobRow {
    id: String,
    name: String,
    plugin: String,
    state: String,
    attempts: u32,
    output: Option<String>,
    error: Option<String>,
    parent_job_id: Option<String>,
    spawn_reason: Option<String>,
    depth: u32,
}

impl JobRow {
    /// Reads [`JOB_RECORD_COLUMNS`] from the start of `r`.
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            plugin: r.get(2)?,
            state: r.get(3)?,
            attempts: r.get(4)?,
            output: r.get(5)?,
            error: r.get(6)?,
            parent_job_id: r.get(7)?,
            spawn_reason: r.get(8)?,
            depth: r.get(9)?,
        })
    }

    pub(crate) fn into_view(self) -> Result<JobRecord, DbError> {
        Ok(JobRecord {
            state: job_state(&self.state)?,
            id: self.id,
            name: self.name,
            plugin: self.plugin,
            attempts: self.attempts,
            output: json_value(self.output),
            error: json_value(self.error),
            parent_job_id: self.parent_job_id,
            spawn_reason: self.spawn_reason,
            depth: self.depth,
        })
    }
}

pub fn get_run(conn: &Connection, run_id: &str) -> Result<Option<RunRecord>, DbError> {
    let run = conn
        .prepare_cached(
            "SELECT id, state, template_name, template_version, story_id, input, created_at, finished_at FROM runs WHERE id = ?1",
        )?
        .query_row(
            [run_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((id, state, template, template_version, story_id, input, created_at, finished_at)) =
        run
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_RECORD_COLUMNS} FROM jobs WHERE run_id = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([run_id], JobRow::read)?;
    let jobs = rows
        .map(|row| row?.into_view())
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Some(RunRecord {
        id,
        state: run_state(&state)?,
        template,
        template_version,
        story_id,
        input: json_value(Some(input)).unwrap_or_default(),
        created_at,
        finished_at,
        jobs,
    }))
}

/// Every attempt of a job, oldest first.
pub fn attempts(conn: &Connection, job_id: &str) -> Result<Vec<AttemptRecord>, DbError> {
    latest_attempts(conn, job_id, i64::MAX as usize)
}

/// The latest `max` attempts of a job, oldest first.
pub fn latest_attempts(
    conn: &Connection,
    job_id: &str,
    max: usize,
) -> Result<Vec<AttemptRecord>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, number, state, plugin_digest, started_at, finished_at, error, fuel_consumed, peak_memory_bytes, wall_time_us,
                tokens_in, tokens_out
         FROM attempts WHERE job_id = ?1 ORDER BY number DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![job_id, max as i64], |r| {
        Ok(AttemptRecord {
            id: r.get(0)?,
            number: r.get(1)?,
            state: r.get(2)?,
            plugin_digest: r.get(3)?,
            started_at: r.get(4)?,
            finished_at: r.get(5)?,
            error: json_value(r.get(6)?),
            fuel_consumed: r.get(7)?,
            peak_memory_bytes: r.get(8)?,
            wall_time_us: r.get(9)?,
            tokens_in: r.get(10)?,
            tokens_out: r.get(11)?,
        })
    })?;
    let mut attempts = rows.collect::<Result<Vec<_>, _>>()?;
    attempts.reverse();
    Ok(attempts)
}

/// Artifacts of one job.
pub fn job_artifacts(conn: &Connection, job_id: &str) -> Result<Vec<Artifact>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, a.sha256, a.size, j.name FROM artifacts a JOIN jobs j ON j.id = a.job_id WHERE a.job_id = ?1 ORDER BY a.rowid",
    )?;
    let rows = stmt.query_map([job_id], |r| {
        Ok(Artifact {
            name: r.get(0)?,
            sha256: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            producer: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `(producer job id, name, attempt)` of every artifact job `consumer` read.
pub fn artifact_uses(
    conn: &Connection,
    consumer_job_id: &str,
) -> Result<Vec<(String, String, u32)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT producer_job_id, name, attempt FROM artifact_uses WHERE consumer_job_id = ?1 ORDER BY producer_job_id, name, attempt",
    )?;
    let rows = stmt.query_map([consumer_job_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a new version of template `name`; returns the version number.
pub fn insert_template(conn: &Connection, name: &str, spec: &str) -> Result<i64, DbError> {
    let version: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM templates WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO templates (name, version, spec, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, version, spec, now_ms()],
    )?;
    Ok(version)
}

/// The spec of template `name` at `version`, or at its latest version.
pub fn get_template(
    conn: &Connection,
    name: &str,
    version: Option<i64>,
) -> Result<Option<(i64, String)>, DbError> {
    let row = match version {
        Some(v) => conn
            .query_row(
                "SELECT version, spec FROM templates WHERE name = ?1 AND version = ?2",
                params![name, v],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
        None => conn
            .query_row(
                "SELECT version, spec FROM templates WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
    };
    Ok(row)
}

/// The latest reviews (at most [`MAX_REVIEWS_HANDED`] each) of the jobs
/// of run `run_id`, by job, oldest first.
fn run_reviews(
    conn: &Connection,
    run_id: &str,
) -> Result<std::collections::HashMap<String, Vec<Review>>, DbError> {
    let mut by_job: std::collections::HashMap<String, Vec<Review>> = Default::default();
    let found = read_reviews(
        conn,
        "job_id IN (SELECT id FROM jobs WHERE run_id = ?1)",
        run_id,
    )?;
    for (job_id, review) in found {
        by_job.entry(job_id).or_default().push(review);
    }
    Ok(by_job)
}

/// The latest [`MAX_REVIEWS_HANDED`] reviews of job `job_id`, oldest
/// first, and how many it has in all.
pub fn job_reviews(conn: &Connection, job_id: &str) -> Result<(Vec<Review>, usize), DbError> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM reviews WHERE job_id = ?1")?
        .query_row([job_id], |r| r.get(0))?;
    let reviews = read_reviews(conn, "job_id = ?1", job_id)?
        .into_iter()
        .map(|(_, review)| review)
        .collect();
    Ok((reviews, total as usize))
}

/// The latest [`MAX_REVIEWS_HANDED`] reviews of each job matching `filter`
/// (on `?1` = `value`), oldest first, with the job each is of.
fn read_reviews(
    conn: &Connection,
    filter: &str,
    value: &str,
) -> Result<Vec<(String, Review)>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT job_id, decision, final, comments, data, by_name, by_role, at, attempt FROM (
             SELECT *, row_number() OVER (PARTITION BY job_id ORDER BY id DESC) AS newest
             FROM reviews WHERE {filter})
         WHERE newest <= {MAX_REVIEWS_HANDED} ORDER BY id"
    ))?;
    let rows = stmt.query_map([value], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, u32>(8)?,
        ))
    })?;
    let mut reviews = Vec::new();
    for row in rows {
        let (job_id, decision, is_final, comments, data, name, role, at, attempt) = row?;
        let decision = Decision::parse(&decision)
            .ok_or_else(|| DbError::Corrupt(format!("review decision {decision:?}")))?;
        let role = role
            .map(|role| {
                Role::parse(&role).ok_or_else(|| DbError::Corrupt(format!("role {role:?}")))
            })
            .transpose()?;
        reviews.push((
            job_id,
            Review {
                decision,
                is_final,
                comments,
                data,
                by: Reviewer { name, role },
                at,
                attempt,
            },
        ));
    }
    Ok(reviews)
}

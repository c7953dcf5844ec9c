//! What the API answers with: its response types and their OpenAPI
//! schemas. The store returns records (`crate::db::runs`, `crate::db::reads`);
//! each view is built from one, so the stored form and the published one can
//! change apart.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use warren_vocabulary::{ApprovalGate, Decision, JobState, Review, Role, RunBudget, RunState};

use super::{MAX_INLINE_BYTES, MAX_RESPONSE_BYTES};
use crate::db::reads::{
    ArtifactRecord, AttemptLogRecord, EventRecord, JobDetailRecord, JobSummaryRecord,
    RunHeadRecord, RunSummaryRecord, StoredJson, TemplateRecord,
};
use crate::db::runs::AttemptRecord;

/// Bytes, as the OpenAPI description shows a binary body
/// (`type: string, format: binary`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// Stored JSON text as a JSON value, byte for byte; text that is not JSON
/// (which Warren never stores) as a JSON string.
pub fn raw_json(text: String) -> Box<RawValue> {
    match serde_json::from_str::<&RawValue>(&text) {
        Ok(raw) => raw.to_owned(),
        Err(_) => {
            serde_json::value::to_raw_value(&text).unwrap_or_else(|_| RawValue::NULL.to_owned())
        }
    }
}

/// Stored JSON text, whole, as a response (`application/json`): Warren
/// stores only JSON, so it is served as it was stored.
pub fn json_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// A stored value shown inline when it is at most [`MAX_INLINE_BYTES`];
/// `None` otherwise, when the client fetches it from `url`.
fn inline(value: Option<&StoredJson>, url: impl FnOnce() -> String) -> Inline {
    match value {
        None => Inline::default(),
        Some(StoredJson { bytes, text }) => match text {
            Some(text) if *bytes <= MAX_INLINE_BYTES as u64 => Inline {
                value: Some(raw_json(text.clone())),
                bytes: Some(*bytes),
                url: None,
            },
            _ => Inline {
                value: None,
                bytes: Some(*bytes),
                url: Some(url()),
            },
        },
    }
}

#[derive(Default)]
struct Inline {
    value: Option<Box<RawValue>>,
    bytes: Option<u64>,
    url: Option<String>,
}

/// Bytes of `value` as JSON.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Keeps the longest prefix of `items` whose JSON, commas between
/// included, takes at most `budget` bytes, and at least the first item;
/// says whether any were cut.
pub fn fit<T: Serialize>(items: &mut Vec<T>, budget: usize) -> bool {
    let mut used = 0usize;
    for (i, item) in items.iter().enumerate() {
        used = used.saturating_add(json_len(item) + usize::from(i > 0));
        if i > 0 && used > budget {
            items.truncate(i);
            return true;
        }
    }
    false
}

/// A run as a client sees it, with one page of its jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
    pub state: RunState,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    /// The run's input when it is at most 64 KiB as stored; `null`
    /// otherwise: fetch it from `input_url`.
    #[schema(value_type = Option<Value>)]
    pub input: Option<Box<RawValue>>,
    /// Size of the input, as stored.
    pub input_bytes: u64,
    /// Where the whole input is, when it is not inline.
    pub input_url: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// One page of jobs, in the order they were created.
    pub jobs: Vec<JobView>,
    /// How many jobs the run has in all.
    pub jobs_total: u64,
    /// Pass as `jobs_after` for the next page of jobs; `null` on the last.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub jobs_next: Option<String>,
    /// The documents its jobs in `needs_input` wait for, in name order:
    /// writing them (`PUT /v1/stories/{story}/documents/{name}`) lets the
    /// run go on.
    pub pending_docs: Vec<String>,
    /// Model tokens its attempts used: of the prompts, and of the answers.
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The run whose recorded answers to calls out answered this one's.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub replay_of: Option<String>,
    /// Unix ms: last changed (its state, or one of its jobs'), first job
    /// started (`null` until then), ended (as `finished_at`).
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// What the run may use (its pipeline's budget, its own and the
    /// operator's cap, the tightest of each); `null` without limits.
    pub budget: Option<RunBudget>,
    /// What it used so far.
    pub used: RunUsed,
    /// What is left of each limit of `budget`.
    pub remaining: Option<RunBudget>,
    /// The budget it reached (`fuel`, `wall_ms`, `jobs`, `artifact_bytes`),
    /// when it was stopped for one.
    pub budget_exceeded: Option<String>,
}

/// What a run used, over all its attempts and jobs.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct RunUsed {
    pub fuel: u64,
    /// From its submission to its end (or now).
    pub wall_ms: u64,
    /// Jobs in all, spawned ones included.
    pub jobs: u64,
    pub artifact_bytes: u64,
    /// Model tokens, prompts and answers.
    pub tokens: u64,
}

impl RunUsed {
    /// What is left of each limit of `budget`.
    fn remaining(&self, budget: &RunBudget) -> RunBudget {
        let left = |max: Option<u64>, used: u64| max.map(|max| max.saturating_sub(used));
        RunBudget {
            max_fuel: left(budget.max_fuel, self.fuel),
            max_wall_ms: left(budget.max_wall_ms, self.wall_ms),
            max_jobs: left(budget.max_jobs, self.jobs),
            max_artifact_bytes: left(budget.max_artifact_bytes, self.artifact_bytes),
            max_tokens: left(budget.max_tokens, self.tokens),
        }
    }
}

impl RunView {
    /// The run with as many of `jobs` as fit in [`MAX_RESPONSE_BYTES`];
    /// `more` says whether jobs follow the last of `jobs`.
    pub fn new(run: RunHeadRecord, jobs: Vec<JobSummaryRecord>, more: bool) -> Self {
        let id = run.id;
        // A budget that does not parse was never stored by this version.
        let budget: Option<RunBudget> = run
            .budget
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        let wall_end = run.finished_at.unwrap_or_else(warren_vocabulary::now_ms);
        let used = RunUsed {
            fuel: run.fuel_used,
            wall_ms: wall_end.saturating_sub(run.created_at).max(0) as u64,
            jobs: run.jobs_total,
            artifact_bytes: run.artifact_bytes,
            tokens: run.tokens_in + run.tokens_out,
        };
        let input = inline(Some(&run.input), || format!("/v1/runs/{id}/input"));
        let mut view = Self {
            state: run.state,
            template: run.template,
            template_version: run.template_version,
            story_id: run.story_id,
            input: input.value,
            input_bytes: input.bytes.unwrap_or_default(),
            input_url: input.url,
            created_at: run.created_at,
            finished_at: run.finished_at,
            jobs: Vec::new(),
            jobs_total: run.jobs_total,
            pending_docs: run.pending_docs,
            tokens_in: run.tokens_in,
            tokens_out: run.tokens_out,
            replay_of: run.replay_of,
            updated_at: run.updated_at,
            started_at: run.started_at,
            ended_at: run.finished_at,
            remaining: budget.as_ref().map(|b| used.remaining(b)),
            budget,
            used,
            budget_exceeded: run.budget_exceeded,
            // Measured at its longest: an id.
            jobs_next: Some(id.clone()),
            id,
        };
        let budget = MAX_RESPONSE_BYTES.saturating_sub(json_len(&view));
        let mut jobs: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
        let cut = fit(&mut jobs, budget);
        view.jobs_next = (more || cut)
            .then(|| jobs.last().map(|j| j.id.clone()))
            .flatten();
        view.jobs = jobs;
        view
    }
}

/// A job as a client sees it. Its input and output are inline when each
/// is at most 64 KiB as stored; a longer one is `null`, with its size and
/// the URL that serves it whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    /// The job's input when at most 64 KiB; `null` otherwise.
    #[schema(value_type = Option<Value>)]
    pub input: Option<Box<RawValue>>,
    pub input_bytes: u64,
    /// `/v1/jobs/{id}/input` when the input is not inline.
    pub input_url: Option<String>,
    /// The job's output when it has one of at most 64 KiB; `null`
    /// otherwise.
    #[schema(value_type = Option<Value>)]
    pub output: Option<Box<RawValue>>,
    /// Size of the output, when the job has one.
    pub output_bytes: Option<u64>,
    /// `/v1/jobs/{id}/output` when there is an output not inline.
    pub output_url: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub error: Option<Box<RawValue>>,
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
    /// The documents it waits for, in state `needs_input`; empty otherwise.
    pub pending_docs: Vec<String>,
    /// Unix ms: created, last changed, first started (`null` until it
    /// runs), ended (`null` until it is completed, failed, skipped or
    /// cancelled).
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// What its plugin last reported through `jobs.progress`, or an outside
    /// reporter gave (`output_summary`).
    pub summary: Option<String>,
}

impl From<JobSummaryRecord> for JobView {
    fn from(record: JobSummaryRecord) -> Self {
        let id = record.id;
        let input = inline(Some(&record.input), || format!("/v1/jobs/{id}/input"));
        let output = inline(record.output.as_ref(), || format!("/v1/jobs/{id}/output"));
        Self {
            name: record.name,
            plugin: record.plugin,
            state: record.state,
            attempts: record.attempts,
            input: input.value,
            input_bytes: input.bytes.unwrap_or_default(),
            input_url: input.url,
            output: output.value,
            output_bytes: output.bytes,
            output_url: output.url,
            error: record.error.map(raw_json),
            parent_job_id: record.parent_job_id,
            spawn_reason: record.spawn_reason,
            depth: record.depth,
            pending_docs: record.pending_docs,
            created_at: record.times.created_at,
            updated_at: record.times.updated_at,
            started_at: record.times.started_at,
            ended_at: record.times.ended_at,
            summary: record.summary,
            id,
        }
    }
}

/// An attempt as a client sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
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
    /// Model tokens its calls used: of the prompts, and of the answers.
    pub tokens_in: i64,
    pub tokens_out: i64,
}

impl From<AttemptRecord> for AttemptView {
    fn from(record: AttemptRecord) -> Self {
        Self {
            id: record.id,
            number: record.number,
            state: record.state,
            plugin_digest: record.plugin_digest,
            started_at: record.started_at,
            finished_at: record.finished_at,
            error: record.error,
            fuel_consumed: record.fuel_consumed,
            peak_memory_bytes: record.peak_memory_bytes,
            wall_time_us: record.wall_time_us,
            tokens_in: record.tokens_in,
            tokens_out: record.tokens_out,
        }
    }
}

/// A run in a list (its jobs are fetched with the run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub state: String,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl From<RunSummaryRecord> for RunSummary {
    fn from(record: RunSummaryRecord) -> Self {
        Self {
            id: record.id,
            state: record.state,
            template: record.template,
            template_version: record.template_version,
            story_id: record.story_id,
            created_at: record.created_at,
            finished_at: record.finished_at,
        }
    }
}

/// A job with its run, its latest attempts and its artifacts. Its input
/// and output follow [`JobView`]'s rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub run_id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    #[schema(value_type = Option<Value>)]
    pub input: Option<Box<RawValue>>,
    pub input_bytes: u64,
    pub input_url: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub output: Option<Box<RawValue>>,
    pub output_bytes: Option<u64>,
    pub output_url: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub error: Option<Box<RawValue>>,
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
    /// The latest attempts, at most 100, oldest first.
    pub attempts: Vec<AttemptView>,
    /// How many attempts the job has had in all.
    pub attempts_total: u32,
    pub artifacts: Vec<ArtifactView>,
    /// Its approval gate, if it has one.
    pub approval: Option<ApprovalGate>,
    /// Rejections sent back for rework since its last manual retry.
    pub reworks: u32,
    /// Since when it waits for people (`needs_input`, `waiting_approval`),
    /// ms since the Unix epoch.
    pub waiting_since: Option<i64>,
    /// The documents it waits for, in state `needs_input`; empty otherwise.
    pub pending_docs: Vec<String>,
    /// Its latest 32 reviews (decisions on its output, input given to
    /// it), oldest first: those its attempts are handed.
    pub reviews: Vec<ReviewView>,
    /// How many reviews it has in all.
    pub reviews_total: usize,
}

/// A decision on a job's output, or input given to it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewView {
    pub decision: Decision,
    /// A rejection that failed the job at once.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub comments: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub data: Option<Box<RawValue>>,
    /// The token's name; `warren` for a gate's timeout; none on a server
    /// without tokens.
    pub by: Option<String>,
    /// The token's role; none when Warren decided.
    pub role: Option<Role>,
    /// ms since the Unix epoch.
    pub at: i64,
    /// The attempt whose output it decided on.
    pub attempt: u32,
}

impl From<Review> for ReviewView {
    fn from(review: Review) -> Self {
        Self {
            decision: review.decision,
            is_final: review.is_final,
            comments: review.comments,
            data: review.data.and_then(|d| RawValue::from_string(d).ok()),
            by: review.by.name,
            role: review.by.role,
            at: review.at,
            attempt: review.attempt,
        }
    }
}

impl From<JobDetailRecord> for JobDetail {
    fn from(record: JobDetailRecord) -> Self {
        let job = JobView::from(record.job);
        Self {
            id: job.id,
            run_id: record.run_id,
            name: job.name,
            plugin: job.plugin,
            state: job.state,
            input: job.input,
            input_bytes: job.input_bytes,
            input_url: job.input_url,
            output: job.output,
            output_bytes: job.output_bytes,
            output_url: job.output_url,
            error: job.error,
            parent_job_id: job.parent_job_id,
            spawn_reason: job.spawn_reason,
            depth: job.depth,
            attempts: record.attempts.into_iter().map(Into::into).collect(),
            attempts_total: job.attempts,
            artifacts: record.artifacts.into_iter().map(Into::into).collect(),
            approval: record.approval,
            reworks: record.reworks,
            waiting_since: record.waiting_since,
            pending_docs: job.pending_docs,
            reviews: record.reviews.into_iter().map(Into::into).collect(),
            reviews_total: record.reviews_total,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactView {
    pub job_id: String,
    pub job: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

impl From<ArtifactRecord> for ArtifactView {
    fn from(record: ArtifactRecord) -> Self {
        Self {
            job_id: record.job_id,
            job: record.job,
            name: record.name,
            sha256: record.sha256,
            size: record.size,
        }
    }
}

/// The log one attempt of a job left: inline when it is at most 64 KiB as
/// stored, else `null` with its size and the URL that serves it whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptLogView {
    pub attempt: u32,
    pub state: String,
    /// `{lines, dropped_bytes}`; `null` while the attempt runs, or when the
    /// log is over 64 KiB (see `log_url`).
    #[schema(value_type = Option<Value>)]
    pub log: Option<Box<RawValue>>,
    /// Size of the stored log, once the attempt has ended.
    pub log_bytes: Option<u64>,
    /// `/v1/jobs/{id}/attempts/{attempt}/log` when the log is not inline.
    pub log_url: Option<String>,
}

impl AttemptLogView {
    pub fn new(job_id: &str, record: AttemptLogRecord) -> Self {
        let number = record.attempt;
        let log = inline(record.log.as_ref(), || {
            format!("/v1/jobs/{job_id}/attempts/{number}/log")
        });
        Self {
            attempt: record.attempt,
            state: record.state,
            log: log.value,
            log_bytes: log.bytes,
            log_url: log.url,
        }
    }
}

/// One entry of the history, with its run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub run_id: String,
    pub job_id: Option<String>,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: Option<String>,
    /// More, for some kinds: a `review` event says `decision`, `final`,
    /// `by` (`name`, `role`), `comments`, `with_data` and `attempt`.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Box<RawValue>>,
}

impl From<EventRecord> for EventRow {
    fn from(record: EventRecord) -> Self {
        Self {
            id: record.id,
            at: record.at,
            run_id: record.run_id,
            job_id: record.job_id,
            kind: record.kind,
            from_state: record.from_state,
            to_state: record.to_state,
            reason: record.reason,
            detail: record.detail.and_then(|d| RawValue::from_string(d).ok()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateSummary {
    pub name: String,
    pub latest_version: i64,
    pub updated_at: i64,
}

impl From<TemplateRecord> for TemplateSummary {
    fn from(record: TemplateRecord) -> Self {
        Self {
            name: record.name,
            latest_version: record.latest_version,
            updated_at: record.updated_at,
        }
    }
}

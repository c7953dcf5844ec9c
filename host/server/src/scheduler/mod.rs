//! The durable orchestration engine: runs of job graphs, scheduled from an
//! in-memory mirror of SQLite, with every decision committed before it is
//! acted on. A job whose attempt was running when the process died is
//! retried at the next start (at-least-once); a completed job never runs
//! again.

mod budgets;
mod decisions;
pub mod guards;
mod inputs;
mod launch;
pub mod live_logs;
pub mod metrics;
mod parking;
pub mod plugin_breakers;
mod recovery;
mod run_graph;
mod run_wakers;
mod scheduler_loop;
pub mod transitions;

pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalogue::PluginRegistry;
use crate::db::runs::{self, Change, NewDep, NewJob, NewRun, RunRecord};
use crate::db::{Database, DbError};
use crate::upkeep;
use run_wakers::RunWakers;
pub(crate) use run_wakers::RunWatch;
use spec::{InputSchema, PipelineSpec, SpecError};
use warren_sandbox::artifact_store::ArtifactStore;
use warren_sandbox::capabilities::log::LogSink;
use warren_sandbox::runtime::Runtime;
use warren_vocabulary::Limits;
use warren_vocabulary::names;
use warren_vocabulary::text;
use warren_vocabulary::{Decision, JobState, Review, RunState};

pub use decisions::{GateFailure, Report, ReportedStatus};

/// Attempts running at once by default. Enough to keep the database
/// writer and the guests busy at the same time; each needs one pooled
/// instance slot (256 by default).
pub const DEFAULT_CONCURRENCY: usize = 64;

pub use crate::catalogue::grants::DEFAULT_MAX_SPAWNED_PER_RUN;

/// How long a submission waits for a plugin still being compiled.
pub const PLUGIN_WAIT: Duration = Duration::from_secs(120);

/// Default of [`EngineConfig::max_run_data_bytes`].
pub const DEFAULT_MAX_RUN_DATA_BYTES: u64 = 256 << 20;

/// Most bytes of run input copied into a run's jobs.
pub const MAX_COPIED_INPUT_BYTES: usize = 64 << 20;

/// Engine-wide settings.
#[derive(Clone)]
pub struct EngineConfig {
    /// Attempts running at once, over all runs.
    pub max_concurrent_jobs: usize,
    /// The most a job may ask for, whatever its plugin's grants (a job
    /// that asks for nothing gets its plugin's default limits).
    pub limit_ceiling: Limits,
    /// Deepest chain of spawned jobs.
    pub max_spawn_depth: u32,
    /// Jobs one run may spawn in all.
    pub max_spawned_per_run: u32,
    /// Receives every attempt's log lines as they are written (`warren run`
    /// prints them); none by default.
    pub log_sink: Option<LogSink>,
    /// How long ended runs are kept (deleted by upkeep after); forever when
    /// `None`.
    pub keep_ended_runs: Option<Duration>,
    /// New runs are refused while the data directory's file system has
    /// less free space than this (0: never).
    pub min_free_disk_bytes: u64,
    /// Most bytes of job inputs and outputs one run holds in all (inline
    /// and spawned): past it a submission is refused, and an attempt whose
    /// output or spawns would pass it fails.
    pub max_run_data_bytes: u64,
    /// Where attempts run: a tokio runtime of their own keeps guests from
    /// delaying the tasks of the one serving HTTP (the OS shares the cores
    /// between the two). `None`: the runtime that started the engine.
    pub attempts_on: Option<tokio::runtime::Handle>,
    /// `default_guards` and each guard's settings.
    pub guards: guards::GuardConfig,
    /// The most any run may use (`[policy.max_run_budget]`).
    pub max_run_budget: warren_vocabulary::RunBudget,
    /// Where running attempts' log lines go live.
    pub live_logs: live_logs::LiveLogs,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("max_concurrent_jobs", &self.max_concurrent_jobs)
            .field("limit_ceiling", &self.limit_ceiling)
            .field("max_spawn_depth", &self.max_spawn_depth)
            .field("max_spawned_per_run", &self.max_spawned_per_run)
            .field("log_sink", &self.log_sink.is_some())
            .field("keep_ended_runs", &self.keep_ended_runs)
            .field("min_free_disk_bytes", &self.min_free_disk_bytes)
            .field("max_run_data_bytes", &self.max_run_data_bytes)
            .field("attempts_on", &self.attempts_on.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_jobs: DEFAULT_CONCURRENCY,
            limit_ceiling: Limits::default_ceiling(),
            max_spawn_depth: warren_sandbox::runtime::DEFAULT_MAX_SPAWN_DEPTH,
            max_spawned_per_run: DEFAULT_MAX_SPAWNED_PER_RUN,
            log_sink: None,
            keep_ended_runs: None,
            min_free_disk_bytes: 0,
            max_run_data_bytes: DEFAULT_MAX_RUN_DATA_BYTES,
            attempts_on: None,
            guards: guards::GuardConfig::default(),
            max_run_budget: warren_vocabulary::RunBudget::default(),
            live_logs: live_logs::LiveLogs::default(),
        }
    }
}

/// A request to start a run.
#[derive(Debug, Clone)]
pub struct Submission {
    pub pipeline: PipelineSource,
    /// The run's input (JSON); jobs without their own input get it.
    pub input: Value,
    pub story_id: Option<String>,
    /// A host folder shown read-only at `/in` to the jobs submitted (not to
    /// those they spawn, which see their parent's artifacts there). Kept in
    /// memory only: `warren run` uses it, a recovered run runs without it.
    pub in_dir: Option<std::path::PathBuf>,
    /// An earlier run whose recorded answers to model calls and HTTP
    /// requests answer this run's, instead of the destinations.
    pub replay: Option<String>,
    /// This run's own budget, over its pipeline's (the tighter of each
    /// limit holds, and the operator's cap over both).
    pub budget: Option<warren_vocabulary::RunBudget>,
}

/// Where a run's pipeline comes from.
#[derive(Debug, Clone)]
pub enum PipelineSource {
    Inline(PipelineSpec),
    /// A stored template, at a version or its latest.
    Template {
        name: String,
        version: Option<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("template {0:?} not found")]
    UnknownTemplate(String),
    #[error("run {0:?} not found")]
    UnknownRun(String),
    #[error("run {0:?} not found: there is nothing to replay")]
    UnknownReplay(String),
    /// A guard denied the run's input: nothing of it was stored but its
    /// sha256 and the verdict.
    #[error("guard {guard} rejected the input: {category}: {reason}")]
    RejectedInput {
        guard: String,
        category: String,
        reason: String,
        sha256: String,
    },
    /// A guard could not answer: the input was not let through.
    #[error("{message}")]
    GuardUnavailable { guard: String, message: String },
    #[error("{0:?} is not a valid story id (1 to 128 letters, digits, `-`, `_`, `.`, `:`)")]
    BadStoryId(String),
    #[error("the input does not match the pipeline's input_schema: {0}")]
    InvalidInput(String),
    #[error("job {0:?} not found")]
    UnknownJob(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotRetryable(String),
    /// A decision or input for a job that does not wait for it.
    #[error("{0}")]
    NotWaiting(String),
    /// The caller's role may not decide this gate.
    #[error("{0}")]
    Forbidden(String),
    #[error("the engine has stopped")]
    Stopped,
    #[error("{0}")]
    InsufficientStorage(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<decisions::Refusal> for EngineError {
    fn from(refusal: decisions::Refusal) -> Self {
        match refusal {
            decisions::Refusal::NotWaiting(m) => Self::NotWaiting(m),
            decisions::Refusal::Forbidden(m) => Self::Forbidden(m),
            decisions::Refusal::TooLarge(m) => Self::TooLarge(m),
        }
    }
}

pub(crate) enum Command {
    /// A committed run to schedule.
    Submitted(run_graph::ActiveRun),
    Cancel {
        run_id: String,
        reply: oneshot::Sender<bool>,
    },
    Finished(launch::Completion),
    Retry {
        run_id: String,
        job_id: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Start no more attempts (the process is stopping).
    Drain,
    /// Answered once every decision made before it is committed.
    Sync {
        reply: oneshot::Sender<bool>,
    },
    /// Documents of this scope (a story) were written and committed.
    DocumentsChanged {
        scope: String,
    },
    /// An outside system's report of an external job.
    Report {
        run_id: String,
        job_id: String,
        report: decisions::Report,
        reply: oneshot::Sender<Result<JobState, decisions::Refusal>>,
    },
    /// A decision on a job's output, or input given to it.
    Review {
        run_id: String,
        job_id: String,
        review: Review,
        /// For an approval: the documents the waiting output wrote.
        held: Vec<decisions::HeldDocument>,
        reply: oneshot::Sender<Result<JobState, decisions::Refusal>>,
    },
}

/// Handle on a running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<Database>,
    plugins: PluginRegistry,
    config: Arc<EngineConfig>,
    commands: mpsc::UnboundedSender<Command>,
    /// Woken when runs stop.
    stopped: Arc<RunWakers>,
    /// Woken when runs' histories grow.
    changed: Arc<RunWakers>,
    /// Bumped after every commit of the scheduler.
    committed: watch::Receiver<u64>,
    metrics: Arc<metrics::Metrics>,
    /// Runs an earlier process left unfinished, picked up at start.
    recovered: Arc<Vec<String>>,
    templates: Arc<std::sync::Mutex<TemplateCache>>,
    /// Whose free space decides whether new runs are taken.
    data_dir: std::path::PathBuf,
    /// Where an approved job's held documents are read from.
    store: Arc<ArtifactStore>,
    /// Runs guards on what is submitted.
    runtime: Arc<Runtime>,
    /// Plugins' circuit breakers, as the scheduler keeps them.
    plugin_breakers: Arc<std::sync::Mutex<plugin_breakers::PluginBreakers>>,
}

/// A stored template version: parsed, its input schema compiled, and as
/// stored.
#[derive(Debug)]
struct StoredTemplate {
    spec: Arc<PipelineSpec>,
    input_schema: Option<Arc<InputSchema>>,
    text: String,
}

impl StoredTemplate {
    /// `spec`, stored as `text`, with its input schema compiled.
    fn new(spec: PipelineSpec, text: String) -> Result<Arc<Self>, SpecError> {
        let input_schema = spec.compile_input_schema()?.map(Arc::new);
        Ok(Arc::new(Self {
            spec: Arc::new(spec),
            input_schema,
            text,
        }))
    }
}

/// Parsed templates by `(name, version)`, and each name's latest version.
#[derive(Default)]
struct TemplateCache {
    versions: std::collections::HashMap<(String, i64), Arc<StoredTemplate>>,
    latest: std::collections::HashMap<String, i64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Recovers what a previous process left unfinished, then starts
    /// scheduling on the current tokio runtime.
    pub async fn start(
        runtime: Arc<Runtime>,
        db: Arc<Database>,
        plugins: PluginRegistry,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let (commands, receiver) = mpsc::unbounded_channel();
        let stopped = Arc::new(RunWakers::default());
        let changed = Arc::new(RunWakers::default());
        let (committed_tx, committed) = watch::channel(0);
        let metrics = Arc::new(metrics::Metrics::default());
        let config = Arc::new(config);
        // No attempt runs yet: whatever is staged was left by another
        // process, and no attempt of it will be promoted.
        let store = runtime.artifact_store().clone();
        let runtime_store = store.clone();
        let data_dir = runtime.data_dir().to_path_buf();
        match upkeep::sweep_staged(store.clone()).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "removed artifacts staged by a previous process"),
            Err(e) => tracing::error!("sweeping staged artifacts: {e:#}"),
        }
        let stored = db.read(runs::load_active_runs)?;
        let parked = db.read(runs::load_parked_runs)?;
        let plugin_breakers = Arc::new(std::sync::Mutex::new(
            plugin_breakers::PluginBreakers::default(),
        ));
        let recovered = stored
            .iter()
            .map(|run| run.id.clone())
            .chain(parked.iter().map(|run| run.id.clone()))
            .collect();
        let scheduler = scheduler_loop::Scheduler::new(
            runtime.clone(),
            db.clone(),
            plugins.clone(),
            config.clone(),
            commands.clone(),
            scheduler_loop::Signals {
                plugin_breakers: plugin_breakers.clone(),
                stopped: stopped.clone(),
                changed: changed.clone(),
                committed: committed_tx,
                metrics: metrics.clone(),
            },
        );
        let scheduler = scheduler.recover(stored, parked).await?;
        tokio::spawn(scheduler.run(receiver));
        upkeep::upkeep_periodically(
            db.clone(),
            store,
            config.keep_ended_runs,
            upkeep::UPKEEP_EVERY,
        );
        Ok(Self {
            db,
            plugins,
            config,
            commands,
            stopped,
            changed,
            committed,
            metrics,
            recovered: Arc::new(recovered),
            data_dir,
            store: runtime_store,
            templates: Arc::default(),
            runtime,
            plugin_breakers,
        })
    }

    /// Runs an earlier process left unfinished (some may have ended since).
    pub fn recovered_runs(&self) -> &[String] {
        &self.recovered
    }

    /// The circuit breaker of `plugin`, when it failed lately.
    pub fn plugin_breaker(&self, plugin: &str) -> Option<plugin_breakers::PluginBreakerReport> {
        self.plugin_breakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .report(plugin, std::time::Instant::now())
    }

    /// The latest lines of job `job_id`'s running attempt, and the lines
    /// of running attempts from then on.
    pub fn follow_logs(
        &self,
        job_id: &str,
    ) -> (
        live_logs::Backlog,
        tokio::sync::broadcast::Receiver<Arc<live_logs::LiveLine>>,
    ) {
        self.config.live_logs.follow(job_id)
    }

    /// Plugins whose breaker is open or half open.
    pub fn open_plugin_breakers(&self) -> Vec<String> {
        self.plugin_breakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .open()
    }

    pub fn plugins(&self) -> &PluginRegistry {
        &self.plugins
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Changes after each commit of the scheduler: something new may be in
    /// the history.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Woken after each commit that may have added to `run_id`'s history
    /// (and when the scheduler ends), until dropped.
    pub(crate) fn watch_changes(&self, run_id: &str) -> RunWatch {
        self.changed.watch(run_id)
    }

    /// Whether the scheduler is still running.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Stores a new version of template `name` after validating it.
    pub async fn create_template(
        &self,
        name: &str,
        spec: &PipelineSpec,
    ) -> Result<i64, EngineError> {
        let (version, ()) = self.create_template_with(name, spec, |_, _| Ok(())).await?;
        Ok(version)
    }

    /// [`Self::create_template`], and `also` in the transaction that stores
    /// the version, given its number (e.g. an idempotency key with the
    /// answer): both are committed or neither is.
    pub async fn create_template_with<R, F>(
        &self,
        name: &str,
        spec: &PipelineSpec,
        also: F,
    ) -> Result<(i64, R), EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<R, DbError> + Send + 'static,
    {
        if !names::is_valid_template_name(name) {
            return Err(SpecError::BadTemplateName(name.to_owned()).into());
        }
        self.plugins
            .wait_examined(&spec.plugins_named(), PLUGIN_WAIT)
            .await;
        spec.validate(
            &|p| self.plugins.get(p).map(|p| p.kind()),
            &self.config.limit_ceiling,
        )?;
        let text = serde_json::to_string(spec).map_err(|e| DbError::Corrupt(e.to_string()))?;
        // Compiled once, here: an invalid schema stores nothing, and the
        // runs of this version use it as compiled.
        let stored = StoredTemplate::new(spec.clone(), text.clone())?;
        let stored_name = name.to_owned();
        let (version, also) = self
            .db
            .write(move |conn| {
                let version = runs::insert_template(conn, &stored_name, &text)?;
                Ok((version, also(conn, version)?))
            })
            .await?;
        let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        let latest = cache.latest.entry(name.to_owned()).or_insert(version);
        *latest = (*latest).max(version);
        cache.versions.insert((name.to_owned(), version), stored);
        Ok((version, also))
    }

    /// Template `name` at `version` (or its latest), parsed and its input
    /// schema compiled. Versions never change once stored, so each is read
    /// from the database and compiled once.
    async fn template(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<(i64, Arc<StoredTemplate>), EngineError> {
        let asked = version;
        let cached = {
            let cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
            let version = version.or_else(|| cache.latest.get(name).copied());
            match version {
                Some(v) => cache
                    .versions
                    .get(&(name.to_owned(), v))
                    .map(|t| (v, t.clone())),
                None => None,
            }
        };
        if let Some(found) = cached {
            return Ok(found);
        }
        let wanted = name.to_owned();
        let (version, text) = self
            .db
            .query(move |conn| runs::get_template(conn, &wanted, version))
            .await?
            .ok_or_else(|| EngineError::UnknownTemplate(name.to_owned()))?;
        let spec: PipelineSpec =
            serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let stored = StoredTemplate::new(spec, text)?;
        // Versions never change, and `latest` only grows, so a template
        // stored meanwhile cannot be undone here.
        let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        if asked.is_none() {
            let latest = cache.latest.entry(name.to_owned()).or_insert(version);
            *latest = (*latest).max(version);
        }
        cache
            .versions
            .insert((name.to_owned(), version), stored.clone());
        Ok((version, stored))
    }

    /// Refuses new work (a run, a document) while the disk is nearly full:
    /// work refused now costs less than work failing midway.
    pub fn check_free_space(&self) -> Result<(), EngineError> {
        let floor = self.config.min_free_disk_bytes;
        if floor == 0 {
            return Ok(());
        }
        let stats = rustix::fs::statvfs(&self.data_dir).map_err(|e| {
            EngineError::InsufficientStorage(format!("cannot read free space: {e}"))
        })?;
        let free = stats.f_bavail.saturating_mul(stats.f_frsize);
        if free < floor {
            return Err(EngineError::InsufficientStorage(format!(
                "{} MiB free on the data directory's disk, under the {} MiB floor; new runs and documents wait until space is freed",
                free >> 20,
                floor >> 20
            )));
        }
        Ok(())
    }

    /// Validates and stores a run; returns its id once it is committed.
    pub async fn submit(&self, submission: Submission) -> Result<String, EngineError> {
        let (run_id, ()) = self.submit_with(submission, |_, _| Ok(())).await?;
        Ok(run_id)
    }

    /// [`Self::submit`], and `also` in the transaction that stores the run,
    /// given its id (e.g. an idempotency key with the answer): both are
    /// committed or neither is, and the run is scheduled only if they are.
    pub async fn submit_with<R, F>(
        &self,
        submission: Submission,
        also: F,
    ) -> Result<(String, R), EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<R, DbError> + Send + 'static,
    {
        if let Some(story) = &submission.story_id
            && !names::is_valid_story_id(story)
        {
            return Err(EngineError::BadStoryId(story.clone()));
        }
        self.check_free_space()?;
        if let Some(replayed) = &submission.replay {
            let id = replayed.clone();
            let exists = names::is_valid_id(&id)
                && self
                    .db
                    .query(move |conn| runs::run_exists(conn, &id))
                    .await?;
            if !exists {
                return Err(EngineError::UnknownReplay(replayed.clone()));
            }
        }
        let inline = matches!(submission.pipeline, PipelineSource::Inline(_));
        let (mut spec, mut spec_text, template, input_schema) = match submission.pipeline {
            PipelineSource::Inline(spec) => {
                let text =
                    serde_json::to_string(&spec).map_err(|e| DbError::Corrupt(e.to_string()))?;
                let input_schema = spec.compile_input_schema()?.map(Arc::new);
                (Arc::new(spec), text, None, input_schema)
            }
            PipelineSource::Template { name, version } => {
                let (version, stored) = self.template(&name, version).await?;
                (
                    stored.spec.clone(),
                    stored.text.clone(),
                    Some((name, version)),
                    stored.input_schema.clone(),
                )
            }
        };
        // Plugins still being compiled at start are waited for, not refused.
        let mut named = spec.plugins_named();
        named.extend(self.config.guards.default_guards.iter().map(String::as_str));
        self.plugins.wait_examined(&named, PLUGIN_WAIT).await;
        spec.validate(
            &|p| self.plugins.get(p).map(|p| p.kind()),
            &self.config.limit_ceiling,
        )?;
        // A job to screen with no guard to screen it would pass unchecked.
        if let Some((name, _)) = spec.jobs.iter().find(|(_, j)| j.screen)
            && self.config.guards.for_pipeline(&spec).is_empty()
        {
            return Err(SpecError::ScreenWithoutGuards(name.clone()).into());
        }
        // Before anything of the input is stored or checked further.
        let (input, screenings) = self
            .screen_submission(
                &mut spec,
                &mut spec_text,
                inline,
                submission.input.to_string(),
            )
            .await?;
        if let Some(schema) = &input_schema {
            let value: Value =
                serde_json::from_str(&input).map_err(|e| DbError::Corrupt(e.to_string()))?;
            schema.check(&value).map_err(EngineError::InvalidInput)?;
        }
        if let Some(own) = &submission.budget {
            own.check().map_err(SpecError::BadBudget)?;
        }
        let budget = budgets::budget_of(spec.budget, submission.budget, self.config.max_run_budget);
        if let Some(max) = budget.max_jobs
            && spec.jobs.len() as u64 > max
        {
            return Err(SpecError::BadBudget(format!(
                "the pipeline has {} jobs, more than the run's budget of {max}",
                spec.jobs.len()
            ))
            .into());
        }

        let run_id = warren_vocabulary::new_id();
        // Each job without an input of its own stores a copy of the run's.
        let copies = spec.jobs.values().filter(|j| j.input.is_none()).count();
        if input.len().saturating_mul(copies) > MAX_COPIED_INPUT_BYTES {
            return Err(EngineError::TooLarge(format!(
                "the run input ({} bytes) copied to {copies} jobs would exceed {} MiB; give the jobs inputs of their own or send a smaller input",
                input.len(),
                MAX_COPIED_INPUT_BYTES >> 20
            )));
        }
        let ids: HashMap<&str, String> = spec
            .jobs
            .keys()
            .map(|name| (name.as_str(), warren_vocabulary::new_id()))
            .collect();
        let mut jobs = Vec::with_capacity(spec.jobs.len());
        let mut deps = Vec::new();
        // The run keeps the versions active now, one per plugin even if a
        // new version becomes active meanwhile.
        let mut versions: HashMap<&str, Arc<warren_sandbox::plugin::Plugin>> = HashMap::new();
        for (name, job) in &spec.jobs {
            // An external job runs nothing: no plugin, no version, no limits.
            let plugin = if job.external {
                None
            } else {
                let plugin = match versions.get(job.plugin.as_str()) {
                    Some(plugin) => plugin.clone(),
                    None => {
                        let plugin = self.plugins.get(&job.plugin).ok_or_else(|| {
                            SpecError::UnknownPlugin {
                                job: name.clone(),
                                plugin: job.plugin.clone(),
                            }
                        })?;
                        versions.insert(&job.plugin, plugin.clone());
                        plugin
                    }
                };
                job.limits
                    .check(&plugin.grants().limits)
                    .map_err(|reason| SpecError::BadLimits {
                        job: name.clone(),
                        reason: format!("{reason} granted to plugin {:?}", job.plugin),
                    })?;
                Some(plugin)
            };
            let id = ids[name.as_str()].clone();
            for need in &job.needs {
                deps.push(NewDep {
                    job_id: id.clone(),
                    depends_on: ids[need.job()].clone(),
                    condition: need.condition(),
                });
            }
            jobs.push(NewJob {
                id,
                name: name.clone(),
                plugin: job.plugin.clone(),
                plugin_digest: plugin.as_ref().map(|p| p.digest().to_owned()),
                input: job
                    .input
                    .as_ref()
                    .map_or_else(|| input.clone(), Value::to_string),
                // Jobs that need nothing are ready from the start.
                state: if job.needs.is_empty() {
                    JobState::Ready
                } else {
                    JobState::Pending
                },
                retry: job.retry,
                limits: plugin.as_ref().map_or_else(Limits::default, |p| {
                    job.limits.resolve(&p.grants().default_limits)
                }),
                parent_job_id: None,
                spawn_reason: None,
                depth: 0,
                approval: job.gate(),
            });
        }
        let new_run = NewRun {
            id: run_id.clone(),
            template,
            spec: spec_text,
            input,
            story_id: submission.story_id,
            replay_of: submission.replay,
            budget: (!budget.is_empty())
                .then(|| serde_json::to_string(&budget))
                .transpose()
                .map_err(|e| DbError::Corrupt(e.to_string()))?,
        };
        let mut graph =
            run_graph::ActiveRun::new(&new_run, spec.max_parallel, &jobs, &deps, RunState::Pending);
        if graph.data_bytes > self.config.max_run_data_bytes {
            return Err(EngineError::TooLarge(format!(
                "the jobs' inputs come to {} bytes, more than the {} a run may hold",
                graph.data_bytes, self.config.max_run_data_bytes
            )));
        }
        graph.in_dir = submission.in_dir;
        graph.set_guards(self.config.guards.for_pipeline(&spec), &spec);
        graph.set_budget(budget, std::time::Instant::now());
        graph.token_budget = budget
            .max_tokens
            .map(|max| Arc::new(std::sync::atomic::AtomicU64::new(max)));
        let mut changes = vec![Change::InsertRun(new_run)];
        changes.extend(screenings.into_iter().map(|screening| Change::Screened {
            run_id: run_id.clone(),
            job_id: None,
            screening,
        }));
        changes.push(Change::InsertJobs {
            run_id: run_id.clone(),
            jobs,
            deps,
            reason: "submitted".into(),
        });
        let changes = Arc::new(changes);
        let batch = changes.clone();
        let stored_id = run_id.clone();
        let also = self
            .db
            .write(move |conn| {
                runs::apply(conn, &batch)?;
                also(conn, &stored_id)
            })
            .await?;
        self.metrics.count(&changes);
        self.commands
            .send(Command::Submitted(graph))
            .map_err(|_| EngineError::Stopped)?;
        Ok((run_id, also))
    }

    /// Cancels a run: running guests stop at their next epoch tick, every
    /// job not finished ends `cancelled`. Returns false if the run had
    /// already ended.
    pub async fn cancel(&self, run_id: &str) -> Result<bool, EngineError> {
        if self.run(run_id).await?.is_none() {
            return Err(EngineError::UnknownRun(run_id.to_owned()));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Cancel {
                run_id: run_id.to_owned(),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)
    }

    /// Runs a failed job (or one that needed input) again; see
    /// [`scheduler_loop`]. Returns its run's id.
    pub async fn retry_job(&self, job_id: &str) -> Result<String, EngineError> {
        let id = job_id.to_owned();
        let (run_id, versions) = self
            .db
            .query(move |conn| {
                let Some((run_id, _)) = runs::job_run(conn, &id)? else {
                    return Ok(None);
                };
                // An ended run's versions may be unloaded since (a restart
                // loads only those of unfinished runs): load them before
                // its jobs start.
                let versions = crate::db::plugins::run_versions(conn, &run_id)?;
                Ok(Some((run_id, versions)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownJob(job_id.to_owned()))?;
        let plugins = self.plugins.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (name, digest) in versions {
                plugins.ensure_version(&name, &digest);
            }
        })
        .await;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Retry {
                run_id: run_id.clone(),
                job_id: job_id.to_owned(),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        answer
            .await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::NotRetryable)?;
        // Answer once the retry is recorded.
        self.sync().await?;
        Ok(run_id)
    }

    /// Records a decision on a job's output, or input given to a job, and
    /// acts on it (see docs/approvals.md); answers once it is committed,
    /// with the job's new state.
    pub async fn review(&self, job_id: &str, review: Review) -> Result<JobState, EngineError> {
        let id = job_id.to_owned();
        let approving = review.decision == Decision::Approve;
        let (run_id, artifacts) = self
            .db
            .query(move |conn| {
                let Some((run_id, _)) = runs::job_run(conn, &id)? else {
                    return Ok(None);
                };
                let artifacts = if approving {
                    runs::job_artifacts(conn, &id)?
                } else {
                    Vec::new()
                };
                Ok(Some((run_id, artifacts)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownJob(job_id.to_owned()))?;
        let held = self.held_documents(artifacts).await?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Review {
                run_id,
                job_id: job_id.to_owned(),
                review,
                held,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        let state = answer
            .await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::from)?;
        self.sync().await?;
        Ok(state)
    }

    /// Moves an external job as its outside system reports (see
    /// [`decisions::report_job`]); answers once it is committed, with the
    /// job's new state.
    pub async fn report(
        &self,
        job_id: &str,
        mut report: decisions::Report,
    ) -> Result<JobState, EngineError> {
        let id = job_id.to_owned();
        let (run_id, job_name, pipeline) = self
            .db
            .query(move |conn| runs::job_with_pipeline(conn, &id))
            .await?
            .ok_or_else(|| EngineError::UnknownJob(job_id.to_owned()))?;
        // A reported output is a client's text: the run's guards check it
        // before its dependents get it.
        if let Some(output) = report.output.take() {
            let (passed, screenings) = self
                .screen_reported_output(&pipeline, &job_name, output)
                .await?;
            report.output = Some(passed);
            report.screenings = screenings;
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Report {
                run_id,
                job_id: job_id.to_owned(),
                report,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        let state = answer
            .await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::from)?;
        self.sync().await?;
        Ok(state)
    }

    /// The documents among a job's artifacts (`documents/<name>`), read
    /// from the store off the scheduler: stored as story versions if its
    /// approval goes through.
    async fn held_documents(
        &self,
        artifacts: Vec<warren_vocabulary::Artifact>,
    ) -> Result<Vec<decisions::HeldDocument>, EngineError> {
        let documents: Vec<(String, String)> = artifacts
            .into_iter()
            .filter_map(|a| {
                let name = a
                    .name
                    .strip_prefix(decisions::DOCUMENT_ARTIFACTS)?
                    .to_owned();
                Some((name, a.sha256))
            })
            .collect();
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        // Read before the scheduler decides which of them the output wrote:
        // an artifact a plugin named so itself, unreadable as a document,
        // is left out (and not published either way).
        tokio::task::spawn_blocking(move || {
            documents
                .into_iter()
                .filter_map(|(name, sha256)| {
                    let read = store
                        .get(&sha256, text::MAX_DOCUMENT_BYTES as u64)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()));
                    match read {
                        Ok(content) => Some(decisions::HeldDocument {
                            name,
                            sha256,
                            content,
                        }),
                        Err(e) => {
                            tracing::warn!(document = %name, "a held document is unreadable: {e}");
                            None
                        }
                    }
                })
                .collect()
        })
        .await
        .map_err(|_| EngineError::Stopped)
    }

    /// Tells the scheduler that documents of `story` were written (and are
    /// committed): jobs of its runs waiting for them go on by themselves.
    pub fn documents_changed(&self, story: &str) {
        let _ = self.commands.send(Command::DocumentsChanged {
            scope: story.to_owned(),
        });
    }

    /// Starts no more attempts; those running go on. For a shutdown: what is
    /// left is picked up by the next start.
    pub fn drain(&self) {
        let _ = self.commands.send(Command::Drain);
    }

    /// Returns once every decision the scheduler made so far is committed
    /// (e.g. before the process exits).
    pub async fn sync(&self) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Sync { reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?;
        Ok(())
    }

    /// The run as stored now.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, EngineError> {
        let run_id = run_id.to_owned();
        Ok(self
            .db
            .query(move |conn| runs::get_run(conn, &run_id))
            .await?)
    }

    /// Waits until the run stops (it ends, or waits for documents) or
    /// `timeout` passes, and returns it.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<RunRecord, EngineError> {
        let watch = self.stopped.watch(run_id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Enabled before the read: a stop committed after it wakes us.
            let mut stopped = std::pin::pin!(watch.notified());
            stopped.as_mut().enable();
            let run = self
                .run(run_id)
                .await?
                .ok_or_else(|| EngineError::UnknownRun(run_id.to_owned()))?;
            if run.state.has_stopped() {
                return Ok(run);
            }
            if watch.is_closed() {
                return Err(EngineError::Stopped);
            }
            if tokio::time::timeout_at(deadline, stopped).await.is_err() {
                return Ok(run);
            }
        }
    }
}

//! `warren run`: one plugin as a one-job pipeline of the engine, over a
//! temporary data directory (or `--data-dir`). Its manifest and the
//! operator's policy apply, the jobs it spawns run after it and see its
//! output and artifacts, exactly as under `warren serve`; the report gives
//! every job's output, usage, artifacts and log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::exit;
use warren::catalogue::grants::Policy;
use warren::catalogue::plugin_file::{self, PluginFileError};
use warren::config::{Layer, ServeConfig};
use warren::db::reads::{JobOutcomeRecord, job_outcomes};
use warren::host::HostBuilder;
use warren::scheduler::spec::{JobSpec, PipelineSpec};
use warren::scheduler::{EngineConfig, EngineError, PipelineSource, Submission};
use warren_sandbox::capabilities::jobs::Progress;
use warren_sandbox::capabilities::log::{CapturedLog, LogLine, LogSink};
use warren_sandbox::runtime::{AttemptFailure, JobFailure};
use warren_vocabulary::{Artifact, JobState, LimitsSpec, PluginKind, RetryPolicy, Usage};

/// Options of `warren run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub plugin: PathBuf,
    /// JSON input.
    pub input: String,
    /// What the command line asks for; the rest comes from the plugin's
    /// grants.
    pub limits: LimitsSpec,
    pub in_dir: Option<PathBuf>,
    /// Where the run is kept; a temporary folder when `None`.
    pub data_dir: Option<PathBuf>,
    /// The operator's `warren.toml` (its `[policy]` applies).
    pub config: Option<PathBuf>,
    pub story_id: Option<String>,
    /// Print live log lines on stderr.
    pub echo_log: bool,
}

/// One job of a local run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job_id: String,
    pub plugin: String,
    pub digest: String,
    /// Why the parent spawned it (children only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The JSON output exactly as the plugin produced it.
    pub output: Option<Box<serde_json::value::RawValue>>,
    pub error: Option<AttemptFailure>,
    pub usage: Usage,
    pub artifacts: Vec<Artifact>,
    pub progress: Option<Progress>,
    pub log: CapturedLog,
}

/// The whole local run: the job asked for and every job it spawned.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    #[serde(flatten)]
    pub root: JobReport,
    pub children: Vec<JobReport>,
}

impl RunReport {
    /// The exit code: the worst outcome of any job of the run.
    pub fn exit_code(&self) -> i32 {
        std::iter::once(&self.root)
            .chain(&self.children)
            .map(|job| match &job.error {
                None => exit::SUCCESS,
                Some(AttemptFailure::Job { .. }) => exit::JOB_ERROR,
                Some(_) => exit::LIMIT_OR_TRAP,
            })
            .max()
            .unwrap_or(exit::SUCCESS)
    }
}

/// Why a local run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid plugin {path}: {source}")]
    InvalidPlugin {
        path: String,
        source: PluginFileError,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0:#}")]
    Host(anyhow::Error),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::InvalidPlugin { .. } | Self::Usage(_) => exit::INVALID,
            Self::Host(_) => exit::LIMIT_OR_TRAP,
        }
    }
}

impl From<EngineError> for RunError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Spec(_) | EngineError::BadStoryId(_) | EngineError::TooLarge(_) => {
                Self::Usage(e.to_string())
            }
            e => Self::Host(e.into()),
        }
    }
}

/// Jobs a local run may spawn in all (the spawn tree could otherwise reach
/// 16^4 jobs).
pub const MAX_LOCAL_JOBS: u32 = 256;

/// Parses `--input`: inline JSON, or `@path` to read it from a file.
pub fn read_input(arg: &str) -> Result<String, RunError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| RunError::Usage(format!("cannot read {path}: {e}")))?,
        None => arg.to_owned(),
    };
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| RunError::Usage(format!("--input is not valid JSON: {e}")))?;
    Ok(text)
}

/// A path that is not a file but names a first-party plugin (`echo`,
/// `wordcount`...) runs that plugin.
pub fn resolve_plugin(arg: &Path) -> PathBuf {
    let builtin = arg
        .to_str()
        .filter(|name| !arg.exists() && warren_vocabulary::names::is_valid_plugin_name(name))
        .map(|name| Path::new(warren::BUILTIN_PLUGINS_DIR).join(format!("{name}.wasm")));
    match builtin {
        Some(path) if path.is_file() => path,
        _ => arg.to_path_buf(),
    }
}

pub async fn run(options: RunOptions) -> Result<RunReport, RunError> {
    if let Some(dir) = &options.in_dir
        && !dir.is_dir()
    {
        return Err(RunError::Usage(format!(
            "--in {} is not a directory",
            dir.display()
        )));
    }
    let input: serde_json::Value = serde_json::from_str(&options.input)
        .map_err(|e| RunError::Usage(format!("--input is not valid JSON: {e}")))?;
    let plugin_path = resolve_plugin(&options.plugin);
    let policy = operator_policy(options.config.as_deref())?;
    // Removed when the run is reported.
    let (data_dir, temporary) = match &options.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary = tempfile::tempdir().map_err(|e| RunError::Host(e.into()))?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let mut builder = HostBuilder::new(&data_dir);
    if temporary.is_some()
        && let Some(cache) = user_cache_dir()
    {
        // A temporary data directory would compile every plugin every time.
        builder = builder.cache_dir(Some(cache));
    }
    let host = builder.open().map_err(RunError::Host)?;
    let invalid = |source| RunError::InvalidPlugin {
        path: plugin_path.display().to_string(),
        source,
    };
    let root = plugin_file::load(&host.runtime, &plugin_path, &policy).map_err(invalid)?;
    // An agent says what it requires, as when a server loads it.
    let root = match root.kind() {
        PluginKind::Agent => {
            let info = host
                .runtime
                .describe_agent(&root)
                .await
                .map_err(|e| invalid(PluginFileError::Describe(e)))?;
            root.with_agent_info(info)
        }
        PluginKind::Job => root,
        PluginKind::Guard => {
            return Err(RunError::Usage(format!(
                "{} is a guard: it checks runs' inputs and outputs when a pipeline names it in `guards` (or the server in `default_guards`); `warren run` runs jobs and agents",
                plugin_path.display()
            )));
        }
    };
    let name = root.name().to_owned();
    host.plugins.insert(root);
    // Plugins the job spawns are found beside it, with their manifests.
    let plugin_dir = plugin_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let runtime = host.runtime.clone();
    let sibling_policy = policy.clone();
    host.plugins.set_source(Arc::new(move |sibling: &str| {
        let path = plugin_dir.join(format!("{sibling}.wasm"));
        if !path.is_file() {
            return None;
        }
        plugin_file::load(&runtime, &path, &sibling_policy)
            .map_err(|e| eprintln!("warning: cannot load {}: {e}", path.display()))
            .ok()
    }));

    let engine = host
        .start_engine(EngineConfig {
            limit_ceiling: policy.max_limits.clone(),
            max_spawned_per_run: MAX_LOCAL_JOBS,
            log_sink: options
                .echo_log
                .then(|| Arc::new(print_log_line) as LogSink),
            ..EngineConfig::default()
        })
        .await?;
    let job = JobSpec {
        plugin: name.clone(),
        input: None,
        needs: Vec::new(),
        retry: RetryPolicy::default(),
        limits: options.limits,
        output: true,
        approval: None,
        screen: false,
        external: false,
    };
    let run_id = engine
        .submit(Submission {
            pipeline: PipelineSource::Inline(PipelineSpec {
                name: None,
                max_parallel: None,
                input_schema: None,
                jobs: BTreeMap::from([(name, job)]),
                budget: None,
                guards: Vec::new(),
            }),
            input,
            story_id: options.story_id.clone(),
            in_dir: options.in_dir.clone(),
            replay: None,
            budget: None,
        })
        .await?;
    while !engine
        .wait(&run_id, Duration::from_secs(3600))
        .await?
        .state
        .has_stopped()
    {}
    let id = run_id.clone();
    let mut jobs = host
        .db
        .query(move |conn| job_outcomes(conn, &id))
        .await
        .map_err(|e| RunError::Host(e.into()))?
        .into_iter()
        .map(report);
    let root = jobs
        .next()
        .ok_or_else(|| RunError::Host(anyhow::anyhow!("run {run_id} has no job")))?;
    Ok(RunReport {
        run_id,
        root,
        children: jobs.collect(),
    })
}

/// The `[policy]` of the operator's `warren.toml` and `WARREN_*` variables.
fn operator_policy(config: Option<&Path>) -> Result<Policy, RunError> {
    Layer::operator(config)
        .and_then(|layers| ServeConfig::resolve(&layers))
        .map(|config| config.policy)
        .map_err(|e| RunError::Usage(e.to_string()))
}

/// Compiled plugins kept between `warren run`s without `--data-dir`:
/// `$XDG_CACHE_HOME/warren` or `~/.cache/warren`.
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("warren"))
}

/// A job as the report shows it, from what the engine stored.
fn report(job: JobOutcomeRecord) -> JobReport {
    // Waiting for documents it never started with: that is its error.
    let waiting = (job.state == JobState::NeedsInput && !job.pending_docs.is_empty()).then(|| {
        AttemptFailure::Job {
            error: JobFailure::NeedsInput(job.pending_docs.clone()),
        }
    });
    let error = waiting.or_else(|| parse(job.error.as_deref())).or_else(|| {
        (job.state != JobState::Completed).then(|| AttemptFailure::Host {
            message: format!("the job ended {} without an attempt", job.state),
        })
    });
    JobReport {
        job_id: job.id,
        plugin: job.plugin,
        digest: job.plugin_digest.unwrap_or_default(),
        reason: job.spawn_reason,
        output: job
            .output
            .and_then(|o| serde_json::value::RawValue::from_string(o).ok()),
        error,
        usage: job.usage,
        artifacts: job.artifacts,
        progress: parse(job.progress.as_deref()),
        log: parse(job.log.as_deref()).unwrap_or_default(),
    }
}

/// Stored JSON read back; what does not parse is left out of the report.
fn parse<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

fn print_log_line(line: &LogLine) {
    let level = serde_json::to_value(line.level).ok();
    let level = level.as_ref().and_then(|v| v.as_str()).unwrap_or("info");
    let source = match line.source {
        warren_sandbox::capabilities::log::LogSource::Log => "",
        warren_sandbox::capabilities::log::LogSource::Stdout => " stdout",
        warren_sandbox::capabilities::log::LogSource::Stderr => " stderr",
    };
    // Guest text is escaped so it cannot drive the terminal.
    let message: String = line
        .message
        .chars()
        .flat_map(|c| {
            let escape = c.is_control() && c != '\t';
            let escaped: Vec<char> = if escape {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    eprintln!("[{level:>5}{source}] {message}");
}

/// Human summary of a run on stderr, after the output went to stdout.
pub fn print_summary(report: &RunReport) {
    for job in std::iter::once(&report.root).chain(&report.children) {
        let usage = &job.usage;
        let status = match &job.error {
            None => "ok".to_owned(),
            Some(e) => e.to_string(),
        };
        eprintln!(
            "{}: {status} ({:.2} ms, fuel {}, peak memory {} KiB)",
            job.plugin,
            usage.wall_time.as_secs_f64() * 1e3,
            usage.fuel_consumed,
            usage.peak_memory_bytes / 1024
        );
        if let Some(reason) = &job.reason {
            eprintln!("  spawned because: {reason}");
        }
        for artifact in &job.artifacts {
            eprintln!(
                "  artifact {} sha256:{} ({} bytes)",
                artifact.name, artifact.sha256, artifact.size
            );
        }
        if job.log.dropped_bytes > 0 {
            eprintln!("  log truncated: {} bytes dropped", job.log.dropped_bytes);
        }
    }
}

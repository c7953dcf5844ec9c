//! `warren pipeline run FILE` and `warren pipeline resume`: the engine in
//! one process, until its runs end. A run interrupted by a crash is picked
//! up by the next `resume` (or `run`) on the same data directory.

use std::path::PathBuf;
use std::time::Duration;

use super::exit;
use warren::config::{Layer, ServeConfig};
use warren::db::Durability;
use warren::db::runs::RunRecord;
use warren::host::HostBuilder;
use warren::scheduler::spec::PipelineSpec;
use warren::scheduler::{Engine, EngineConfig, EngineError, PipelineSource, Submission};
use warren_vocabulary::RunState;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub concurrency: usize,
    /// The operator's `warren.toml`, whose `[policy]` caps the plugins.
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0:#}")]
    Host(anyhow::Error),
}

impl PipelineError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_)
            | Self::Engine(
                EngineError::Spec(_) | EngineError::BadStoryId(_) | EngineError::InvalidInput(_),
            ) => exit::INVALID,
            _ => exit::LIMIT_OR_TRAP,
        }
    }
}

/// The exit code for a run that ended: 0 completed, 1 failed, 2 otherwise.
pub fn exit_code(run: &RunRecord) -> i32 {
    match run.state {
        RunState::Completed => exit::SUCCESS,
        RunState::Failed => exit::JOB_ERROR,
        _ => exit::LIMIT_OR_TRAP,
    }
}

/// Starts an engine over `options`, recovering unfinished runs.
pub async fn start_engine(options: &EngineOptions) -> Result<Engine, PipelineError> {
    let operator = Layer::operator(options.config.as_deref())
        .and_then(|layers| ServeConfig::resolve(&layers))
        .map_err(|e| PipelineError::Usage(e.to_string()))?;
    let policy = operator.policy;
    let host = HostBuilder::new(&options.data_dir)
        .durability(options.durability)
        .open()
        .map_err(PipelineError::Host)?;
    // As under `warren serve`: manifests and policy apply, and the versions
    // unfinished runs are pinned to are restored; the folder is not watched.
    let plugins = host
        .open_plugins_dir(&options.plugins_dir, policy.clone())
        .await
        .map_err(PipelineError::Host)?;
    plugins.examine_all().await;
    for quarantined in plugins.quarantined() {
        eprintln!(
            "warning: skipping {}: {}",
            quarantined.file, quarantined.reason
        );
    }
    let engine_config = EngineConfig {
        max_concurrent_jobs: options.concurrency.max(1),
        limit_ceiling: policy.max_limits,
        max_spawn_depth: policy.max_spawn_depth,
        max_spawned_per_run: policy.max_spawned_per_run,
        max_run_budget: policy.max_run_budget,
        // As under `warren serve`: the operator's guards check inputs.
        guards: operator.guards,
        ..EngineConfig::default()
    };
    Ok(host.start_engine(engine_config).await?)
}

/// Submits the pipeline in `file` and waits for the run to end.
pub async fn run(
    options: &EngineOptions,
    file: &std::path::Path,
    input: serde_json::Value,
    story_id: Option<String>,
) -> Result<RunRecord, PipelineError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| PipelineError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let spec: PipelineSpec = serde_json::from_str(&text).map_err(|e| {
        PipelineError::Usage(format!("{} is not a valid pipeline: {e}", file.display()))
    })?;
    let engine = start_engine(options).await?;
    let run_id = engine
        .submit(Submission {
            pipeline: PipelineSource::Inline(spec),
            input,
            story_id,
            in_dir: None,
            replay: None,
            budget: None,
        })
        .await?;
    eprintln!("run {run_id} submitted");
    wait_until_ended(&engine, &run_id).await
}

/// Finishes every run a previous process left unfinished.
pub async fn resume(options: &EngineOptions) -> Result<Vec<RunRecord>, PipelineError> {
    let engine = start_engine(options).await?;
    let mut ended = Vec::new();
    for run_id in engine.recovered_runs() {
        ended.push(wait_until_ended(&engine, run_id).await?);
    }
    Ok(ended)
}

async fn wait_until_ended(engine: &Engine, run_id: &str) -> Result<RunRecord, PipelineError> {
    loop {
        let run = engine.wait(run_id, Duration::from_secs(3600)).await?;
        if run.state.has_stopped() {
            return Ok(run);
        }
    }
}

/// One line per job on stderr.
pub fn print_summary(run: &RunRecord) {
    eprintln!("run {}: {}", run.id, run.state);
    for job in &run.jobs {
        eprintln!(
            "  {:<24} {:<16} attempts {}",
            job.name,
            job.state.as_str(),
            job.attempts
        );
    }
}

//! `warren run`: runs one plugin locally, then the jobs it spawned (after
//! their parent, depth-limited), and reports output, usage and artifacts.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::exit;
use warren::host::HostBuilder;
use warren_sandbox::capabilities::jobs::Progress;
use warren_sandbox::capabilities::log::{CapturedLog, LogLine, LogSink};
use warren_sandbox::plugin::{Plugin, PluginError};
use warren_sandbox::runtime::{AttemptFailure, AttemptOutcome, AttemptRequest};
use warren_vocabulary::{Artifact, Limits, Usage};

/// Options of `warren run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub plugin: PathBuf,
    /// JSON input.
    pub input: String,
    pub limits: Limits,
    pub in_dir: Option<PathBuf>,
    pub data_dir: PathBuf,
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
    InvalidPlugin { path: String, source: PluginError },
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
    let plugin_path = resolve_plugin(&options.plugin);
    let host = HostBuilder::new(&options.data_dir)
        .open()
        .map_err(RunError::Host)?;
    let runtime = &host.runtime;
    let root_plugin =
        runtime
            .load_file(&plugin_path)
            .map_err(|source| RunError::InvalidPlugin {
                path: plugin_path.display().to_string(),
                source,
            })?;
    // Spawned plugins are looked up beside the one being run.
    let plugin_dir = plugin_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let lookup_dir = plugin_dir.clone();
    let lookup: warren_sandbox::capabilities::jobs::PluginLookup =
        Arc::new(move |name: &str| lookup_dir.join(format!("{name}.wasm")).is_file());
    let sink: Option<LogSink> = options
        .echo_log
        .then(|| Arc::new(print_log_line) as LogSink);

    let mut request = AttemptRequest::new(root_plugin.name(), options.input.clone());
    request.story_id = options.story_id.clone();
    request.limits = options.limits.clone();
    request.in_dir = options.in_dir.clone();
    request.plugin_lookup = Some(lookup.clone());
    request.log_sink = sink.clone();
    let run_id = request.run_id.clone();
    let root_outcome = runtime.run_attempt(&root_plugin, request.clone()).await;
    let root = report(&root_plugin, &request, None, &root_outcome);

    // Children run breadth-first after their parent; depth is bounded by the
    // jobs capability, so this queue is finite.
    let mut queue: VecDeque<_> = root_outcome
        .spawned
        .into_iter()
        .map(|s| (s, 1, root_plugin.name().to_owned(), root.output.clone()))
        .collect();
    let mut children = Vec::new();
    while let Some((spawn, depth, parent, parent_output)) = queue.pop_front() {
        if children.len() >= MAX_LOCAL_JOBS {
            children.push(not_run(
                spawn,
                format!("a local run runs at most {MAX_LOCAL_JOBS} spawned jobs"),
            ));
            continue;
        }
        let path = plugin_dir.join(format!("{}.wasm", spawn.plugin));
        let mut child_request = request.clone();
        child_request.job_id = spawn.job_id.clone();
        child_request.job_name = spawn.plugin.clone();
        child_request.input = spawn.input.clone();
        child_request.spawn_depth = depth;
        child_request.in_dir = None;
        child_request.upstream = vec![(
            parent,
            parent_output
                .map(|o| o.get().to_owned())
                .unwrap_or_default(),
        )];
        let plugin = match runtime.load_file(&path) {
            Ok(plugin) => plugin,
            Err(e) => {
                children.push(not_run(
                    spawn,
                    format!("cannot load the spawned plugin: {e}"),
                ));
                continue;
            }
        };
        let outcome = runtime.run_attempt(&plugin, child_request.clone()).await;
        let child = report(&plugin, &child_request, Some(spawn.reason), &outcome);
        for grandchild in outcome.spawned {
            queue.push_back((
                grandchild,
                depth + 1,
                plugin.name().to_owned(),
                child.output.clone(),
            ));
        }
        children.push(child);
    }
    Ok(RunReport {
        run_id,
        root,
        children,
    })
}

/// Spawned jobs a local run executes at most (the spawn tree could
/// otherwise reach 16^4 jobs).
pub const MAX_LOCAL_JOBS: usize = 256;

/// The report of a spawned job that was not run.
fn not_run(spawn: warren_sandbox::capabilities::jobs::SpawnRequest, why: String) -> JobReport {
    JobReport {
        job_id: spawn.job_id,
        plugin: spawn.plugin,
        digest: String::new(),
        reason: Some(spawn.reason),
        output: None,
        error: Some(AttemptFailure::Host { message: why }),
        usage: Usage::default(),
        artifacts: Vec::new(),
        progress: None,
        log: CapturedLog::default(),
    }
}

fn report(
    plugin: &Plugin,
    request: &AttemptRequest,
    reason: Option<String>,
    outcome: &AttemptOutcome,
) -> JobReport {
    let (output, error) = match &outcome.result {
        // The runtime checked that the output parses.
        Ok(output) => (
            serde_json::value::RawValue::from_string(output.clone()).ok(),
            None,
        ),
        Err(failure) => (None, Some(failure.clone())),
    };
    JobReport {
        job_id: request.job_id.clone(),
        plugin: plugin.name().to_owned(),
        digest: plugin.digest().to_owned(),
        reason,
        output,
        error,
        usage: outcome.usage.clone(),
        artifacts: outcome.artifacts.clone(),
        progress: outcome.progress.clone(),
        log: outcome.log.clone(),
    }
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

//! One attempt: a fresh `Store` with its limits, one call into the plugin,
//! and an outcome that says exactly how it ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};

use warren_vocabulary::names::check_document_name;
use warren_vocabulary::text::{self, MAX_DOCUMENT_BYTES, MAX_ERROR_BYTES};
use warren_vocabulary::{
    AgentInfo, Artifact, Limits, MAX_AGENT_DOCUMENTS, PluginKind, Review, Usage,
};

use super::{MemoryLimitExceeded, MemoryLimiter, PluginState, Runtime};
use crate::artifact_store::Pins;
use crate::bindings::{agent_handler, guard_handler, types};
use crate::capabilities::agent_inputs::AgentInputsState;
use crate::capabilities::artifacts::{ArtifactsCtx, ArtifactsState};
use crate::capabilities::disk_quota::{DiskQuota, DiskQuotaExceeded};
use crate::capabilities::jobs::{JobsCtx, JobsState, PluginLookup, Progress, SpawnRequest};
use crate::capabilities::log::{AttemptLog, CapturedLog, LogLevel, LogSink, LogSource};
use crate::capabilities::memory::{MemoryCtx, MemoryState};
use crate::capabilities::models::{ModelsCtx, ModelsState};
use crate::capabilities::outbound::{OutboundCtx, OutboundHooks};
use crate::capabilities::replay::{ReplaySource, Tape};
use crate::capabilities::reviews::ReviewsState;
use crate::capabilities::wasi::{self, Scratch};
use crate::plugin::grants::SecretGrant;
use crate::plugin::{Grants, Plugin, PluginPre};
use wasmtime_wasi_http::WasiHttpCtx;

/// Longest deadline honoured; longer ones are cut to this.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Fuel between forced yields (a few milliseconds of guest work).
const FUEL_SLICE: u64 = 10_000_000;

/// Deepest spawn tree by default.
pub const DEFAULT_MAX_SPAWN_DEPTH: u32 = 4;

/// What to run and under which limits.
#[derive(Clone)]
pub struct AttemptRequest {
    /// Names this attempt in logs, scratch directories and the database.
    pub attempt_id: String,
    pub run_id: String,
    pub job_id: String,
    pub job_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub story_id: Option<String>,
    /// JSON input.
    pub input: String,
    /// `(job name, JSON output)` of upstream jobs.
    pub upstream: Vec<(String, String)>,
    /// For an agent: `(name, content)` of the documents it requires.
    pub documents: Vec<(String, String)>,
    /// For an agent: whether whoever runs the attempt keeps the bytes of
    /// the documents it writes (Warren's scheduler commits them as story
    /// documents with the artifacts' references). Their artifacts
    /// `documents/<name>` then get no blob; [`AttemptOutcome::blobless`]
    /// names them.
    pub documents_kept: bool,
    /// This job's reviews, oldest first.
    pub reviews: Vec<Review>,
    /// `(upstream job name, review)` of the jobs it depends on, oldest first.
    pub upstream_reviews: Vec<(String, Review)>,
    /// Model tokens the whole run may still use (shared by its attempts);
    /// no run budget without it.
    pub token_budget: Option<Arc<std::sync::atomic::AtomicU64>>,
    pub upstream_artifacts: Vec<Artifact>,
    pub limits: Limits,
    /// Host directory shown read-only at `/in`.
    pub in_dir: Option<PathBuf>,
    /// Depth of this job in its spawn tree.
    pub spawn_depth: u32,
    pub max_spawn_depth: u32,
    /// Which plugin names `jobs.spawn` accepts; none without it.
    pub plugin_lookup: Option<PluginLookup>,
    /// Receives log lines as they are written.
    pub log_sink: Option<LogSink>,
    /// Set to stop the attempt at its next epoch tick.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Jobs the whole run may still spawn (shared by its attempts); no
    /// run-wide limit without it.
    pub spawn_budget: Option<Arc<std::sync::atomic::AtomicU32>>,
    /// Recordings of an earlier run that answer this attempt's calls out
    /// instead of the destinations.
    pub replay: Option<ReplaySource>,
}

impl AttemptRequest {
    /// A first attempt of a one-job run with fresh ids and default limits.
    pub fn new(job_name: impl Into<String>, input: impl Into<String>) -> Self {
        Self {
            attempt_id: warren_vocabulary::new_id(),
            run_id: warren_vocabulary::new_id(),
            job_id: warren_vocabulary::new_id(),
            job_name: job_name.into(),
            attempt: 1,
            story_id: None,
            input: input.into(),
            upstream: Vec::new(),
            documents: Vec::new(),
            documents_kept: false,
            reviews: Vec::new(),
            upstream_reviews: Vec::new(),
            token_budget: None,
            upstream_artifacts: Vec::new(),
            limits: Limits::default(),
            in_dir: None,
            spawn_depth: 0,
            max_spawn_depth: DEFAULT_MAX_SPAWN_DEPTH,
            plugin_lookup: None,
            log_sink: None,
            cancel: None,
            spawn_budget: None,
            replay: None,
        }
    }
}

/// The plugin's own verdict on a failed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum JobFailure {
    Retryable(String),
    Permanent(String),
    NeedsInput(Vec<String>),
}

/// A limit the host enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum LimitHit {
    Fuel {
        budget: u64,
    },
    Deadline {
        timeout_ms: u64,
    },
    Memory {
        limit_bytes: u64,
        requested_bytes: u64,
    },
    Stack,
    Output {
        size_bytes: u64,
        limit_bytes: u64,
    },
    Artifacts {
        message: String,
    },
    DiskBytes {
        limit_bytes: u64,
    },
    DiskFiles {
        limit_files: u64,
    },
    /// The run's inputs and outputs together (the engine's limit, not the
    /// attempt's).
    RunData {
        limit_bytes: u64,
    },
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fuel { budget } => write!(f, "out of fuel (budget {budget})"),
            Self::Deadline { timeout_ms } => write!(f, "deadline of {timeout_ms} ms exceeded"),
            Self::Memory {
                limit_bytes,
                requested_bytes,
            } => write!(
                f,
                "memory limit of {limit_bytes} bytes exceeded (asked for {requested_bytes})"
            ),
            Self::Stack => write!(f, "wasm stack exhausted (recursion too deep)"),
            Self::Output {
                size_bytes,
                limit_bytes,
            } => write!(
                f,
                "output of {size_bytes} bytes exceeds the limit of {limit_bytes}"
            ),
            Self::Artifacts { message } => write!(f, "artifacts: {message}"),
            Self::DiskBytes { limit_bytes } => {
                write!(f, "disk quota of {limit_bytes} bytes written exceeded")
            }
            Self::DiskFiles { limit_files } => {
                write!(f, "disk quota of {limit_files} files created exceeded")
            }
            Self::RunData { limit_bytes } => write!(
                f,
                "the run's inputs and outputs would pass {limit_bytes} bytes"
            ),
        }
    }
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttemptFailure {
    /// The plugin returned an error.
    Job { error: JobFailure },
    /// A limit stopped the plugin.
    Limit { hit: LimitHit },
    /// The plugin trapped (a panic, an invalid operation...).
    Trap { message: String },
    /// The attempt was cancelled.
    Cancelled,
    /// The host could not run the attempt (e.g. its scratch directory).
    Host { message: String },
    /// A guard denied the job's output or a document it wrote.
    Guard {
        guard: String,
        category: String,
        reason: String,
    },
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Job { error } => match error {
                JobFailure::Retryable(m) => write!(f, "job failed (retryable): {m}"),
                JobFailure::Permanent(m) => write!(f, "job failed: {m}"),
                JobFailure::NeedsInput(needs) => write!(f, "job needs input: {}", needs.join(", ")),
            },
            Self::Limit { hit } => write!(f, "limit hit: {hit}"),
            Self::Trap { message } => write!(f, "trap: {message}"),
            Self::Cancelled => write!(f, "cancelled"),
            Self::Host { message } => write!(f, "host error: {message}"),
            Self::Guard {
                guard,
                category,
                reason,
            } => write!(f, "guard {guard} denied it: {category}: {reason}"),
        }
    }
}

/// Everything known about an attempt once it has ended.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptOutcome {
    pub attempt_id: String,
    /// The JSON output, or how the attempt failed.
    pub result: Result<String, AttemptFailure>,
    pub usage: Usage,
    pub log: CapturedLog,
    /// Artifacts stored by the attempt (kept only on success; see
    /// [`Runtime::run_attempt_staged`] for when they are shared).
    pub artifacts: Vec<Artifact>,
    /// Children the guest asked for (only on success).
    pub spawned: Vec<SpawnRequest>,
    pub progress: Option<Progress>,
    /// Documents an agent wrote (only on success), each also among
    /// `artifacts` as `documents/<name>`.
    pub documents: Vec<WrittenDocument>,
    /// Names among `artifacts` without a blob: documents whose bytes the
    /// runner keeps (see [`AttemptRequest::documents_kept`]), each the
    /// content of the document of its name.
    pub blobless: Vec<String>,
}

/// A document in an agent's reply: checked (name, size, not repeated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenDocument {
    pub name: String,
    pub content: String,
}

/// What the attempt calls in the guest.
#[derive(Debug)]
pub(super) enum Call {
    /// The job's `run` or the agent's `invoke`.
    Handler,
    /// The agent's `describe`; its answer is the JSON of an [`AgentInfo`].
    Describe,
    /// The guard's `check`; its answer is the JSON of a
    /// [`warren_vocabulary::GuardVerdict`].
    Guard(guard_handler::Subject),
}

/// What a successful call returned.
struct Answer {
    output: String,
    documents: Vec<WrittenDocument>,
}

/// Raised from the epoch callback when the wall-clock deadline passes.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised from the epoch callback when the attempt is cancelled.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl Runtime {
    /// Runs one attempt of `plugin`. Never panics because of the guest: every
    /// way the guest can end is an [`AttemptOutcome`]. The artifacts of a
    /// successful attempt are in the artifact store when this returns.
    pub async fn run_attempt(&self, plugin: &Plugin, request: AttemptRequest) -> AttemptOutcome {
        let mut outcome = self.run_attempt_staged(plugin, request).await;
        if outcome.result.is_ok()
            && let Err(e) = self.keep_artifacts(&outcome).await
        {
            outcome.result = Err(AttemptFailure::Host {
                message: format!("keeping the artifacts: {e}"),
            });
            outcome.artifacts.clear();
        }
        outcome
    }

    /// Promotes a successful attempt's artifacts and makes them durable.
    async fn keep_artifacts(&self, outcome: &AttemptOutcome) -> Result<(), String> {
        self.promote_artifacts(outcome).await?;
        if outcome.artifacts.is_empty() {
            return Ok(());
        }
        let store = self.services().artifacts.clone();
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Moves a successful attempt's staged artifacts into the shared store,
    /// not yet durably: sync the store ([`crate::artifact_store::ArtifactStore::sync`]) before
    /// committing references to them.
    /// They stay pinned (safe from [`crate::artifact_store::ArtifactStore::collect_garbage`]) while
    /// the returned [`Pins`] live: keep them until the references to the
    /// artifacts are committed.
    /// Artifacts without a blob ([`AttemptOutcome::blobless`]) are held in
    /// memory until then, for the jobs that read them before their bytes
    /// are committed where their runner keeps them.
    pub async fn promote_artifacts(&self, outcome: &AttemptOutcome) -> Result<Pins, String> {
        let store = self.services().artifacts.clone();
        // Most attempts keep nothing: a trip off the async threads to find
        // no staging folder cost them more than their instantiation. (A
        // `put` that failed on a disk error may leave an empty folder; the
        // sweep at the next start removes it.)
        if outcome.artifacts.is_empty() {
            return Ok(store.pin_nothing());
        }
        let attempt_id = outcome.attempt_id.clone();
        let mut digests = Vec::with_capacity(outcome.artifacts.len());
        let mut kept = Vec::new();
        for artifact in &outcome.artifacts {
            if !outcome.blobless.contains(&artifact.name) {
                digests.push(artifact.sha256.clone());
                continue;
            }
            let content = artifact
                .name
                .strip_prefix("documents/")
                .and_then(|name| outcome.documents.iter().find(|d| d.name == name))
                .ok_or_else(|| {
                    format!(
                        "artifact {} has neither a blob nor its document",
                        artifact.name
                    )
                })?;
            kept.push((
                artifact.name.clone(),
                artifact.sha256.clone(),
                Arc::<[u8]>::from(content.content.as_bytes()),
            ));
        }
        tokio::task::spawn_blocking(move || {
            // Hashed here, off the async threads: the bytes must be the
            // artifact's.
            let mut held = Vec::with_capacity(kept.len());
            for (name, sha256, bytes) in kept {
                if crate::artifact_store::sha256_hex(&bytes) != sha256 {
                    return Err(format!("artifact {name} is not its document's content"));
                }
                held.push((sha256, bytes));
            }
            store
                .promote_with(&attempt_id, &digests, held)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Runs one attempt of `plugin`, leaving the artifacts of a successful
    /// attempt staged: only the attempt itself can read them until
    /// [`Runtime::promote_artifacts`] (or [`crate::artifact_store::ArtifactStore::discard`], or the
    /// sweep at the next start). A failed attempt's are removed here.
    pub async fn run_attempt_staged(
        &self,
        plugin: &Plugin,
        request: AttemptRequest,
    ) -> AttemptOutcome {
        self.run_call(plugin, request, Call::Handler).await
    }

    /// Calls an agent's `describe()` under [`describe_limits`], with no
    /// memory, spawning or granted folder, and checks what it answers.
    /// Nothing it stores is kept. Any failure (a trap, a limit, nonsense)
    /// is the plugin's fault: the message says which.
    pub async fn describe_agent(&self, plugin: &Plugin) -> Result<AgentInfo, String> {
        let bare = plugin.clone().with_grants(Grants {
            memory: Vec::new(),
            spawn: false,
            directories: Vec::new(),
            ..Grants::default()
        });
        let mut request = AttemptRequest::new("describe", "null");
        request.limits = describe_limits();
        let outcome = self.run_call(&bare, request, Call::Describe).await;
        if outcome.result.is_ok() {
            let store = self.services().artifacts.clone();
            let id = outcome.attempt_id.clone();
            let discarded = tokio::task::spawn_blocking(move || store.discard(&id)).await;
            if let Ok(Err(e)) = discarded {
                tracing::error!(attempt = %outcome.attempt_id, "removing describe()'s artifacts: {e}");
            }
        }
        let output = outcome
            .result
            .map_err(|failure| format!("describe() failed: {failure}"))?;
        let info: AgentInfo = serde_json::from_str(&output)
            .map_err(|e| format!("describe() answered something unreadable: {e}"))?;
        info.check()
            .map_err(|e| format!("describe() answered nonsense: {e}"))?;
        Ok(info)
    }

    pub(super) async fn run_call(
        &self,
        plugin: &Plugin,
        request: AttemptRequest,
        call: Call,
    ) -> AttemptOutcome {
        let attempt_id = request.attempt_id.clone();
        let started = Instant::now();
        let log = AttemptLog::new(
            &attempt_id,
            request.limits.max_log_bytes,
            request.log_sink.clone(),
        );
        let (mut store, scratch) = match self.prepare_store(plugin, &request, &attempt_id, &log) {
            Ok(prepared) => prepared,
            Err(message) => {
                return AttemptOutcome {
                    attempt_id,
                    result: Err(AttemptFailure::Host { message }),
                    usage: Usage {
                        wall_time: started.elapsed(),
                        ..Usage::default()
                    },
                    log: log.finish(),
                    artifacts: Vec::new(),
                    spawned: Vec::new(),
                    progress: None,
                    documents: Vec::new(),
                    blobless: Vec::new(),
                };
            }
        };

        // Capped so a huge timeout cannot overflow the clock.
        let deadline = started + request.limits.timeout().min(MAX_TIMEOUT);
        if self.settings().limits {
            // Cannot fail: fuel metering is on in this engine.
            let _ = store.set_fuel(request.limits.fuel);
            // Fuel lives in a register while a loop runs and reaches the store
            // only at calls, returns or when a slice runs out. Slicing it keeps
            // the consumption measured for a guest stopped mid-loop (by the
            // deadline or a cancel) accurate to within one slice.
            let _ = store.fuel_async_yield_interval(Some(FUEL_SLICE));
            store.set_epoch_deadline(1);
            let cancel = request.cancel.clone();
            store.epoch_deadline_callback(move |_| {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(wasmtime::Error::new(Cancelled));
                }
                if Instant::now() >= deadline {
                    return Err(wasmtime::Error::new(DeadlineExceeded));
                }
                // Yield each tick so other attempts and the server keep going.
                Ok(UpdateDeadline::Yield(1))
            });
        }

        let call = call_plugin(plugin, &mut store, &request, call);
        // Backstop for a guest blocked in a host call (e.g. a WASI sleep),
        // where no epoch check runs.
        let backstop = deadline.saturating_duration_since(Instant::now()) + super::EPOCH_TICK * 4;
        // A cancel too: a guest blocked reading a slow response runs no
        // epoch check either.
        let cancel = request.cancel.clone();
        let called = tokio::select! {
            called = tokio::time::timeout(backstop, call) => Some(called),
            () = async {
                crate::capabilities::outbound::cancelled(cancel).await;
                // The epoch check stops a guest that is running; this is
                // for one that is not, a few ticks later.
                tokio::time::sleep(super::EPOCH_TICK * 4).await;
            } => None,
        };
        let result = match called {
            None => Err(AttemptFailure::Cancelled),
            Some(Err(_elapsed)) => Err(AttemptFailure::Limit {
                hit: LimitHit::Deadline {
                    timeout_ms: request.limits.timeout_ms,
                },
            }),
            // Classifying a trap may need what the guest printed.
            Some(Ok(Err(e))) => Err(classify_error(&e, &request.limits, &log.finish())),
            Some(Ok(Ok(Err(job_error)))) => Err(AttemptFailure::Job { error: job_error }),
            Some(Ok(Ok(Ok(answer)))) => check_output(answer.output, &request.limits)
                .map(|output| (output, answer.documents)),
        };

        let mut usage = Usage {
            peak_memory_bytes: store.data().limiter.peak_bytes(),
            ..Usage::default()
        };
        if self.settings().limits {
            let remaining = store.get_fuel().unwrap_or(request.limits.fuel);
            usage.fuel_consumed = request.limits.fuel.saturating_sub(remaining);
        }
        let state = store.into_data();
        (usage.tokens_in, usage.tokens_out) = state.models.used();
        let staging_writes = state.artifacts.writes();
        let mut produced = Some(state.artifacts);
        // On success, files left in `/out` and the calls' recordings become
        // artifacts, read and stored off the async threads.
        let recorded = state.tape.take_recorded();
        if state.tape.skipped() > 0 {
            log.push(
                LogSource::Log,
                LogLevel::Warn,
                &format!(
                    "warren: {} answers were not recorded for replay (over max_artifact_bytes, or answering a request that carried a secret)",
                    state.tape.skipped()
                ),
            );
        }
        let result = match (result, produced.take()) {
            (Ok(answer), Some(mut artifacts)) if scratch.is_some() || !recorded.is_empty() => {
                let out = scratch.as_ref().map(|s| s.out.clone());
                let log = log.clone();
                let collected = tokio::task::spawn_blocking(move || {
                    let collected = match out {
                        Some(out) => collect_out(&mut artifacts, &out, &log),
                        None => Ok(()),
                    };
                    if collected.is_ok() {
                        keep_recordings(&mut artifacts, recorded, &log);
                    }
                    (artifacts, collected)
                })
                .await;
                match collected {
                    Ok((artifacts, collected)) => {
                        produced = Some(artifacts);
                        collected.map(|()| answer)
                    }
                    Err(e) => Err(AttemptFailure::Host {
                        message: format!("collecting /out: {e}"),
                    }),
                }
            }
            (result, artifacts) => {
                produced = artifacts;
                result
            }
        };
        // A failed attempt leaves nothing behind but its log and usage.
        let (artifacts, blobless, spawned) = match (&result, produced) {
            (Ok(_), Some(produced)) => (
                produced.produced().to_vec(),
                produced.kept().to_vec(),
                state.jobs.spawned,
            ),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let (result, documents) = match result {
            Ok((output, documents)) => (Ok(output), documents),
            Err(failure) => (Err(failure), Vec::new()),
        };
        drop(scratch);
        if result.is_err() {
            staging_writes.finished().await;
            let store = self.services().artifacts.clone();
            let id = attempt_id.clone();
            let discarded = tokio::task::spawn_blocking(move || store.discard(&id)).await;
            if let Ok(Err(e)) = discarded {
                tracing::error!(attempt = %attempt_id, "removing a failed attempt's artifacts: {e}");
            }
        }
        usage.wall_time = started.elapsed();
        AttemptOutcome {
            attempt_id,
            result,
            usage,
            log: log.finish(),
            artifacts,
            spawned,
            progress: state.jobs.progress,
            documents,
            blobless,
        }
    }

    /// Builds the attempt's store: WASI (with scratch directories for plugins
    /// that can open files), the memory cap and every capability's state.
    fn prepare_store(
        &self,
        plugin: &Plugin,
        request: &AttemptRequest,
        attempt_id: &str,
        log: &AttemptLog,
    ) -> Result<(Store<PluginState>, Option<Scratch>), String> {
        // Scratch directories cost syscalls, so only plugins that can open
        // files get them.
        let scratch = if plugin.uses_filesystem() {
            let scratch = Scratch::create(&self.services().work_root, attempt_id)
                .map_err(|e| format!("creating the scratch directory: {e}"))?;
            Some(scratch)
        } else {
            None
        };
        let in_dir = request
            .in_dir
            .as_deref()
            .filter(|_| plugin.uses_filesystem());
        let grants = plugin.grants();
        let directories = if plugin.uses_filesystem() {
            &grants.directories[..]
        } else {
            &[]
        };
        // Each granted secret shows to the guest as a placeholder of this
        // attempt only; the value stays here (see `OutboundHooks`).
        let secrets: Vec<(String, SecretGrant)> = grants
            .secrets
            .iter()
            .map(|s| {
                let placeholder = format!(
                    "warren-secret-{}-{}",
                    s.name,
                    warren_vocabulary::new_id().replace('-', "")
                );
                (placeholder, s.clone())
            })
            .collect();
        let env: Vec<(String, String)> = secrets
            .iter()
            .map(|(placeholder, s)| (s.variable(), placeholder.clone()))
            .collect();
        let wasi = wasi::build_ctx(log, scratch.as_ref(), in_dir, directories, &env)
            .map_err(|e| format!("preparing WASI: {e:#}"))?;
        let tape = Tape::new(
            request.replay.clone(),
            self.services().artifacts.clone(),
            request.limits.max_artifact_bytes,
        );
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            disk: Arc::new(DiskQuota::new(
                request.limits.max_disk_bytes,
                request.limits.max_disk_files,
            )),
            // Above the engine's maximum a grow would fail in the pool, not
            // in the limiter, and be reported as a trap.
            limiter: MemoryLimiter::new(
                request
                    .limits
                    .memory_bytes
                    .min(self.settings().max_memory_bytes),
            ),
            log: log.clone(),
            memory: MemoryState::new(
                self.services().memory.clone(),
                MemoryCtx::new(
                    &request.run_id,
                    request.story_id.as_deref(),
                    plugin.name(),
                    &grants.memory,
                ),
            ),
            artifacts: ArtifactsState::new(
                self.services().artifacts.clone(),
                ArtifactsCtx {
                    attempt_id: attempt_id.to_owned(),
                    producer: request.job_name.clone(),
                    max_bytes: request.limits.max_artifact_bytes,
                    upstream: request.upstream_artifacts.clone(),
                },
            ),
            jobs: JobsState::new(JobsCtx {
                spawn_granted: grants.spawn,
                depth: request.spawn_depth,
                max_depth: request.max_spawn_depth,
                // Without a way to look plugins up, nothing can be spawned.
                max_spawned: if request.plugin_lookup.is_some() {
                    request.limits.max_spawned_jobs
                } else {
                    0
                },
                plugin_exists: request
                    .plugin_lookup
                    .clone()
                    .unwrap_or_else(|| Arc::new(|_| false)),
                run_budget: request.spawn_budget.clone(),
            }),
            // Only agents import it; a job's upstream is in its context.
            agent_inputs: AgentInputsState::new(match plugin.kind() {
                PluginKind::Agent => request.upstream.clone(),
                PluginKind::Job | PluginKind::Guard => Vec::new(),
            }),
            http: WasiHttpCtx::new(),
            models: ModelsState::new(ModelsCtx {
                endpoints: Arc::new(
                    grants
                        .models
                        .iter()
                        .map(|m| (m.name.clone(), m.clone()))
                        .collect(),
                ),
                max_tokens: request.limits.max_tokens,
                run_budget: request.token_budget.clone(),
                breakers: self.services().breakers.clone(),
                in_flight: self.services().in_flight.clone(),
                plugin: plugin.name().to_owned(),
                deadline: Instant::now() + request.limits.timeout(),
                cancel: request.cancel.clone(),
                tape: tape.clone(),
            }),
            outbound: OutboundHooks::new(OutboundCtx {
                grants: grants.outbound.clone().into(),
                secrets,
                breakers: self.services().breakers.clone(),
                in_flight: self.services().in_flight.clone(),
                plugin: plugin.name().to_owned(),
                deadline: Instant::now() + request.limits.timeout(),
                cancel: request.cancel.clone(),
                log: log.clone(),
                tape: tape.clone(),
            }),
            tape,
            reviews: ReviewsState::new(
                request
                    .reviews
                    .iter()
                    .map(|r| (request.job_name.clone(), r.clone()))
                    .collect(),
                request.upstream_reviews.clone(),
            ),
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        Ok((store, scratch))
    }
}

type CallResult = wasmtime::Result<Result<Answer, JobFailure>>;

async fn call_plugin(
    plugin: &Plugin,
    store: &mut Store<PluginState>,
    request: &AttemptRequest,
    call: Call,
) -> CallResult {
    match (plugin.pre(), call) {
        (PluginPre::Job(pre), Call::Handler) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let ctx = types::JobContext {
                run_id: request.run_id.clone(),
                job_id: request.job_id.clone(),
                job_name: request.job_name.clone(),
                attempt: request.attempt,
                story_id: request.story_id.clone(),
                input: request.input.clone(),
                upstream: request
                    .upstream
                    .iter()
                    .map(|(job, output)| types::UpstreamOutput {
                        job: job.clone(),
                        output: output.clone(),
                    })
                    .collect(),
            };
            let result = instance
                .warren_plugin_job_handler()
                .call_run(&mut *store, &ctx)
                .await?;
            Ok(result
                .map(|output| Answer {
                    output,
                    documents: Vec::new(),
                })
                .map_err(JobFailure::from))
        }
        (PluginPre::Agent(pre), Call::Describe) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let info = instance
                .warren_plugin_agent_handler()
                .call_describe(&mut *store)
                .await?;
            let info = AgentInfo {
                name: info.name,
                version: info.version,
                description: info.description,
                requires: info.requires,
                produces: info.produces,
            };
            Ok(Ok(Answer {
                output: serde_json::to_string(&info)?,
                documents: Vec::new(),
            }))
        }
        (PluginPre::Agent(pre), Call::Handler) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let agent_request = agent_handler::AgentRequest {
                run_id: request.run_id.clone(),
                story_id: request.story_id.clone(),
                input: request.input.clone(),
                documents: request
                    .documents
                    .iter()
                    .map(|(name, content)| agent_handler::Document {
                        name: name.clone(),
                        content: content.clone(),
                    })
                    .collect(),
            };
            let reply = instance
                .warren_plugin_agent_handler()
                .call_invoke(&mut *store, &agent_request)
                .await?;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => return Ok(Err(JobFailure::from(e))),
            };
            let documents = match check_documents(reply.documents) {
                Ok(documents) => documents,
                Err(message) => return Ok(Err(JobFailure::Permanent(message))),
            };
            // Documents an agent writes are kept as its artifacts too: with
            // a blob, unless its runner keeps their bytes.
            for document in &documents {
                let name = format!("documents/{}", document.name);
                let artifacts = &mut store.data_mut().artifacts;
                let recorded = if request.documents_kept {
                    artifacts.record_kept(&name, document.content.as_bytes())
                } else {
                    artifacts.store(&name, document.content.as_bytes())
                };
                if let Err(e) = recorded {
                    return Ok(Err(JobFailure::Permanent(format!(
                        "document {}: {e}",
                        text::shown(&document.name)
                    ))));
                }
            }
            Ok(Ok(Answer {
                output: reply.output,
                documents,
            }))
        }
        (PluginPre::Guard(pre), Call::Guard(subject)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let verdict = instance
                .warren_plugin_guard_handler()
                .call_check(&mut *store, &subject)
                .await?;
            Ok(Ok(Answer {
                output: serde_json::to_string(&super::guard::verdict_of(verdict))?,
                documents: Vec::new(),
            }))
        }
        (pre, _) => Err(wasmtime::Error::msg(format!(
            "a {} plugin cannot answer this call",
            match pre {
                PluginPre::Job(_) => "job",
                PluginPre::Agent(_) => "agent",
                PluginPre::Guard(_) => "guard",
            }
        ))),
    }
}

/// An agent's documents, or why they cannot be kept: a bad or repeated
/// name, too large, too many.
fn check_documents(
    documents: Vec<agent_handler::Document>,
) -> Result<Vec<WrittenDocument>, String> {
    if documents.len() > MAX_AGENT_DOCUMENTS {
        return Err(format!(
            "the reply has {} documents, more than {MAX_AGENT_DOCUMENTS}",
            documents.len()
        ));
    }
    let mut checked: Vec<WrittenDocument> = Vec::with_capacity(documents.len());
    for document in documents {
        let shown = text::shown(&document.name);
        if let Err(reason) = check_document_name(&document.name) {
            return Err(format!(
                "the reply's document {shown} has an invalid name: {reason}"
            ));
        }
        if document.content.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the reply's document {shown} is {} bytes, more than the {MAX_DOCUMENT_BYTES} allowed",
                document.content.len()
            ));
        }
        if checked.iter().any(|d| d.name == document.name) {
            return Err(format!("the reply has document {shown} twice"));
        }
        checked.push(WrittenDocument {
            name: document.name,
            content: document.content,
        });
    }
    Ok(checked)
}

/// What `describe()` may use: it only answers a record.
fn describe_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 64 << 20,
        timeout_ms: 2_000,
        max_output_bytes: 256 << 10,
        max_log_bytes: 16 << 10,
        max_artifact_bytes: 0,
        max_spawned_jobs: 0,
        max_disk_bytes: 1 << 20,
        max_disk_files: 16,
        max_tokens: 0,
    }
}

/// A guest's error, bounded: what is kept is stored, logged and shown.
impl From<types::JobError> for JobFailure {
    fn from(e: types::JobError) -> Self {
        match e {
            types::JobError::Retryable(m) => Self::Retryable(text::bounded(&m, MAX_ERROR_BYTES)),
            types::JobError::Permanent(m) => Self::Permanent(text::bounded(&m, MAX_ERROR_BYTES)),
            types::JobError::NeedsInput(needs) => Self::NeedsInput(
                needs
                    .iter()
                    .take(text::MAX_NEEDS)
                    .map(|need| text::bounded(need, text::MAX_NEED_BYTES))
                    .collect(),
            ),
        }
    }
}

fn check_output(output: String, limits: &Limits) -> Result<String, AttemptFailure> {
    if output.len() > limits.max_output_bytes {
        return Err(AttemptFailure::Limit {
            hit: LimitHit::Output {
                size_bytes: output.len() as u64,
                limit_bytes: limits.max_output_bytes as u64,
            },
        });
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&output) {
        return Err(AttemptFailure::Job {
            error: JobFailure::Permanent(format!("the plugin's output is not JSON: {e}")),
        });
    }
    if let Err(e) = text::check_json_depth(&output) {
        return Err(AttemptFailure::Job {
            error: JobFailure::Permanent(format!("the plugin's output: {e}")),
        });
    }
    Ok(output)
}

/// On success, files left in `/out` become artifacts.
fn collect_out(
    artifacts: &mut ArtifactsState,
    out: &std::path::Path,
    log: &AttemptLog,
) -> Result<(), AttemptFailure> {
    match artifacts.collect_dir(out) {
        Ok(skipped) => {
            for name in skipped {
                log.push(
                    LogSource::Log,
                    LogLevel::Warn,
                    &format!("/out/{name} is not a regular file; not kept as an artifact"),
                );
            }
            Ok(())
        }
        Err(e) => Err(AttemptFailure::Limit {
            hit: LimitHit::Artifacts {
                message: e.to_string(),
            },
        }),
    }
}

/// Keeps the answers to the attempt's calls out as its artifacts, for a
/// replay. One that does not fit the attempt's artifact limits is left
/// out, with a warning: a call the replay cannot answer fails then, not
/// this job now.
fn keep_recordings(
    artifacts: &mut ArtifactsState,
    recorded: Vec<(String, bytes::Bytes)>,
    log: &AttemptLog,
) {
    for (name, answer) in recorded {
        if let Err(e) = artifacts.store(&name, &answer) {
            log.push(
                LogSource::Log,
                LogLevel::Warn,
                &format!("warren: {name} not recorded for replay: {e}"),
            );
        }
    }
}

/// Finds a cause of type `E` anywhere in the error's chain.
fn find_cause<E: std::error::Error + Send + Sync + 'static>(error: &wasmtime::Error) -> Option<&E> {
    error.chain().find_map(|cause| cause.downcast_ref::<E>())
}

fn classify_error(error: &wasmtime::Error, limits: &Limits, log: &CapturedLog) -> AttemptFailure {
    if let Some(hit) = find_cause::<MemoryLimitExceeded>(error) {
        return AttemptFailure::Limit {
            hit: LimitHit::Memory {
                limit_bytes: hit.limit,
                requested_bytes: hit.requested,
            },
        };
    }
    if let Some(hit) = find_cause::<DiskQuotaExceeded>(error) {
        return AttemptFailure::Limit {
            hit: match *hit {
                DiskQuotaExceeded::Bytes { limit } => LimitHit::DiskBytes { limit_bytes: limit },
                DiskQuotaExceeded::Files { limit } => LimitHit::DiskFiles { limit_files: limit },
            },
        };
    }
    if find_cause::<DeadlineExceeded>(error).is_some() {
        return AttemptFailure::Limit {
            hit: LimitHit::Deadline {
                timeout_ms: limits.timeout_ms,
            },
        };
    }
    if find_cause::<Cancelled>(error).is_some() {
        return AttemptFailure::Cancelled;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => AttemptFailure::Limit {
            hit: LimitHit::Fuel {
                budget: limits.fuel,
            },
        },
        Some(Trap::StackOverflow) => AttemptFailure::Limit {
            hit: LimitHit::Stack,
        },
        Some(Trap::UnreachableCodeReached) => AttemptFailure::Trap {
            message: match panic_message(log) {
                Some(message) => {
                    text::bounded(&format!("guest panicked: {message}"), MAX_ERROR_BYTES)
                }
                None => Trap::UnreachableCodeReached.to_string(),
            },
        },
        Some(trap) => AttemptFailure::Trap {
            message: trap.to_string(),
        },
        None => AttemptFailure::Trap {
            message: text::bounded(&format!("{error:#}"), MAX_ERROR_BYTES),
        },
    }
}

fn is_panic_line(line: &str) -> bool {
    line.contains("panicked at")
}

/// Rust prints `thread '...' panicked at file:line:col:` then the message on
/// the following line(s).
fn panic_message(log: &CapturedLog) -> Option<String> {
    let stderr: Vec<&str> = log
        .lines
        .iter()
        .filter(|l| l.source == LogSource::Stderr)
        .map(|l| l.message.as_str())
        .collect();
    let start = stderr.iter().rposition(|l| is_panic_line(l))?;
    let rest: Vec<&str> = stderr[start + 1..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("note:"))
        .collect();
    Some(if rest.is_empty() {
        stderr[start].to_owned()
    } else {
        rest.join("\n")
    })
}

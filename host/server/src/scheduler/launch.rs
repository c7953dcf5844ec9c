//! Running a decided attempt: `/in` materialised from upstream artifacts,
//! the attempt on its own task, and its end sent back to the scheduler as a
//! [`Completion`], whatever happens to the task.

use std::sync::Arc;

use tokio::sync::mpsc;
use warren_sandbox::artifact_store::Pins;
use warren_sandbox::capabilities::log::CapturedLog;
use warren_sandbox::capabilities::replay::ReplaySource;
use warren_sandbox::runtime::{AttemptFailure, AttemptOutcome, JobFailure, Runtime};
use warren_vocabulary::{Artifact, GuardSubjectKind, Screening, Usage};

use super::Command;
use super::decisions::Start;
use super::guards::{self, Guard, Stopped};
use super::inputs::InputDir;
use crate::db::{Database, documents, runs};

/// An attempt that ended.
pub(crate) struct Completion {
    pub run_id: String,
    pub job: usize,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// Upstream artifacts it was given: `(producer job id, name)`.
    pub uses: Vec<(String, String)>,
    /// Its promoted artifacts, pinned until their references are committed.
    pub pins: Option<Pins>,
    /// The guards' verdicts on its output and documents.
    pub screenings: Vec<Screening>,
}

/// Runs `start` on a task of its own (on `attempts_on` when given) and
/// reports its end on `commands`.
pub(super) fn launch(
    runtime: Arc<Runtime>,
    db: Arc<Database>,
    commands: mpsc::UnboundedSender<Command>,
    attempts_on: Option<&tokio::runtime::Handle>,
    start: Start,
) {
    let (run_id, job, attempt) = (start.run_id.clone(), start.job, start.request.attempt);
    let uses: Vec<(String, String)> = start
        .inputs
        .iter()
        .map(|(id, a)| (id.clone(), a.name.clone()))
        .collect();
    let work = run_started(runtime.clone(), db, start);
    let attempt_task = match attempts_on {
        Some(handle) => handle.spawn(work),
        None => tokio::spawn(work),
    };
    tokio::spawn(async move {
        // A panic in the attempt must still free its slot and end the job.
        let (mut outcome, screenings) = match attempt_task.await {
            Ok(ended) => ended,
            Err(e) => (
                host_failure(format!("the attempt task failed: {e}")),
                Vec::new(),
            ),
        };
        let mut pins = None;
        if outcome.result.is_ok() {
            match runtime.promote_artifacts(&outcome).await {
                Ok(promoted) => pins = Some(promoted),
                Err(e) => {
                    outcome = AttemptOutcome {
                        artifacts: Vec::new(),
                        blobless: Vec::new(),
                        spawned: Vec::new(),
                        result: Err(AttemptFailure::Host {
                            message: format!("keeping the artifacts: {e}"),
                        }),
                        ..outcome
                    };
                }
            }
        }
        let _ = commands.send(Command::Finished(Completion {
            run_id,
            job,
            attempt,
            outcome,
            uses,
            pins,
            screenings,
        }));
    });
}

/// The outcome of an attempt the host could not run.
pub(super) fn host_failure(message: String) -> AttemptOutcome {
    AttemptOutcome {
        attempt_id: String::new(),
        result: Err(AttemptFailure::Host { message }),
        usage: Usage::default(),
        log: CapturedLog::default(),
        artifacts: Vec::new(),
        spawned: Vec::new(),
        progress: None,
        documents: Vec::new(),
        blobless: Vec::new(),
    }
}

/// Materialises `/in`, reads an agent's documents and runs one started
/// attempt, then has its output and documents screened when its run's
/// guards do that.
async fn run_started(
    runtime: Arc<Runtime>,
    db: Arc<Database>,
    start: Start,
) -> (AttemptOutcome, Vec<Screening>) {
    let screen = start.screen.clone();
    let job_name = start.request.job_name.clone();
    let outcome = run_attempt(runtime.clone(), db, start).await;
    if screen.is_empty() || outcome.result.is_err() {
        return (outcome, Vec::new());
    }
    screen_outcome(&runtime, &screen, &job_name, outcome).await
}

async fn run_attempt(runtime: Arc<Runtime>, db: Arc<Database>, start: Start) -> AttemptOutcome {
    let Start {
        plugin,
        mut request,
        inputs,
        documents,
        stored_documents,
        document_scope,
        replay_of,
        ..
    } = start;
    if let Some(replayed) = replay_of {
        let (job_name, plugin_name) = (request.job_name.clone(), plugin.name().to_owned());
        let read = db
            .query(move |conn| {
                runs::recordings(conn, &replayed, &job_name, &plugin_name).map(|r| (replayed, r))
            })
            .await;
        match read {
            Ok((run_id, recordings)) => request.replay = Some(ReplaySource { run_id, recordings }),
            Err(e) => return host_failure(format!("reading the recordings to replay: {e}")),
        }
    }
    request.documents = documents
        .into_iter()
        .map(|(name, content)| (name, content.to_string()))
        .collect();
    if !stored_documents.is_empty() {
        let names = stored_documents.clone();
        let read = db
            .query(move |conn| documents::latest_texts(conn, &document_scope, &names))
            .await;
        match read {
            Ok(found) => request.documents.extend(found),
            Err(e) => return host_failure(format!("reading the agent's documents: {e}")),
        }
        // One deleted since the check: the job waits for it again.
        let missing: Vec<String> = stored_documents
            .into_iter()
            .filter(|name| !request.documents.iter().any(|(n, _)| n == name))
            .collect();
        if !missing.is_empty() {
            return AttemptOutcome {
                result: Err(AttemptFailure::Job {
                    error: JobFailure::NeedsInput(missing),
                }),
                ..host_failure(String::new())
            };
        }
    }
    let artifacts: Vec<Artifact> = inputs.into_iter().map(|(_, a)| a).collect();
    request.upstream_artifacts = artifacts.clone();
    // Only plugins that can open files see `/in`.
    let input_dir = if plugin.uses_filesystem() && !artifacts.is_empty() {
        // Files written, and bytes read from the store (or the database),
        // off the async threads.
        let (work_root, store) = (
            runtime.work_root().to_path_buf(),
            runtime.artifact_store().clone(),
        );
        let (attempt_id, max_bytes) = (
            request.attempt_id.clone(),
            request.limits.max_artifact_bytes,
        );
        let created = tokio::task::spawn_blocking(move || {
            InputDir::create(&work_root, &attempt_id, &store, &artifacts, max_bytes)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|created| created);
        match created {
            Ok(dir) => Some(dir),
            Err(e) => return host_failure(format!("materialising /in: {e}")),
        }
    } else {
        None
    };
    if let Some(dir) = &input_dir {
        request.in_dir = Some(dir.path.clone());
    }
    // Promoted by `launch` once the attempt succeeded.
    runtime.run_attempt_staged(&plugin, request).await
}

/// Passes a successful attempt's output, then each document it wrote,
/// through the guards. A redaction replaces what it redacted (a
/// document's artifact too); a denial or a guard that cannot answer fails
/// the attempt, and nothing of it is kept.
async fn screen_outcome(
    runtime: &Runtime,
    guards: &[Guard],
    job_name: &str,
    mut outcome: AttemptOutcome,
) -> (AttemptOutcome, Vec<Screening>) {
    let mut screenings = Vec::new();
    let Ok(output) = &outcome.result else {
        return (outcome, screenings);
    };
    match guards::screen(
        runtime,
        guards,
        GuardSubjectKind::JobOutput,
        job_name,
        output.clone(),
    )
    .await
    {
        Ok((passed, found)) => {
            screenings.extend(found);
            outcome.result = Ok(passed);
        }
        Err(stopped) => return refuse(runtime, outcome, stopped, screenings).await,
    }
    for i in 0..outcome.documents.len() {
        let document = &outcome.documents[i];
        let screened = guards::screen(
            runtime,
            guards,
            GuardSubjectKind::Document,
            &document.name,
            document.content.clone(),
        )
        .await;
        let passed = match screened {
            Ok((passed, found)) => {
                screenings.extend(found);
                passed
            }
            Err(stopped) => return refuse(runtime, outcome, stopped, screenings).await,
        };
        if passed == outcome.documents[i].content {
            continue;
        }
        // Its artifact holds what the agent wrote: the redacted text
        // replaces it (the first is never promoted). Without a blob, the
        // document it names is the redacted one.
        let name = format!("documents/{}", outcome.documents[i].name);
        let (store, attempt_id) = (runtime.artifact_store().clone(), outcome.attempt_id.clone());
        let bytes = passed.clone().into_bytes();
        let blobless = outcome.blobless.contains(&name);
        let staged = tokio::task::spawn_blocking(move || {
            let size = bytes.len() as u64;
            if blobless {
                return Ok((warren_sandbox::artifact_store::sha256_hex(&bytes), size));
            }
            store
                .stage(&attempt_id, &bytes)
                .map(|sha256| (sha256, size))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|staged| staged.map_err(|e| e.to_string()));
        match staged {
            Ok((sha256, size)) => {
                if let Some(artifact) = outcome.artifacts.iter_mut().find(|a| a.name == name) {
                    artifact.sha256 = sha256;
                    artifact.size = size;
                }
                outcome.documents[i].content = passed;
            }
            Err(e) => {
                let stopped = Stopped::Unavailable {
                    guard: String::new(),
                    message: format!("storing the redacted {name}: {e}"),
                };
                return refuse(runtime, outcome, stopped, screenings).await;
            }
        }
    }
    (outcome, screenings)
}

/// The attempt, failed by its screening: its staged artifacts go, and
/// nothing it produced is kept.
async fn refuse(
    runtime: &Runtime,
    mut outcome: AttemptOutcome,
    stopped: Stopped,
    mut screenings: Vec<Screening>,
) -> (AttemptOutcome, Vec<Screening>) {
    let failure = match stopped {
        Stopped::Denied { screenings: found } => {
            let failure = found.last().and_then(|s| {
                let (category, reason) = s.denial()?;
                Some(AttemptFailure::Guard {
                    guard: s.guard.clone(),
                    category: category.to_owned(),
                    reason: reason.to_owned(),
                })
            });
            screenings.extend(found);
            failure.unwrap_or(AttemptFailure::Host {
                message: "a denial without its verdict".into(),
            })
        }
        Stopped::Unavailable { message, .. } => AttemptFailure::Host {
            message: format!("screening the output: {message}"),
        },
    };
    let (store, attempt_id) = (runtime.artifact_store().clone(), outcome.attempt_id.clone());
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.discard(&attempt_id)).await {
        tracing::error!(attempt = %outcome.attempt_id, "removing a refused attempt's artifacts: {e}");
    }
    outcome.result = Err(failure);
    outcome.artifacts.clear();
    outcome.spawned.clear();
    outcome.documents.clear();
    outcome.blobless.clear();
    (outcome, screenings)
}

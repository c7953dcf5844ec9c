//! Running a decided attempt: `/in` materialised from upstream artifacts,
//! the attempt on its own task, and its end sent back to the scheduler as a
//! [`Completion`], whatever happens to the task.

use std::sync::Arc;

use tokio::sync::mpsc;
use warren_sandbox::artifact_store::Pins;
use warren_sandbox::capabilities::log::CapturedLog;
use warren_sandbox::capabilities::replay::ReplaySource;
use warren_sandbox::runtime::{AttemptFailure, AttemptOutcome, JobFailure, Runtime};
use warren_vocabulary::{Artifact, Usage};

use super::Command;
use super::decisions::Start;
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
        let mut outcome = match attempt_task.await {
            Ok(outcome) => outcome,
            Err(e) => host_failure(format!("the attempt task failed: {e}")),
        };
        let mut pins = None;
        if outcome.result.is_ok() {
            match runtime.promote_artifacts(&outcome).await {
                Ok(promoted) => pins = Some(promoted),
                Err(e) => {
                    outcome = AttemptOutcome {
                        artifacts: Vec::new(),
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
    }
}

/// Materialises `/in`, reads an agent's documents and runs one started
/// attempt.
async fn run_started(runtime: Arc<Runtime>, db: Arc<Database>, start: Start) -> AttemptOutcome {
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
        let job_name = request.job_name.clone();
        let read = db
            .query(move |conn| runs::recordings(conn, &replayed, &job_name).map(|r| (replayed, r)))
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
        match InputDir::create(
            runtime.work_root(),
            &request.attempt_id,
            runtime.artifact_store(),
            &artifacts,
            request.limits.max_artifact_bytes,
        ) {
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

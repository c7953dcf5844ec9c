//! The scheduler's decisions over one run's graph: which job moves where
//! (through the tables of [`super::transitions`]), what each move records,
//! which attempts start. No I/O: decisions collect in [`Effects`], which the
//! loop commits and launches.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use warren_sandbox::artifact_store::Pins;
use warren_sandbox::capabilities::jobs::SpawnRequest;
use warren_sandbox::plugin::Plugin;
use warren_sandbox::runtime::{
    AttemptFailure, AttemptRequest, JobFailure, LimitHit, WrittenDocument,
};
use warren_vocabulary::names::is_valid_document_name;
use warren_vocabulary::{
    Artifact, Condition, Decision, JobState, MAX_REVIEWS_HANDED, OnTimeout, PluginKind, Review,
    Reviewer, Role, RunState,
};

use super::EngineConfig;
use super::launch::Completion;
use super::run_graph::{ActiveRun, Node};
use super::transitions::{
    JobEvent, RunEvent, after_failure, job_transition, run_ending, run_transition,
};
use crate::catalogue::PluginRegistry;
use crate::db::runs::{Change, NewDep, NewJob};

/// Decisions not yet sent to the database.
#[derive(Default)]
pub(super) struct Effects {
    pub changes: Vec<Change>,
    pub starts: Vec<Start>,
    /// Cancels and syncs to acknowledge once their decisions are committed.
    pub replies: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// Runs that stopped (ended, or wait for documents or input).
    pub runs_stopped: Vec<String>,
    /// Promoted artifacts kept from the garbage collector until the
    /// commit that references them is done.
    pub pins: Vec<Pins>,
    /// Document scopes written to: once committed, runs waiting there look
    /// again.
    pub document_scopes: Vec<String>,
    /// `(run, name, content)` of documents its jobs wrote: once committed,
    /// the run reads them (or newer versions) from the story again.
    pub written: Vec<(String, String, Arc<str>)>,
}

/// An attempt decided on, to launch.
pub(crate) struct Start {
    pub run_id: String,
    pub job: usize,
    pub plugin: Arc<Plugin>,
    pub request: AttemptRequest,
    /// `(producer job id, artifact)` to materialise under `/in`.
    pub inputs: Vec<(String, Artifact)>,
    /// An agent's required documents written by its own run: `(name,
    /// content)`, handed over as they are.
    pub documents: Vec<(String, Arc<str>)>,
    /// Its other required documents, read from the run's document scope
    /// when the attempt starts.
    pub stored_documents: Vec<String>,
    pub document_scope: String,
    /// The run whose recordings answer the attempt's calls out.
    pub replay_of: Option<String>,
    /// The guards that check its output and documents (none: unscreened).
    pub screen: Vec<super::guards::Guard>,
}

/// Which of `names` the document scope (a story) holds in the database.
pub(crate) type StoredDocuments<'a> = &'a dyn Fn(&str, &[String]) -> HashSet<String>;

/// The state `event` moves job `job` of `run` to. An event the table does
/// not allow is a scheduler bug: it is logged and nothing changes.
fn next_state(run: &ActiveRun, job: usize, event: JobEvent) -> Option<JobState> {
    let from = run.jobs[job].state;
    let to = job_transition(from, event);
    if to.is_none() {
        tracing::error!(
            run = %run.id,
            job = %run.jobs[job].name,
            "no job transition from {from} on {event:?}; the job is left {from}"
        );
    }
    to
}

/// Moves a job by `event` (not through an attempt's end), records it and
/// propagates if the job ended; returns whether it moved.
pub(super) fn move_job(
    run: &mut ActiveRun,
    job: usize,
    event: JobEvent,
    reason: Option<String>,
    fx: &mut Effects,
) -> bool {
    move_job_failing(run, job, event, reason, None, fx)
}

/// [`move_job`], recording `error` (JSON) as the job's error.
fn move_job_failing(
    run: &mut ActiveRun,
    job: usize,
    event: JobEvent,
    reason: Option<String>,
    error: Option<String>,
    fx: &mut Effects,
) -> bool {
    let Some(to) = next_state(run, job, event) else {
        return false;
    };
    let from = run.jobs[job].state;
    if to.is_waiting() && run.jobs[job].waiting_since.is_none() {
        run.jobs[job].waiting_since = Some(warren_vocabulary::now_ms());
    }
    fx.changes
        .push(job_change(run, job, from, to, reason, None, error));
    run.jobs[job].state = to;
    if !to.is_waiting() {
        run.jobs[job].waiting_since = None;
    }
    // An external job waits for its reports, not for a slot.
    if to == JobState::Ready && !run.jobs[job].external {
        run.ready.push_back(job);
    }
    if to.is_terminal() {
        terminal(run, job, fx);
    }
    true
}

/// Moves a run by `event` and records it; returns whether it moved.
pub(super) fn move_run(
    run: &mut ActiveRun,
    event: RunEvent,
    reason: String,
    fx: &mut Effects,
) -> bool {
    let from = run.state;
    let Some(to) = run_transition(from, event) else {
        tracing::error!(run = %run.id, "no run transition from {from} on {event:?}; the run is left {from}");
        return false;
    };
    fx.changes.push(Change::RunState {
        run_id: run.id.clone(),
        from,
        to,
        reason: Some(reason),
    });
    run.state = to;
    true
}

/// Cancels every job of `run` not ended: running guests are told to stop
/// (their attempts end `cancelled`), the others end now.
pub(super) fn cancel_jobs(run: &mut ActiveRun, fx: &mut Effects) {
    for index in 0..run.jobs.len() {
        match run.jobs[index].state {
            // An external job runs no attempt here: it ends now.
            JobState::Running if !run.jobs[index].external => {
                if let Some(flag) = &run.jobs[index].cancel {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            state if !state.is_terminal() => {
                move_job(
                    run,
                    index,
                    JobEvent::Cancelled,
                    Some("run cancelled".into()),
                    fx,
                );
            }
            _ => {}
        }
    }
}

/// What an ended attempt decides for its job. Returns when the job should
/// be looked at again, for a retry after its backoff.
pub(super) fn finish_attempt(
    run: &mut ActiveRun,
    completion: Completion,
    plugins: &PluginRegistry,
    max_run_data_bytes: u64,
    fx: &mut Effects,
) -> Option<Instant> {
    let Completion {
        job,
        attempt,
        mut outcome,
        uses,
        pins,
        screenings,
        ..
    } = completion;
    // What the output, the spawned inputs and the documents add must fit
    // the run's total.
    if let Ok(output) = &outcome.result {
        let added = output.len() as u64
            + outcome
                .spawned
                .iter()
                .map(|s| s.input.len() as u64)
                .sum::<u64>()
            + outcome
                .documents
                .iter()
                .map(|d| d.content.len() as u64)
                .sum::<u64>();
        if run.data_bytes.saturating_add(added) > max_run_data_bytes {
            outcome.result = Err(AttemptFailure::Limit {
                hit: LimitHit::RunData {
                    limit_bytes: max_run_data_bytes,
                },
            });
        } else {
            run.data_bytes += added;
        }
    }
    fx.pins.extend(pins);
    run.running = run.running.saturating_sub(1);
    run.jobs[job].cancel = None;
    fx.changes.push(Change::FinishAttempt {
        job_id: run.jobs[job].id.clone(),
        number: attempt,
        succeeded: outcome.result.is_ok(),
        error: outcome
            .result
            .as_ref()
            .err()
            .and_then(|e| serde_json::to_string(e).ok()),
        log: serde_json::to_string(&outcome.log).unwrap_or_default(),
        usage: outcome.usage.clone(),
        progress: outcome
            .progress
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok()),
    });
    for screening in screenings {
        fx.changes.push(Change::Screened {
            run_id: run.id.clone(),
            job_id: Some(run.jobs[job].id.clone()),
            screening,
        });
    }
    if !uses.is_empty() {
        fx.changes.push(Change::ArtifactUses {
            consumer_job_id: run.jobs[job].id.clone(),
            attempt,
            uses,
        });
    }

    match outcome.result {
        Ok(output) => {
            // A gated job holds its output until a person decides, and
            // its documents too: they are its artifacts `documents/<name>`
            // meanwhile (with blobs: see `documents_kept` at its start),
            // and story versions once it is approved.
            let gated = run.jobs[job].approval.is_some_and(|g| g.required) && !run.cancelling;
            // Otherwise its documents' bytes are committed once, as story
            // documents, and their artifacts name them there.
            if gated && !outcome.blobless.is_empty() {
                // Its documents would be artifacts pointing at nothing
                // until approved: never kept (see `documents_kept`).
                let message = "a gated job's documents were kept without blobs".to_owned();
                return finish_failure(run, job, AttemptFailure::Host { message }, fx);
            }
            let in_documents = if gated { Vec::new() } else { outcome.blobless };
            let node = &mut run.jobs[job];
            node.output = Some(output.clone());
            node.artifacts = outcome.artifacts.clone();
            fx.changes.push(Change::Artifacts {
                job_id: node.id.clone(),
                artifacts: outcome.artifacts,
                in_documents,
            });
            if gated {
                run.jobs[job].held_docs =
                    outcome.documents.iter().map(|d| d.name.clone()).collect();
            } else if !outcome.documents.is_empty() {
                store_documents(run, job, outcome.documents, fx);
            }
            if !run.cancelling && !outcome.spawned.is_empty() {
                insert_children(run, job, outcome.spawned, plugins, fx);
            }
            let event = if gated {
                JobEvent::AwaitingApproval
            } else {
                JobEvent::Succeeded
            };
            let to = next_state(run, job, event)?;
            let from = run.jobs[job].state;
            let reason =
                (to == JobState::WaitingApproval).then(|| "waiting for a decision".to_owned());
            // Set first: the change below records it.
            if to == JobState::WaitingApproval {
                run.jobs[job].waiting_since = Some(warren_vocabulary::now_ms());
            }
            fx.changes
                .push(job_change(run, job, from, to, reason, Some(output), None));
            run.jobs[job].state = to;
            if to == JobState::WaitingApproval {
                return gate_deadline(&run.jobs[job], Instant::now(), warren_vocabulary::now_ms());
            }
            terminal(run, job, fx);
            None
        }
        Err(failure) => finish_failure(run, job, failure, fx),
    }
}

/// Documents job `job` wrote: new versions in the run's document scope,
/// read by the run's later agents from memory until they are committed.
fn store_documents(
    run: &mut ActiveRun,
    job: usize,
    documents: Vec<WrittenDocument>,
    fx: &mut Effects,
) {
    for document in &documents {
        let content: Arc<str> = Arc::from(document.content.as_str());
        run.documents.insert(document.name.clone(), content.clone());
        fx.written
            .push((run.id.clone(), document.name.clone(), content));
    }
    fx.document_scopes.push(run.document_scope().to_owned());
    fx.changes.push(Change::Documents {
        scope: run.document_scope().to_owned(),
        run_id: run.id.clone(),
        job_id: run.jobs[job].id.clone(),
        documents,
    });
}

fn finish_failure(
    run: &mut ActiveRun,
    job: usize,
    failure: AttemptFailure,
    fx: &mut Effects,
) -> Option<Instant> {
    let error = serde_json::to_string(&failure).ok();
    let node = &run.jobs[job];
    let attempts_left = node.attempts - node.retry_base < node.retry.max_attempts;
    let event = after_failure(&failure, run.cancelling, attempts_left);
    // The valid document names it asked for: it goes on by itself once
    // they are written, or when someone gives it input.
    let asked: Vec<String> = match &failure {
        AttemptFailure::Job {
            error: JobFailure::NeedsInput(needs),
        } => needs
            .iter()
            .filter(|name| is_valid_document_name(name))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let to = next_state(run, job, event)?;
    let from = run.jobs[job].state;
    if event != JobEvent::RetryScheduled {
        if event == JobEvent::InputNeeded {
            run.jobs[job].pending_docs = asked.clone();
            run.jobs[job].asked = asked;
            run.jobs[job].waiting_since = Some(warren_vocabulary::now_ms());
        }
        let reason = Some(failure.to_string());
        fx.changes
            .push(job_change(run, job, from, to, reason, None, error));
        run.jobs[job].state = to;
        if to.is_terminal() {
            terminal(run, job, fx);
        }
        return None;
    }
    let node = &run.jobs[job];
    let delay = node
        .retry
        .backoff(node.attempts - node.retry_base + 1, fastrand::f64());
    let at = Instant::now() + delay;
    let reason = format!("retry in {} ms after: {failure}", delay.as_millis());
    let mut change = job_change(run, job, from, to, Some(reason), None, error);
    if let Change::JobState { ready_at, .. } = &mut change {
        *ready_at = Some(warren_vocabulary::now_ms() + delay.as_millis() as i64);
    }
    fx.changes.push(change);
    let node = &mut run.jobs[job];
    node.state = to;
    node.not_before = Some(at);
    Some(at)
}

fn job_change(
    run: &ActiveRun,
    job: usize,
    from: JobState,
    to: JobState,
    reason: Option<String>,
    output: Option<String>,
    error: Option<String>,
) -> Change {
    let node = &run.jobs[job];
    Change::JobState {
        run_id: run.id.clone(),
        job_id: node.id.clone(),
        from,
        to,
        reason,
        attempts: node.attempts,
        retry_base: node.retry_base,
        reworks: node.reworks,
        ready_at: None,
        output,
        error,
        pending_docs: (to == JobState::NeedsInput).then(|| node.pending_docs.clone()),
        waiting_since: to
            .is_waiting()
            .then(|| node.waiting_since.unwrap_or_else(warren_vocabulary::now_ms)),
        held_docs: (to == JobState::WaitingApproval).then(|| node.held_docs.clone()),
    }
}

/// Puts a failed job back to pending, and with it the dependents its
/// failure skipped; an ended run is running again.
pub(super) fn reopen(run: &mut ActiveRun, job_id: &str, fx: &mut Effects) -> Result<(), String> {
    let job = *run
        .by_id
        .get(job_id)
        .ok_or_else(|| format!("job {job_id} is not in run {}", run.id))?;
    let state = run.jobs[job].state;
    if job_transition(state, JobEvent::RetryRequested).is_none() {
        return Err(format!(
            "job {:?} is {state}; only failed jobs and jobs needing input can be retried",
            run.jobs[job].name
        ));
    }
    if run.cancelling || run.state == RunState::Cancelled {
        return Err(format!("run {} was cancelled", run.id));
    }
    if run.state.is_terminal() {
        let reason = format!("job {:?} retried", run.jobs[job].name);
        move_run(run, RunEvent::JobRetried, reason, fx);
    }
    let mut reopened = vec![job];
    let mut index = 0;
    while index < reopened.len() {
        let current = reopened[index];
        index += 1;
        let (event, reason) = if current == job {
            (JobEvent::RetryRequested, "retry requested".to_owned())
        } else {
            (
                JobEvent::Reopened,
                format!("waits again for retried job {:?}", run.jobs[job].name),
            )
        };
        // Set first: the change below records the fresh retry and rework
        // budgets.
        run.jobs[current].retry_base = run.jobs[current].attempts;
        run.jobs[current].reworks = 0;
        let was_ended = run.jobs[current].state.is_terminal();
        run.jobs[current].pending_docs.clear();
        if !move_job(run, current, event, Some(reason), fx) {
            continue;
        }
        run.jobs[current].not_before = None;
        if was_ended {
            run.unfinished += 1;
        }
        for &dependent in &run.jobs[current].dependents {
            if run.jobs[dependent].state == JobState::Skipped && !reopened.contains(&dependent) {
                reopened.push(dependent);
            }
        }
    }
    evaluate(run, job, Instant::now(), fx);
    Ok(())
}

/// Promotes or skips a pending job whose dependencies allow it.
pub(super) fn evaluate(run: &mut ActiveRun, job: usize, now: Instant, fx: &mut Effects) {
    // A cancelled run's jobs are all being cancelled; none becomes ready.
    if run.cancelling {
        return;
    }
    match run.readiness(job, now) {
        Some(Ok(())) => {
            move_job(run, job, JobEvent::DependenciesMet, None, fx);
        }
        Some(Err(reason)) => {
            move_job(run, job, JobEvent::DependenciesUnmet, Some(reason), fx);
        }
        None => {}
    }
}

/// A job reached a terminal state: its dependents may now run or be skipped.
fn terminal(run: &mut ActiveRun, job: usize, fx: &mut Effects) {
    run.unfinished = run.unfinished.saturating_sub(1);
    let now = Instant::now();
    let dependents = run.jobs[job].dependents.clone();
    for dependent in dependents {
        evaluate(run, dependent, now, fx);
    }
}

/// The next job of `run` waiting for a slot.
pub(super) fn next_ready(run: &mut ActiveRun) -> Option<usize> {
    while let Some(job) = run.ready.pop_front() {
        if run.jobs[job].state == JobState::Ready {
            return Some(job);
        }
    }
    None
}

/// The circuit breaker of the plugin version `node` would run, if it has
/// one.
pub(super) fn plugin_breaker(
    plugins: &PluginRegistry,
    node: &Node,
) -> Option<warren_sandbox::plugin::grants::PluginBreakerSettings> {
    if node.external {
        return None;
    }
    let plugin = match &node.plugin_digest {
        Some(digest) => plugins.version(&node.plugin, digest),
        None => plugins.get(&node.plugin),
    }?;
    plugin.grants().breaker
}

/// A ready job waits for its plugin's breaker: the first time, an event
/// says so.
pub(super) fn hold_for_breaker(run: &mut ActiveRun, job: usize, fx: &mut Effects) {
    if run.jobs[job].breaker_held {
        return;
    }
    run.jobs[job].breaker_held = true;
    let reason = format!(
        "waiting: plugin {:?}'s circuit breaker is open after failed attempts in a row",
        run.jobs[job].plugin
    );
    fx.changes.push(job_change(
        run,
        job,
        JobState::Ready,
        JobState::Ready,
        Some(reason),
        None,
        None,
    ));
}

/// A ready job fails at once: its plugin's breaker is open and fails fast.
pub(super) fn refuse_for_breaker(run: &mut ActiveRun, job: usize, why: String, fx: &mut Effects) {
    let error = serde_json::json!({"type": "breaker_open", "message": why}).to_string();
    move_job_failing(run, job, JobEvent::BreakerOpen, Some(why), Some(error), fx);
}

/// Decides to start `job`; returns whether an attempt will run.
pub(super) fn start_job(
    run: &mut ActiveRun,
    job: usize,
    plugins: &PluginRegistry,
    config: &EngineConfig,
    stored: StoredDocuments<'_>,
    fx: &mut Effects,
) -> bool {
    let node = &run.jobs[job];
    let plugin = match &node.plugin_digest {
        Some(digest) => plugins.version(&node.plugin, digest),
        None => plugins.get(&node.plugin),
    };
    let Some(plugin) = plugin else {
        let reason = match &node.plugin_digest {
            Some(digest) => format!(
                "version {digest} of plugin {:?}, which this run uses, is not loaded",
                node.plugin
            ),
            None => format!("plugin {:?} is not loaded", node.plugin),
        };
        move_job(run, job, JobEvent::PluginMissing, Some(reason), fx);
        return false;
    };
    // An agent starts only with every document it requires, and those it
    // asked for when it last returned `needs-input`.
    let mut wanted: Vec<String> = plugin
        .agent_info()
        .map(|info| info.requires.clone())
        .unwrap_or_default();
    if plugin.kind() == PluginKind::Agent {
        for name in &run.jobs[job].asked {
            if !wanted.contains(name) && is_valid_document_name(name) {
                wanted.push(name.clone());
            }
        }
    }
    let (mut documents, mut stored_documents) = (Vec::new(), Vec::new());
    for name in &wanted {
        match run.documents.get(name) {
            Some(content) => documents.push((name.clone(), content.clone())),
            None => stored_documents.push(name.clone()),
        }
    }
    if !stored_documents.is_empty() {
        let present = stored(run.document_scope(), &stored_documents);
        let missing: Vec<String> = stored_documents
            .iter()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let reason = format!("waiting for documents: {}", missing.join(", "));
            run.jobs[job].pending_docs = missing;
            move_job(run, job, JobEvent::DocumentsMissing, Some(reason), fx);
            return false;
        }
    }
    let started = format!("job {:?} started", run.jobs[job].name);
    match run.state {
        RunState::Pending => {
            move_run(run, RunEvent::JobStarted, started, fx);
        }
        RunState::NeedsInput | RunState::WaitingApproval => {
            move_run(run, RunEvent::Resumed, started, fx);
        }
        _ => {}
    }
    let node = &mut run.jobs[job];
    node.attempts += 1;
    node.handed = wanted;
    node.is_agent = plugin.kind() == PluginKind::Agent;
    let attempt_id = warren_vocabulary::new_id();
    let cancel = Arc::new(AtomicBool::new(false));
    node.cancel = Some(cancel.clone());
    run.running += 1;
    let Some(running) = next_state(run, job, JobEvent::Started) else {
        return false;
    };
    fx.changes.push(job_change(
        run,
        job,
        JobState::Ready,
        running,
        None,
        None,
        None,
    ));
    let node = &run.jobs[job];
    fx.changes.push(Change::StartAttempt {
        attempt_id: attempt_id.clone(),
        job_id: node.id.clone(),
        number: node.attempts,
        plugin_digest: plugin.digest().to_owned(),
    });

    let mut upstream = Vec::new();
    let mut inputs = Vec::new();
    let mut upstream_reviews = Vec::new();
    for &(dep, _) in &node.deps {
        let dep_node = &run.jobs[dep];
        if dep_node.state == JobState::Completed {
            upstream_reviews.extend(
                dep_node
                    .reviews
                    .iter()
                    .map(|r| (dep_node.name.clone(), r.clone())),
            );
            if let Some(output) = &dep_node.output {
                upstream.push((dep_node.name.clone(), output.clone()));
            }
            inputs.extend(
                dep_node
                    .artifacts
                    .iter()
                    .map(|a| (dep_node.id.clone(), a.clone())),
            );
        }
    }
    // The version's grants bound the job's limits, whatever was stored.
    let limits = run.within_budget(
        node.limits.capped_at(&plugin.grants().limits),
        Instant::now(),
    );
    let screen = if node.screen {
        super::guards::Guard::resolve(&run.guards, &config.guards, |name| plugins.get(name))
    } else {
        Vec::new()
    };
    let plugins = plugins.clone();
    let pinned = run.pinned_plugins.clone();
    let request = AttemptRequest {
        attempt_id,
        run_id: run.id.clone(),
        job_id: node.id.clone(),
        job_name: node.name.clone(),
        attempt: node.attempts,
        story_id: run.story_id.clone(),
        input: node.input.clone(),
        upstream,
        documents: Vec::new(),
        // A gated agent's documents wait in blobs for a decision; others'
        // bytes are committed as story documents only.
        documents_kept: !node.approval.is_some_and(|g| g.required),
        reviews: node.reviews.clone(),
        upstream_reviews,
        token_budget: run.token_budget.clone(),
        upstream_artifacts: Vec::new(),
        limits,
        in_dir: run.in_dir.clone().filter(|_| node.depth == 0),
        spawn_depth: node.depth,
        max_spawn_depth: config.max_spawn_depth,
        plugin_lookup: Some(Arc::new(move |name: &str| {
            plugins.contains(name) || pinned.iter().any(|p| p == name)
        })),
        log_sink: Some(
            config
                .live_logs
                .sink(&node.id, node.attempts, config.log_sink.clone()),
        ),
        cancel: Some(cancel),
        spawn_budget: Some(run.spawn_budget.clone()),
        replay: None,
    };
    run.jobs[job].state = running;
    fx.starts.push(Start {
        run_id: run.id.clone(),
        job,
        plugin,
        request,
        inputs,
        documents,
        stored_documents,
        document_scope: run.document_scope().to_owned(),
        replay_of: run.replay_of.clone(),
        screen,
    });
    true
}

/// Jobs of `run` waiting for documents that are now all there go on.
/// Returns whether any did.
pub(super) fn documents_arrived(
    run: &mut ActiveRun,
    stored: StoredDocuments<'_>,
    fx: &mut Effects,
) -> bool {
    let waiting: Vec<usize> = (0..run.jobs.len())
        .filter(|&j| run.jobs[j].state == JobState::NeedsInput && !run.cancelling)
        .collect();
    if waiting.is_empty() {
        return false;
    }
    let wanted: Vec<String> = waiting
        .iter()
        .flat_map(|&j| run.jobs[j].pending_docs.iter())
        .filter(|name| !run.documents.contains_key(*name))
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let present = if wanted.is_empty() {
        HashSet::new()
    } else {
        stored(run.document_scope(), &wanted)
    };
    let now = Instant::now();
    let mut moved = false;
    for job in waiting {
        let pending = &run.jobs[job].pending_docs;
        let all_there = !pending.is_empty()
            && pending
                .iter()
                .all(|name| run.documents.contains_key(name) || present.contains(name));
        if !all_there {
            continue;
        }
        let reason = format!("documents written: {}", pending.join(", "));
        run.jobs[job].pending_docs.clear();
        if move_job(run, job, JobEvent::DocumentsArrived, Some(reason), fx) {
            evaluate(run, job, now, fx);
            moved = true;
        }
    }
    moved
}

/// A run in which nothing can go on until people act says what it waits
/// for: a decision, or documents or input.
pub(super) fn settle(run: &mut ActiveRun, fx: &mut Effects) {
    let Some(waiting) = run.waiting_state() else {
        return;
    };
    if run.state == waiting {
        return;
    }
    let (event, reason) = if waiting == RunState::WaitingApproval {
        let names: Vec<&str> = run
            .jobs
            .iter()
            .filter(|j| j.state == JobState::WaitingApproval)
            .map(|j| j.name.as_str())
            .collect();
        (
            RunEvent::AwaitingApproval,
            format!("waiting for a decision on: {}", names.join(", ")),
        )
    } else {
        let mut docs: Vec<&str> = run
            .jobs
            .iter()
            .filter(|j| j.state == JobState::NeedsInput)
            .flat_map(|j| j.pending_docs.iter().map(String::as_str))
            .collect();
        docs.sort_unstable();
        docs.dedup();
        let reason = if docs.is_empty() {
            "waiting for input".to_owned()
        } else {
            format!("waiting for documents or input: {}", docs.join(", "))
        };
        (RunEvent::Stalled, reason)
    };
    // Whoever waits for the run to stop is woken as for an ending.
    if move_run(run, event, reason, fx) {
        fx.runs_stopped.push(run.id.clone());
    }
}

/// A waiting run in which a job can run again (after a decision or
/// input) is running again at once, not only when that job starts.
pub(super) fn wake(run: &mut ActiveRun, fx: &mut Effects) {
    if run.state.is_waiting() && run.unfinished > 0 && run.waiting_state().is_none() {
        move_run(run, RunEvent::Resumed, "a person acted".to_owned(), fx);
    }
}

/// When a job waiting for a decision since `waiting_since` times out, as
/// an instant on this process's clock; `now` and `now_ms` are the same
/// moment on the two clocks.
pub(super) fn gate_deadline(node: &Node, now: Instant, now_ms: i64) -> Option<Instant> {
    let timeout = node.approval?.timeout_ms?;
    let since = node.waiting_since?;
    let elapsed = now_ms.saturating_sub(since).max(0) as u64;
    Some(now + Duration::from_millis(timeout.saturating_sub(elapsed)))
}

/// Why a decision or input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The job is not waiting for this (409).
    NotWaiting(String),
    /// What it brings is over a limit of the run's (413).
    TooLarge(String),
    /// The caller's role may not decide this gate (403).
    Forbidden(String),
}

/// What an outside system reports of an external job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Running,
    Completed,
    Failed,
    NeedsInput,
}

impl ReportedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::NeedsInput => "needs_input",
        }
    }
}

/// A report of an external job.
#[derive(Debug, Clone)]
pub struct Report {
    pub status: ReportedStatus,
    /// Shown as the job's summary (and in the status view).
    pub summary: Option<String>,
    /// JSON: the output of a completed job.
    pub output: Option<String>,
    /// Who reported (the token's name).
    pub by: Option<String>,
    /// The guards' verdicts on `output`.
    pub screenings: Vec<warren_vocabulary::Screening>,
}

/// Moves an external job as its outside system reports; its dependents
/// react as to any job's end. Reports of a job that is not external, of
/// one still waiting for its dependencies or already ended, are refused.
pub(super) fn report_job(
    run: &mut ActiveRun,
    job: usize,
    report: Report,
    max_run_data_bytes: u64,
    fx: &mut Effects,
) -> Result<JobState, Refusal> {
    let node = &run.jobs[job];
    let name = node.name.clone();
    if run.cancelling {
        return Err(Refusal::NotWaiting(format!(
            "run {} is being cancelled",
            run.id
        )));
    }
    if !node.external {
        return Err(Refusal::NotWaiting(format!(
            "job {name:?} runs in Warren; only external jobs take reports"
        )));
    }
    let event = match report.status {
        ReportedStatus::Running => JobEvent::ReportedRunning,
        ReportedStatus::Completed => JobEvent::ReportedCompleted,
        ReportedStatus::Failed => JobEvent::ReportedFailed,
        ReportedStatus::NeedsInput => JobEvent::ReportedNeedsInput,
    };
    let from = node.state;
    let Some(to) = job_transition(from, event) else {
        let why = if from == JobState::Pending {
            "it waits for its dependencies".to_owned()
        } else {
            format!("it is {from}")
        };
        return Err(Refusal::NotWaiting(format!(
            "job {name:?} cannot be reported {}: {why}",
            report.status.as_str()
        )));
    };
    // An output counts against what the run may hold, as an attempt's.
    let added = report.output.as_ref().map_or(0, |o| o.len() as u64);
    if run.data_bytes.saturating_add(added) > max_run_data_bytes {
        return Err(Refusal::TooLarge(format!(
            "the output would take the run past the {max_run_data_bytes} bytes it may hold"
        )));
    }
    run.data_bytes += added;
    for screening in report.screenings {
        fx.changes.push(Change::Screened {
            run_id: run.id.clone(),
            job_id: Some(run.jobs[job].id.clone()),
            screening,
        });
    }
    match run.state {
        RunState::Pending => {
            move_run(
                run,
                RunEvent::JobStarted,
                format!("job {name:?} reported"),
                fx,
            );
        }
        RunState::NeedsInput | RunState::WaitingApproval if !to.is_waiting() => {
            move_run(run, RunEvent::Resumed, format!("job {name:?} reported"), fx);
        }
        _ => {}
    }
    if let Some(summary) = &report.summary {
        fx.changes.push(Change::Summary {
            job_id: run.jobs[job].id.clone(),
            summary: summary.clone(),
        });
    }
    let output =
        (to == JobState::Completed).then(|| report.output.unwrap_or_else(|| "null".into()));
    let error = (to == JobState::Failed).then(|| {
        serde_json::json!({
            "type": "reported",
            "message": report.summary.as_deref().unwrap_or("reported failed"),
        })
        .to_string()
    });
    if to.is_waiting() && run.jobs[job].waiting_since.is_none() {
        run.jobs[job].waiting_since = Some(warren_vocabulary::now_ms());
    }
    let reason = match &report.by {
        Some(by) => format!("reported {to} by {by}"),
        None => format!("reported {to}"),
    };
    fx.changes.push(job_change(
        run,
        job,
        from,
        to,
        Some(reason),
        output.clone(),
        error,
    ));
    let node = &mut run.jobs[job];
    node.state = to;
    if let Some(output) = output {
        node.output = Some(output);
    }
    if !to.is_waiting() {
        node.waiting_since = None;
    }
    if to.is_terminal() {
        terminal(run, job, fx);
    }
    Ok(to)
}

/// How a job ended without a failed attempt (stored as its error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GateFailure {
    /// A reviewer rejected its output for good, or rework was used up.
    Rejected { message: String },
    /// Nobody decided in time and the gate fails on a timeout.
    ApprovalTimeout { message: String },
}

impl std::fmt::Display for GateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected { message } | Self::ApprovalTimeout { message } => f.write_str(message),
        }
    }
}

/// Records `review` of job `job` and acts on it: approve completes the job
/// (storing `held`, the documents its waiting output wrote, as read from
/// its artifacts), reject sends it back for rework (or fails it when final
/// or out of rework), input lets a job waiting for input run again.
/// Returns the job's new state.
pub(super) fn review_job(
    run: &mut ActiveRun,
    job: usize,
    mut review: Review,
    held: Vec<HeldDocument>,
    fx: &mut Effects,
) -> Result<JobState, Refusal> {
    let node = &run.jobs[job];
    let name = node.name.clone();
    if run.cancelling {
        return Err(Refusal::NotWaiting(format!(
            "run {} is being cancelled",
            run.id
        )));
    }
    match review.decision {
        Decision::Approve | Decision::Reject => {
            if node.state != JobState::WaitingApproval {
                return Err(Refusal::NotWaiting(format!(
                    "job {name:?} is {}, not waiting for a decision",
                    node.state
                )));
            }
            let least = node.approval.map_or(Role::Client, |g| g.role);
            if let Some(role) = review.by.role
                && !role.may_decide(least)
            {
                return Err(Refusal::Forbidden(format!(
                    "deciding job {name:?} needs the {least} role or above; this token's role is {role}"
                )));
            }
        }
        Decision::Input => {
            if node.state != JobState::NeedsInput {
                return Err(Refusal::NotWaiting(format!(
                    "job {name:?} is {}, not waiting for input",
                    node.state
                )));
            }
        }
    }
    // A decision that names an attempt is on that attempt's output only: a
    // resent rejection does not reject the rework it caused.
    if review.attempt != 0 && review.attempt != node.attempts {
        return Err(Refusal::NotWaiting(format!(
            "the decision is on attempt {} of job {name:?}, which is at attempt {} now",
            review.attempt, node.attempts
        )));
    }
    review.attempt = node.attempts;
    fx.changes.push(Change::Review {
        run_id: run.id.clone(),
        job_id: node.id.clone(),
        review: review.clone(),
    });
    let reviews = &mut run.jobs[job].reviews;
    reviews.push(review.clone());
    if reviews.len() > MAX_REVIEWS_HANDED {
        reviews.remove(0);
    }
    let who = review.by.name.as_deref().unwrap_or("a person");
    match review.decision {
        Decision::Approve => {
            // Only the documents the output decided on wrote (not any
            // artifact under `documents/`), as it stored them.
            let node = &run.jobs[job];
            let documents: Vec<WrittenDocument> = held
                .into_iter()
                .filter(|held| {
                    node.held_docs.contains(&held.name)
                        && node.artifacts.iter().any(|a| {
                            a.sha256 == held.sha256
                                && a.name.strip_prefix(DOCUMENT_ARTIFACTS)
                                    == Some(held.name.as_str())
                        })
                })
                .map(|held| WrittenDocument {
                    name: held.name,
                    content: held.content,
                })
                .collect();
            if !documents.is_empty() {
                store_documents(run, job, documents, fx);
            }
            move_job(
                run,
                job,
                JobEvent::Approved,
                Some(format!("approved by {who}")),
                fx,
            );
        }
        Decision::Reject => reject(run, job, &review, fx),
        Decision::Input => {
            let node = &mut run.jobs[job];
            node.pending_docs.clear();
            node.asked.clear();
            node.retry_base = node.attempts;
            node.not_before = None;
            if move_job(
                run,
                job,
                JobEvent::InputGiven,
                Some(format!("input given by {who}")),
                fx,
            ) {
                evaluate(run, job, Instant::now(), fx);
            }
        }
    }
    Ok(run.jobs[job].state)
}

/// Where an agent's documents are among its artifacts: `documents/<name>`.
pub(crate) const DOCUMENT_ARTIFACTS: &str = "documents/";

/// A document a job waiting for a decision wrote, read back from its
/// artifact `documents/<name>` to be stored if the job is approved.
#[derive(Debug, Clone)]
pub struct HeldDocument {
    pub name: String,
    pub sha256: String,
    pub content: String,
}

/// A rejection: final, or past the gate's `max_rework`, fails the job (its
/// `on_failure` dependents run); otherwise it runs again, and the jobs it
/// spawned that never ran go (the new attempt spawns its own).
fn reject(run: &mut ActiveRun, job: usize, review: &Review, fx: &mut Effects) {
    let node = &run.jobs[job];
    let who = review.by.name.as_deref().unwrap_or("a person");
    let max_rework = node.approval.map_or(0, |g| g.max_rework);
    let failure = if review.is_final {
        Some(format!("rejected by {who} (final)"))
    } else if node.reworks >= max_rework {
        Some(format!(
            "rejected by {who}; rework used up ({max_rework} allowed)"
        ))
    } else {
        None
    };
    if let Some(message) = failure {
        let error = serde_json::to_string(&GateFailure::Rejected {
            message: message.clone(),
        })
        .ok();
        move_job_failing(run, job, JobEvent::Rejected, Some(message), error, fx);
        return;
    }
    let node = &mut run.jobs[job];
    node.reworks += 1;
    node.retry_base = node.attempts;
    let reason = format!(
        "sent back for rework by {who} ({} of {max_rework})",
        node.reworks
    );
    for child in 0..run.jobs.len() {
        if run.jobs[child].parent == Some(job) && run.jobs[child].state == JobState::Pending {
            let reason = format!(
                "its parent {:?} was sent back for rework",
                run.jobs[job].name
            );
            move_job(run, child, JobEvent::DependenciesUnmet, Some(reason), fx);
        }
    }
    if move_job(run, job, JobEvent::SentBack, Some(reason), fx) {
        evaluate(run, job, Instant::now(), fx);
    }
}

/// A gate nobody decided on in time: `fail` fails the job, `reject` is a
/// rejection by Warren. Does nothing if the job no longer waits; if its
/// time is not up (the clocks moved apart), returns when to look again.
pub(super) fn gate_timed_out(run: &mut ActiveRun, job: usize, fx: &mut Effects) -> Option<Instant> {
    let node = &run.jobs[job];
    let (Some(gate), Some(since)) = (node.approval, node.waiting_since) else {
        return None;
    };
    let timeout = gate.timeout_ms?;
    if node.state != JobState::WaitingApproval || run.cancelling {
        return None;
    }
    let now_ms = warren_vocabulary::now_ms();
    if now_ms < since.saturating_add(timeout as i64) {
        return gate_deadline(node, Instant::now(), now_ms);
    }
    let message = format!("no decision within {timeout} ms");
    match gate.on_timeout {
        OnTimeout::Fail => {
            let error = serde_json::to_string(&GateFailure::ApprovalTimeout {
                message: message.clone(),
            })
            .ok();
            move_job_failing(run, job, JobEvent::Rejected, Some(message), error, fx);
        }
        OnTimeout::Reject => {
            let review = Review {
                decision: Decision::Reject,
                is_final: false,
                comments: Some(message),
                data: None,
                by: Reviewer::warren(),
                at: warren_vocabulary::now_ms(),
                attempt: 0,
            };
            // Warren has no role: the gate's role does not apply.
            let _ = review_job(run, job, review, Vec::new(), fx);
        }
    }
    None
}

/// Adds the jobs an attempt spawned: each runs after its parent (and sees
/// its output and artifacts), and the parent's dependents wait for it.
fn insert_children(
    run: &mut ActiveRun,
    parent: usize,
    spawned: Vec<SpawnRequest>,
    plugins: &PluginRegistry,
    fx: &mut Effects,
) {
    let parent_node = &run.jobs[parent];
    let mut jobs = Vec::with_capacity(spawned.len());
    let mut deps = Vec::new();
    for (offset, request) in spawned.into_iter().enumerate() {
        // `~` never appears in pipeline job names, so these cannot clash.
        let name = format!("{}~{}", request.plugin, run.jobs.len() + offset);
        deps.push(NewDep {
            job_id: request.job_id.clone(),
            depends_on: parent_node.id.clone(),
            condition: Condition::OnSuccess,
        });
        for &dependent in &parent_node.dependents {
            deps.push(NewDep {
                job_id: run.jobs[dependent].id.clone(),
                depends_on: request.job_id.clone(),
                condition: Condition::Always,
            });
        }
        // A plugin the run already uses runs at the run's version of it.
        let plugin_digest = run
            .jobs
            .iter()
            .find(|j| j.plugin == request.plugin && j.plugin_digest.is_some())
            .and_then(|j| j.plugin_digest.clone())
            .or_else(|| plugins.get(&request.plugin).map(|p| p.digest().to_owned()));
        jobs.push(NewJob {
            id: request.job_id,
            name,
            plugin: request.plugin,
            plugin_digest,
            input: request.input,
            state: JobState::Pending,
            retry: parent_node.retry,
            limits: parent_node.limits.clone(),
            parent_job_id: Some(parent_node.id.clone()),
            spawn_reason: Some(request.reason),
            depth: parent_node.depth + 1,
            approval: None,
        });
    }
    run.add_jobs(&jobs, &deps);
    fx.changes.push(Change::InsertJobs {
        run_id: run.id.clone(),
        jobs,
        deps,
        reason: format!("spawned by {}", run.jobs[parent].name),
    });
}

/// Ends a run whose jobs have all ended.
pub(super) fn finish_run(run: &mut ActiveRun, fx: &mut Effects) {
    // A run stopped for its budget fails, whatever its jobs did.
    let event = match run.budget_exceeded {
        Some(_) => RunEvent::SomeFailed,
        None => run_ending(run.cancelling, run.jobs.iter().map(|j| j.state)),
    };
    let reason = match event {
        _ if run.budget_exceeded.is_some() => {
            format!(
                "budget_exceeded: {}",
                run.budget_exceeded.map_or("", |k| k.as_str())
            )
        }
        RunEvent::Cancelled => "cancelled".to_owned(),
        _ => {
            let count = |state: JobState| run.jobs.iter().filter(|j| j.state == state).count();
            format!(
                "every job ended: {} completed, {} failed, {} skipped, {} cancelled",
                count(JobState::Completed),
                count(JobState::Failed),
                count(JobState::Skipped),
                count(JobState::Cancelled)
            )
        }
    };
    if move_run(run, event, reason, fx) {
        fx.runs_stopped.push(run.id.clone());
    }
}

//! The scheduler: one task that owns the in-memory state of every unfinished
//! run. Each turn it takes every pending command (submissions, cancels,
//! finished attempts), decides, and starts the attempts it decided on. The
//! decisions go to the database in one transaction per commit, in order,
//! while the next turns are made.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::inputs::InputDir;
use super::metrics::ALL_JOB_STATES;
use super::run_graph::ActiveRun;
use super::spec::PipelineSpec;
use super::{Command, EngineConfig};
use crate::catalogue::PluginRegistry;
use crate::db::runs::{self, Change, NewDep, NewJob, NewRun, StoredRun};
use crate::db::{Database, DbError};
use warren_sandbox::capabilities::log::CapturedLog;
use warren_sandbox::plugin::Plugin;
use warren_sandbox::runtime::{
    AttemptFailure, AttemptOutcome, AttemptRequest, JobFailure, LimitHit, Runtime,
};
use warren_vocabulary::{Artifact, Condition, JobState, RunState, Usage};

/// An attempt that ended.
pub(crate) struct Completion {
    run_id: String,
    job: usize,
    attempt: u32,
    outcome: AttemptOutcome,
    /// Upstream artifacts it was given: `(producer job id, name)`.
    uses: Vec<(String, String)>,
}

/// How often the queue gauges of `/metrics` are recomputed.
const GAUGE_PERIOD: Duration = Duration::from_millis(100);

/// Tries of a commit before the engine stops.
const WRITE_TRIES: u32 = 5;

/// What the scheduler tells the rest of the engine.
pub(crate) struct Signals {
    /// Bumped when runs end.
    pub finished: watch::Sender<u64>,
    /// Bumped after every commit (new events may be readable).
    pub committed: watch::Sender<u64>,
    pub metrics: Arc<super::metrics::Metrics>,
}

/// Decisions not yet sent to the database.
#[derive(Default)]
struct Effects {
    changes: Vec<Change>,
    starts: Vec<Start>,
    /// Cancels and syncs to acknowledge once their decisions are committed.
    replies: Vec<tokio::sync::oneshot::Sender<bool>>,
    runs_finished: u64,
}

/// Decisions on their way to the database, and whom to tell once they are
/// there.
struct Commit {
    write: std::pin::Pin<Box<dyn Future<Output = Result<(), DbError>> + Send>>,
    replies: Vec<tokio::sync::oneshot::Sender<bool>>,
    runs_finished: u64,
}

/// Completes when the commit in flight does; never if there is none.
async fn wait_for(commit: &mut Option<Commit>) -> Result<(), DbError> {
    match commit {
        Some(commit) => (&mut commit.write).await,
        None => std::future::pending().await,
    }
}

struct Start {
    run_id: String,
    job: usize,
    plugin: Arc<Plugin>,
    request: AttemptRequest,
    /// `(producer job id, artifact)` to materialise under `/in`.
    inputs: Vec<(String, Artifact)>,
}

pub(crate) struct Scheduler {
    runtime: Arc<Runtime>,
    db: Arc<Database>,
    plugins: PluginRegistry,
    config: Arc<EngineConfig>,
    commands: mpsc::UnboundedSender<Command>,
    signals: Signals,
    runs: HashMap<String, ActiveRun>,
    /// Runs that may have a job to start, in turn (each at most once).
    rotation: VecDeque<String>,
    in_rotation: std::collections::HashSet<String>,
    /// Retries waiting for their backoff: `(when, run, job)`.
    timers: BinaryHeap<Reverse<(Instant, String, usize)>>,
    running: usize,
    /// Shutting down: no new attempt starts.
    draining: bool,
    /// When the queue gauges were last computed.
    gauges_at: Instant,
    /// Something changed since; they are recomputed when the period ends.
    gauges_stale: bool,
    effects: Effects,
}

impl Scheduler {
    pub fn new(
        runtime: Arc<Runtime>,
        db: Arc<Database>,
        plugins: PluginRegistry,
        config: Arc<EngineConfig>,
        commands: mpsc::UnboundedSender<Command>,
        signals: Signals,
    ) -> Self {
        Self {
            runtime,
            db,
            plugins,
            config,
            commands,
            signals,
            runs: HashMap::new(),
            rotation: VecDeque::new(),
            in_rotation: std::collections::HashSet::new(),
            timers: BinaryHeap::new(),
            running: 0,
            draining: false,
            gauges_at: Instant::now(),
            gauges_stale: false,
            effects: Effects::default(),
        }
    }

    /// The in-memory state of a stored run.
    fn rebuild(
        &self,
        stored_run: &StoredRun,
        now: Instant,
        now_ms: i64,
    ) -> Result<ActiveRun, DbError> {
        let spec: PipelineSpec =
            serde_json::from_str(&stored_run.spec).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let new_run = NewRun {
            id: stored_run.id.clone(),
            template: None,
            spec: String::new(),
            input: stored_run.input.clone(),
            story_id: stored_run.story_id.clone(),
        };
        let jobs: Vec<NewJob> = stored_run
            .jobs
            .iter()
            .map(|j| NewJob {
                id: j.id.clone(),
                name: j.name.clone(),
                plugin: j.plugin.clone(),
                plugin_digest: j.plugin_digest.clone(),
                input: j.input.clone(),
                state: j.state,
                retry: j.retry,
                limits: j.limits.clone(),
                parent_job_id: j.parent_job_id.clone(),
                spawn_reason: None,
                depth: j.depth,
            })
            .collect();
        let mut run = ActiveRun::new(
            &new_run,
            spec.max_parallel,
            &jobs,
            &stored_run.deps,
            stored_run.state,
        );
        for (index, stored_job) in stored_run.jobs.iter().enumerate() {
            let node = &mut run.jobs[index];
            node.attempts = stored_job.attempts;
            node.retry_base = stored_job.retry_base;
            node.output = stored_job.output.clone();
            node.not_before = stored_job
                .ready_at
                .map(|at| now + Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64));
        }
        for (producer, artifact) in &stored_run.artifacts {
            if let Some(&index) = run.by_id.get(producer) {
                run.jobs[index].artifacts.push(artifact.clone());
            }
        }
        // A cancel asked for before the crash is finished now.
        run.cancelling = stored_run.cancel_requested;
        run.set_spawn_budget(self.config.max_spawned_per_run);
        Ok(run)
    }

    /// Runs a failed (or input-needing) job again, with a fresh retry
    /// budget; dependents it caused to be skipped wait for it again, and an
    /// ended run runs again.
    fn retry(&mut self, run_id: &str, job_id: &str) -> Result<(), String> {
        if !self.runs.contains_key(run_id) {
            let stored = self
                .db
                .read(|conn| runs::load_run(conn, run_id))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("run {run_id} not found"))?;
            // Not in memory but not ended on disk: its last commit is on its
            // way, and a run rebuilt from before it would never finish.
            if !stored.state.is_terminal() {
                return Err(format!(
                    "run {run_id} is just ending; retry the job again in a moment"
                ));
            }
            let run = self
                .rebuild(&stored, Instant::now(), warren_vocabulary::now_ms())
                .map_err(|e| e.to_string())?;
            self.runs.insert(run_id.to_owned(), run);
        }
        let Some(run) = self.runs.get_mut(run_id) else {
            return Err(format!("run {run_id} not found"));
        };
        let outcome = reopen(run, job_id, &mut self.effects);
        if run.unfinished == 0 {
            // Nothing was reopened and the run had ended: forget it again.
            self.runs.remove(run_id);
        } else {
            self.enqueue(run_id);
        }
        outcome
    }

    /// Rebuilds the unfinished runs: attempts that were running when the
    /// process died are closed as failed (host restart) and retried under
    /// their policy.
    pub async fn recover(mut self, stored: Vec<StoredRun>) -> Result<Self, DbError> {
        let count = stored.len();
        let now = Instant::now();
        let now_ms = warren_vocabulary::now_ms();
        for stored_run in stored {
            let run = self.rebuild(&stored_run, now, now_ms)?;
            let run_id = run.id.clone();
            self.runs.insert(run_id.clone(), run);

            for (attempt_id, job_id) in &stored_run.running_attempts {
                let Some(&job) = self.runs[&run_id].by_id.get(job_id) else {
                    continue;
                };
                let attempt = self.runs[&run_id].jobs[job].attempts;
                if let Some(run) = self.runs.get_mut(&run_id) {
                    run.running += 1;
                }
                self.running += 1;
                let outcome = AttemptOutcome {
                    attempt_id: attempt_id.clone(),
                    result: Err(AttemptFailure::Host {
                        message: "host restart: the process ended during the attempt".into(),
                    }),
                    usage: Usage::default(),
                    log: CapturedLog::default(),
                    artifacts: Vec::new(),
                    spawned: Vec::new(),
                    progress: None,
                };
                self.on_finished(Completion {
                    run_id: run_id.clone(),
                    job,
                    attempt,
                    outcome,
                    uses: Vec::new(),
                });
            }
            // Closing its interrupted attempts may have ended the run.
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if run.cancelling {
                for index in 0..run.jobs.len() {
                    if !run.jobs[index].state.is_terminal() {
                        set_state(
                            run,
                            index,
                            JobState::Cancelled,
                            Some("run cancelled".into()),
                            &mut self.effects,
                        );
                    }
                }
            }
            for index in 0..run.jobs.len() {
                // Ready jobs were queued when the graph was built.
                if run.jobs[index].state == JobState::Pending {
                    if let Some(at) = run.jobs[index].not_before {
                        self.timers.push(Reverse((at, run_id.clone(), index)));
                    }
                    evaluate(run, index, now, &mut self.effects);
                }
            }
            if run.unfinished == 0 {
                finish_run(run, &mut self.effects);
            } else {
                self.enqueue(&run_id);
            }
        }
        self.runs.retain(|_, run| !run.state.is_terminal());
        self.flush().await?;
        tracing::info!(runs = count, "recovered unfinished runs");
        Ok(self)
    }

    /// Serves commands until the engine is dropped. A turn's decisions are
    /// committed while the next turn's are made: the writer thread and the
    /// attempts on this thread work at the same time.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut committing: Option<Commit> = None;
        loop {
            self.schedule();
            self.launch_decided();
            if committing.is_none() {
                committing = self.begin_commit();
            }
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                written = wait_for(&mut committing) => {
                    let Some(commit) = committing.take() else { continue };
                    if written.is_err() {
                        return;
                    }
                    self.acknowledge(commit);
                }
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                () = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers(),
                () = sleep_until(Some(self.gauges_at + GAUGE_PERIOD)), if self.gauges_stale => {}
            }
            // Everything already queued joins this turn's transaction.
            while let Ok(command) = commands.try_recv() {
                self.handle(command);
            }
            self.fire_timers();
            self.update_gauges();
        }
        // The engine is going away: what was decided is still recorded.
        if let Some(commit) = committing {
            let _ = commit.write.await;
        }
    }

    /// `running` every turn (shutdown waits on it); the queue and the jobs
    /// by state, which take a walk over every active run, at most every
    /// [`GAUGE_PERIOD`].
    fn update_gauges(&mut self) {
        let metrics = &self.signals.metrics;
        metrics
            .running
            .store(self.running as u64, Ordering::Relaxed);
        let now = Instant::now();
        if now.duration_since(self.gauges_at) < GAUGE_PERIOD {
            self.gauges_stale = true;
            return;
        }
        self.gauges_at = now;
        self.gauges_stale = false;
        let queued: usize = self.runs.values().map(|run| run.ready.len()).sum();
        metrics.queued.store(queued as u64, Ordering::Relaxed);
        let mut by_state = [0u64; ALL_JOB_STATES.len()];
        for job in self.runs.values().flat_map(|run| &run.jobs) {
            if let Some(i) = ALL_JOB_STATES.iter().position(|&s| s == job.state) {
                by_state[i] += 1;
            }
        }
        for (gauge, n) in metrics.jobs_by_state.iter().zip(by_state) {
            gauge.store(n, Ordering::Relaxed);
        }
        metrics
            .active_runs
            .store(self.runs.len() as u64, Ordering::Relaxed);
    }

    /// Puts a run in the rotation unless it is there already.
    fn enqueue(&mut self, run_id: &str) {
        if self.in_rotation.insert(run_id.to_owned()) {
            self.rotation.push_back(run_id.to_owned());
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submitted(run) => {
                run.set_spawn_budget(self.config.max_spawned_per_run);
                let run_id = run.id.clone();
                let now = Instant::now();
                let run = self.runs.entry(run_id.clone()).or_insert(run);
                for index in 0..run.jobs.len() {
                    evaluate(run, index, now, &mut self.effects);
                }
                self.enqueue(&run_id);
            }
            Command::Cancel { run_id, reply } => {
                if self.cancel(&run_id) {
                    self.effects.replies.push(reply);
                } else {
                    let _ = reply.send(false);
                }
            }
            Command::Finished(completion) => self.on_finished(completion),
            Command::Sync { reply } => self.effects.replies.push(reply),
            Command::Drain => self.draining = true,
            Command::Retry {
                run_id,
                job_id,
                reply,
            } => {
                let _ = reply.send(self.retry(&run_id, &job_id));
            }
        }
    }

    fn cancel(&mut self, run_id: &str) -> bool {
        let Some(run) = self.runs.get_mut(run_id) else {
            return false;
        };
        if run.cancelling {
            return true;
        }
        run.cancelling = true;
        self.effects.changes.push(Change::CancelRequested {
            run_id: run.id.clone(),
        });
        for index in 0..run.jobs.len() {
            match run.jobs[index].state {
                JobState::Running => {
                    if let Some(flag) = &run.jobs[index].cancel {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
                state if !state.is_terminal() => {
                    set_state(
                        run,
                        index,
                        JobState::Cancelled,
                        Some("run cancelled".into()),
                        &mut self.effects,
                    );
                }
                _ => {}
            }
        }
        if run.unfinished == 0 {
            finish_run(run, &mut self.effects);
            self.runs.remove(run_id);
        }
        true
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, run_id, job))) = self.timers.pop() else {
                break;
            };
            if let Some(run) = self.runs.get_mut(&run_id) {
                evaluate(run, job, now, &mut self.effects);
                self.enqueue(&run_id);
            }
        }
    }

    /// Starts ready jobs while there are free slots, taking runs in turn.
    fn schedule(&mut self) {
        if self.draining {
            return;
        }
        let mut turns = self.rotation.len();
        while self.running < self.config.max_concurrent_jobs && turns > 0 {
            turns -= 1;
            let Some(run_id) = self.rotation.pop_front() else {
                break;
            };
            self.in_rotation.remove(&run_id);
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if run.running >= run.max_parallel || run.cancelling {
                continue;
            }
            let Some(job) = next_ready(run) else { continue };
            let started = start_job(run, job, &self.plugins, &self.config, &mut self.effects);
            if started {
                self.running += 1;
            }
            let more = !run.ready.is_empty();
            if run.unfinished == 0 {
                finish_run(run, &mut self.effects);
                self.runs.remove(&run_id);
            } else if more {
                self.enqueue(&run_id);
                turns += 1;
            }
        }
    }

    /// Commits this turn's decisions, then acts on them.
    async fn flush(&mut self) -> Result<(), DbError> {
        self.launch_decided();
        if let Some(mut commit) = self.begin_commit() {
            (&mut commit.write).await?;
            self.acknowledge(commit);
        }
        Ok(())
    }

    /// Starts the attempts decided this turn. They run while their start
    /// is being committed: an attempt's end is recorded in a later commit
    /// than its start, and a crash before the start is durable leaves the
    /// job `ready`, to be started again (see docs/pipelines.md).
    fn launch_decided(&mut self) {
        for start in std::mem::take(&mut self.effects.starts) {
            self.launch(start);
        }
    }

    /// Sends the decisions made so far to the writer. Cancels are
    /// acknowledged and waiters woken once they are durable
    /// ([`Self::acknowledge`]); if the database keeps refusing, the engine stops
    /// rather than run on decisions it could not record.
    fn begin_commit(&mut self) -> Option<Commit> {
        // A sync with nothing to write still waits for the commits before it.
        if self.effects.changes.is_empty() && self.effects.replies.is_empty() {
            return None;
        }
        let changes = Arc::new(std::mem::take(&mut self.effects.changes));
        self.signals.metrics.count(&changes);
        let db = self.db.clone();
        let write = Box::pin(async move {
            let mut tries = 0;
            loop {
                let batch = changes.clone();
                match db.write(move |conn| runs::apply(conn, &batch)).await {
                    Ok(()) => return Ok(()),
                    Err(e) if tries < WRITE_TRIES => {
                        tries += 1;
                        tracing::error!("committing scheduler decisions failed (try {tries}): {e}");
                        tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                    }
                    Err(e) => {
                        tracing::error!(
                            "the database keeps refusing scheduler decisions, stopping the engine: {e}"
                        );
                        return Err(e);
                    }
                }
            }
        });
        Some(Commit {
            write,
            replies: std::mem::take(&mut self.effects.replies),
            runs_finished: std::mem::take(&mut self.effects.runs_finished),
        })
    }

    /// Tells cancellers and waiters about decisions that are now durable.
    fn acknowledge(&self, commit: Commit) {
        for reply in commit.replies {
            let _ = reply.send(true);
        }
        if commit.runs_finished > 0 {
            self.signals
                .finished
                .send_modify(|n| *n += commit.runs_finished);
        }
        self.signals.committed.send_modify(|n| *n += 1);
    }

    fn launch(&self, start: Start) {
        let runtime = self.runtime.clone();
        let commands = self.commands.clone();
        let (run_id, job, attempt) = (start.run_id.clone(), start.job, start.request.attempt);
        let uses: Vec<(String, String)> = start
            .inputs
            .iter()
            .map(|(id, a)| (id.clone(), a.name.clone()))
            .collect();
        let attempt_task = tokio::spawn(run_started(runtime, start));
        tokio::spawn(async move {
            // A panic in the attempt must still free its slot and end the job.
            let outcome = match attempt_task.await {
                Ok(outcome) => outcome,
                Err(e) => host_failure(format!("the attempt task failed: {e}")),
            };
            let _ = commands.send(Command::Finished(Completion {
                run_id,
                job,
                attempt,
                outcome,
                uses,
            }));
        });
    }

    fn on_finished(&mut self, completion: Completion) {
        let Completion {
            run_id,
            job,
            attempt,
            outcome,
            uses,
        } = completion;
        self.running = self.running.saturating_sub(1);
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        run.running = run.running.saturating_sub(1);
        let node = &mut run.jobs[job];
        node.cancel = None;

        let fx = &mut self.effects;
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
        });
        if !uses.is_empty() {
            fx.changes.push(Change::ArtifactUses {
                consumer_job_id: run.jobs[job].id.clone(),
                attempt,
                uses,
            });
        }

        match outcome.result {
            Ok(output) => {
                let node = &mut run.jobs[job];
                node.output = Some(output.clone());
                node.artifacts = outcome.artifacts.clone();
                fx.changes.push(Change::Artifacts {
                    job_id: node.id.clone(),
                    artifacts: outcome.artifacts,
                });
                if !run.cancelling && !outcome.spawned.is_empty() {
                    insert_children(run, job, outcome.spawned, &self.plugins, fx);
                }
                let node = &run.jobs[job];
                fx.changes.push(job_change(
                    run,
                    job,
                    node.state,
                    JobState::Completed,
                    None,
                    Some(output),
                    None,
                ));
                run.jobs[job].state = JobState::Completed;
                terminal(run, job, fx);
            }
            Err(failure) => {
                let error = serde_json::to_string(&failure).ok();
                let node = &run.jobs[job];
                let next = if run.cancelling || failure == AttemptFailure::Cancelled {
                    JobState::Cancelled
                } else {
                    match &failure {
                        AttemptFailure::Job {
                            error: JobFailure::NeedsInput(_),
                        } => JobState::NeedsInput,
                        f if is_retryable(f)
                            && node.attempts - node.retry_base < node.retry.max_attempts =>
                        {
                            JobState::Pending
                        }
                        _ => JobState::Failed,
                    }
                };
                if next == JobState::Pending {
                    let delay = node
                        .retry
                        .backoff(node.attempts - node.retry_base + 1, fastrand::f64());
                    let at = Instant::now() + delay;
                    let reason = format!("retry in {} ms after: {failure}", delay.as_millis());
                    let ready_at = warren_vocabulary::now_ms() + delay.as_millis() as i64;
                    let mut change = job_change(
                        run,
                        job,
                        JobState::Running,
                        JobState::Pending,
                        Some(reason),
                        None,
                        error,
                    );
                    if let Change::JobState { ready_at: r, .. } = &mut change {
                        *r = Some(ready_at);
                    }
                    fx.changes.push(change);
                    let node = &mut run.jobs[job];
                    node.state = JobState::Pending;
                    node.not_before = Some(at);
                    self.timers.push(Reverse((at, run_id.clone(), job)));
                } else {
                    let reason = Some(failure.to_string());
                    fx.changes.push(job_change(
                        run,
                        job,
                        JobState::Running,
                        next,
                        reason,
                        None,
                        error,
                    ));
                    run.jobs[job].state = next;
                    terminal(run, job, fx);
                }
            }
        }
        if run.unfinished == 0 {
            finish_run(run, &mut self.effects);
            self.runs.remove(&run_id);
        } else {
            self.enqueue(&run_id);
        }
    }
}

/// Retried: failures that may go away (the plugin says so, a trap, a
/// deadline, the host). Not retried: permanent errors and limits that the
/// same input would hit again.
fn is_retryable(failure: &AttemptFailure) -> bool {
    match failure {
        AttemptFailure::Job { error } => matches!(error, JobFailure::Retryable(_)),
        AttemptFailure::Limit { hit } => matches!(hit, LimitHit::Deadline { .. }),
        AttemptFailure::Trap { .. } | AttemptFailure::Host { .. } => true,
        AttemptFailure::Cancelled => false,
    }
}

fn host_failure(message: String) -> AttemptOutcome {
    AttemptOutcome {
        attempt_id: String::new(),
        result: Err(AttemptFailure::Host { message }),
        usage: Usage::default(),
        log: CapturedLog::default(),
        artifacts: Vec::new(),
        spawned: Vec::new(),
        progress: None,
    }
}

/// Materialises `/in` and runs one started attempt.
async fn run_started(runtime: Arc<Runtime>, start: Start) -> AttemptOutcome {
    let Start {
        plugin,
        mut request,
        inputs,
        ..
    } = start;
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
    request.in_dir = input_dir.as_ref().map(|d| d.path.clone());
    runtime.run_attempt(&plugin, request).await
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
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
        ready_at: None,
        output,
        error,
    }
}

/// Moves a job to `to` (not through an attempt) and propagates if terminal.
fn set_state(
    run: &mut ActiveRun,
    job: usize,
    to: JobState,
    reason: Option<String>,
    fx: &mut Effects,
) {
    let from = run.jobs[job].state;
    fx.changes
        .push(job_change(run, job, from, to, reason, None, None));
    run.jobs[job].state = to;
    if to == JobState::Ready {
        run.ready.push_back(job);
    }
    if to.is_terminal() {
        terminal(run, job, fx);
    }
}

/// Puts a failed job back to pending, and with it the dependents its
/// failure skipped; an ended run is running again.
fn reopen(run: &mut ActiveRun, job_id: &str, fx: &mut Effects) -> Result<(), String> {
    let job = *run
        .by_id
        .get(job_id)
        .ok_or_else(|| format!("job {job_id} is not in run {}", run.id))?;
    let state = run.jobs[job].state;
    if !matches!(state, JobState::Failed | JobState::NeedsInput) {
        return Err(format!(
            "job {:?} is {state}; only failed jobs and jobs needing input can be retried",
            run.jobs[job].name
        ));
    }
    if run.cancelling || run.state == RunState::Cancelled {
        return Err(format!("run {} was cancelled", run.id));
    }
    if run.state.is_terminal() {
        fx.changes.push(Change::RunState {
            run_id: run.id.clone(),
            from: run.state,
            to: RunState::Running,
            reason: Some(format!("job {:?} retried", run.jobs[job].name)),
        });
        run.state = RunState::Running;
    }
    let mut reopened = vec![job];
    let mut index = 0;
    while index < reopened.len() {
        let current = reopened[index];
        index += 1;
        let reason = if current == job {
            "retry requested".to_owned()
        } else {
            format!("waits again for retried job {:?}", run.jobs[job].name)
        };
        let from = run.jobs[current].state;
        // Set first: the change below records the fresh retry budget.
        run.jobs[current].retry_base = run.jobs[current].attempts;
        fx.changes.push(job_change(
            run,
            current,
            from,
            JobState::Pending,
            Some(reason),
            None,
            None,
        ));
        let node = &mut run.jobs[current];
        node.state = JobState::Pending;
        node.not_before = None;
        run.unfinished += 1;
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
fn evaluate(run: &mut ActiveRun, job: usize, now: Instant, fx: &mut Effects) {
    // A cancelled run's jobs are all being cancelled; none becomes ready.
    if run.cancelling {
        return;
    }
    match run.readiness(job, now) {
        Some(Ok(())) => set_state(run, job, JobState::Ready, None, fx),
        Some(Err(reason)) => set_state(run, job, JobState::Skipped, Some(reason), fx),
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

fn next_ready(run: &mut ActiveRun) -> Option<usize> {
    while let Some(job) = run.ready.pop_front() {
        if run.jobs[job].state == JobState::Ready {
            return Some(job);
        }
    }
    None
}

/// Decides to start `job`; returns whether an attempt will run.
fn start_job(
    run: &mut ActiveRun,
    job: usize,
    plugins: &PluginRegistry,
    config: &EngineConfig,
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
        set_state(run, job, JobState::Failed, Some(reason), fx);
        return false;
    };
    if run.state == RunState::Pending {
        fx.changes.push(Change::RunState {
            run_id: run.id.clone(),
            from: RunState::Pending,
            to: RunState::Running,
            reason: Some(format!("job {:?} started", run.jobs[job].name)),
        });
        run.state = RunState::Running;
    }
    let node = &mut run.jobs[job];
    node.attempts += 1;
    let attempt_id = warren_vocabulary::new_id();
    let cancel = Arc::new(AtomicBool::new(false));
    node.cancel = Some(cancel.clone());
    run.running += 1;
    fx.changes.push(job_change(
        run,
        job,
        JobState::Ready,
        JobState::Running,
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
    for &(dep, _) in &node.deps {
        let dep_node = &run.jobs[dep];
        if dep_node.state == JobState::Completed {
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
    let limits = node.limits.capped_at(&plugin.grants().limits);
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
        upstream_artifacts: Vec::new(),
        limits,
        in_dir: None,
        spawn_depth: node.depth,
        max_spawn_depth: config.max_spawn_depth,
        plugin_lookup: Some(Arc::new(move |name: &str| {
            plugins.contains(name) || pinned.iter().any(|p| p == name)
        })),
        log_sink: None,
        cancel: Some(cancel),
        spawn_budget: Some(run.spawn_budget.clone()),
    };
    run.jobs[job].state = JobState::Running;
    fx.starts.push(Start {
        run_id: run.id.clone(),
        job,
        plugin,
        request,
        inputs,
    });
    true
}

/// Adds the jobs an attempt spawned: each runs after its parent (and sees
/// its output and artifacts), and the parent's dependents wait for it.
fn insert_children(
    run: &mut ActiveRun,
    parent: usize,
    spawned: Vec<warren_sandbox::capabilities::jobs::SpawnRequest>,
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
fn finish_run(run: &mut ActiveRun, fx: &mut Effects) {
    let to = run.final_state();
    let reason = match to {
        RunState::Cancelled => "cancelled".to_owned(),
        _ => {
            let count = |state: JobState| run.jobs.iter().filter(|j| j.state == state).count();
            format!(
                "every job ended: {} completed, {} failed, {} skipped, {} needing input, {} cancelled",
                count(JobState::Completed),
                count(JobState::Failed),
                count(JobState::Skipped),
                count(JobState::NeedsInput),
                count(JobState::Cancelled)
            )
        }
    };
    fx.changes.push(Change::RunState {
        run_id: run.id.clone(),
        from: run.state,
        to,
        reason: Some(reason),
    });
    run.state = to;
    fx.runs_finished += 1;
}

//! The scheduler: one task that owns the in-memory state of every unfinished
//! run. Each turn it takes every pending command (submissions, cancels,
//! finished attempts), decides, and starts the attempts it decided on. The
//! decisions go to the database in one transaction per commit, in order,
//! while the next turns are made.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use warren_sandbox::runtime::{AttemptFailure, JobFailure, Runtime};

use super::budgets::{WALL_TIMER, stop_for_budget};
use super::decisions::{
    Effects, HeldDocument, Refusal, Report, cancel_jobs, documents_arrived, evaluate,
    finish_attempt, finish_run, gate_timed_out, hold_for_breaker, next_ready, plugin_breaker,
    refuse_for_breaker, reopen, report_job, review_job, settle, start_job, wake,
};
use super::launch::{Completion, launch};
use super::metrics::{ALL_JOB_STATES, WAITING_RUN_STATES};
use super::parking::Parked;
use super::plugin_breakers::{Admission, BREAKER_TIMER, PluginBreakers};
use super::recovery::rebuild;
use super::run_graph::ActiveRun;
use super::run_wakers::RunWakers;
use super::{Command, EngineConfig};
use crate::catalogue::PluginRegistry;
use crate::db::runs::{self, Change};
use crate::db::{Database, DbError, documents};
use warren_vocabulary::{BudgetKind, JobState, Review};

/// How often the queue gauges of `/metrics` are recomputed.
const GAUGE_PERIOD: Duration = Duration::from_millis(100);

/// Tries of a commit before the engine stops.
const WRITE_TRIES: u32 = 5;

/// What the scheduler tells the rest of the engine.
pub(crate) struct Signals {
    /// Woken for the runs a commit stops.
    pub stopped: Arc<RunWakers>,
    /// Woken for the runs a commit adds history to.
    pub changed: Arc<RunWakers>,
    /// Bumped after every commit (new events may be readable).
    pub committed: watch::Sender<u64>,
    pub metrics: Arc<super::metrics::Metrics>,
    /// Plugins' circuit breakers: changed here, read by the API.
    pub plugin_breakers: Arc<std::sync::Mutex<PluginBreakers>>,
}

impl Drop for Signals {
    /// The scheduler has ended: nobody waits for a run in vain.
    fn drop(&mut self) {
        self.stopped.close();
        self.changed.close();
    }
}

impl Signals {
    fn breakers(&self) -> std::sync::MutexGuard<'_, PluginBreakers> {
        self.plugin_breakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Decisions on their way to the database, and whom to tell once they are
/// there.
struct Commit {
    write: std::pin::Pin<Box<dyn Future<Output = Result<(), DbError>> + Send>>,
    replies: Vec<tokio::sync::oneshot::Sender<bool>>,
    runs_stopped: Vec<String>,
    /// Runs whose history it may add to.
    runs_changed: HashSet<String>,
    /// Document scopes this commit writes to.
    document_scopes: Vec<String>,
    /// Documents it stores, which their runs then read from the story.
    written: Vec<(String, String, Arc<str>)>,
}

/// Which of `names` a story holds: a short indexed read on the scheduler's
/// thread (on its own connection), made only for agents with documents to
/// check. If the database cannot say, they are taken as there; the
/// attempt, which reads them, then finds out.
fn stored_documents(db: &Database) -> impl Fn(&str, &[String]) -> HashSet<String> + '_ {
    move |scope, names| match db.scheduler_read(|conn| documents::which_exist(conn, scope, names)) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(scope, "reading which documents exist: {e}");
            names.iter().cloned().collect()
        }
    }
}

/// Completes when the commit in flight does; never if there is none.
async fn wait_for(commit: &mut Option<Commit>) -> Result<(), DbError> {
    match commit {
        Some(commit) => (&mut commit.write).await,
        None => std::future::pending().await,
    }
}

pub(crate) struct Scheduler {
    pub(super) runtime: Arc<Runtime>,
    pub(super) db: Arc<Database>,
    pub(super) plugins: PluginRegistry,
    pub(super) config: Arc<EngineConfig>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) signals: Signals,
    pub(super) runs: HashMap<String, ActiveRun>,
    /// Runs that may have a job to start, in turn (each at most once).
    pub(super) rotation: VecDeque<String>,
    pub(super) in_rotation: std::collections::HashSet<String>,
    /// Retries waiting for their backoff: `(when, run, job)`.
    pub(super) timers: BinaryHeap<Reverse<(Instant, String, usize)>>,
    pub(super) running: usize,
    /// Shutting down: no new attempt starts.
    pub(super) draining: bool,
    /// When the queue gauges were last computed.
    pub(super) gauges_at: Instant,
    /// Something changed since; they are recomputed when the period ends.
    pub(super) gauges_stale: bool,
    pub(super) effects: Effects,
    /// Runs waiting for people, kept as rows only (see [`super::parking`]).
    pub(super) parked: HashMap<String, Parked>,
    /// Runs to park once what they decided is committed.
    pub(super) park_candidates: HashSet<String>,
    /// Ready jobs held by their plugin's open breaker, by plugin:
    /// `(run id, job)`.
    pub(super) breaker_held: HashMap<String, Vec<(String, usize)>>,
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
            parked: HashMap::new(),
            park_candidates: HashSet::new(),
            breaker_held: HashMap::new(),
        }
    }

    /// Runs a failed (or input-needing) job again, with a fresh retry
    /// budget; dependents it caused to be skipped wait for it again, and an
    /// ended run runs again.
    fn retry(&mut self, run_id: &str, job_id: &str) -> Result<(), String> {
        if !self.unpark(run_id) {
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
            let run = rebuild(
                &stored,
                &self.config,
                Instant::now(),
                warren_vocabulary::now_ms(),
            )
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
            self.update_gauges(false);
        }
        // The engine is going away: what was decided is still recorded.
        if let Some(commit) = committing {
            let _ = commit.write.await;
        }
    }

    /// `running` every turn (shutdown waits on it); the queue and the jobs
    /// (and runs) by state, which take a walk over every active run, at
    /// most every [`GAUGE_PERIOD`] (or now, when `at_once`).
    pub(super) fn update_gauges(&mut self, at_once: bool) {
        let metrics = &self.signals.metrics;
        metrics
            .running
            .store(self.running as u64, Ordering::Relaxed);
        let now = Instant::now();
        if !at_once && now.duration_since(self.gauges_at) < GAUGE_PERIOD {
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
        for &(state, n) in self.parked.values().flat_map(|p| &p.jobs) {
            if let Some(i) = ALL_JOB_STATES.iter().position(|&s| s == state) {
                by_state[i] += u64::from(n);
            }
        }
        for (gauge, n) in metrics.jobs_by_state.iter().zip(by_state) {
            gauge.store(n, Ordering::Relaxed);
        }
        for (gauge, state) in metrics.runs_waiting.iter().zip(WAITING_RUN_STATES) {
            let n = self.runs.values().filter(|run| run.state == state).count()
                + self.parked.values().filter(|p| p.state == state).count();
            gauge.store(n as u64, Ordering::Relaxed);
        }
        metrics.active_runs.store(
            (self.runs.len() + self.parked.len()) as u64,
            Ordering::Relaxed,
        );
        metrics
            .runs_in_memory
            .store(self.runs.len() as u64, Ordering::Relaxed);
    }

    /// Puts a run in the rotation unless it is there already.
    pub(super) fn enqueue(&mut self, run_id: &str) {
        if self.in_rotation.insert(run_id.to_owned()) {
            self.rotation.push_back(run_id.to_owned());
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submitted(run) => {
                run.set_spawn_budget(self.config.max_spawned_per_run);
                let run_id = run.id.clone();
                if let Some(at) = run.wall_deadline() {
                    self.timers.push(Reverse((at, run_id.clone(), WALL_TIMER)));
                }
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
            Command::DocumentsChanged { scope } => self.documents_changed(&scope),
            Command::Review {
                run_id,
                job_id,
                review,
                held,
                reply,
            } => {
                let _ = reply.send(self.review(&run_id, &job_id, review, held));
            }
            Command::Report {
                run_id,
                job_id,
                report,
                reply,
            } => {
                let _ = reply.send(self.report(&run_id, &job_id, report));
            }
        }
    }

    /// A decision on a job's output, or input given to it.
    fn review(
        &mut self,
        run_id: &str,
        job_id: &str,
        review: Review,
        held: Vec<HeldDocument>,
    ) -> Result<JobState, Refusal> {
        self.unpark(run_id);
        let Some(run) = self.runs.get_mut(run_id) else {
            // Ended runs are not in memory: nothing of them waits.
            return Err(Refusal::NotWaiting(format!(
                "job {job_id} is not waiting: its run has ended"
            )));
        };
        let Some(&job) = run.by_id.get(job_id) else {
            return Err(Refusal::NotWaiting(format!(
                "job {job_id} is not in run {run_id}"
            )));
        };
        let state = review_job(run, job, review, held, &mut self.effects)?;
        self.after_change(run_id);
        Ok(state)
    }

    /// Jobs held by `plugin`'s breaker go back to their runs' queues; the
    /// breaker decides again as each starts.
    fn release_held(&mut self, plugin: &str) {
        for (run_id, job) in self.breaker_held.remove(plugin).unwrap_or_default() {
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if run.jobs[job].state == JobState::Ready {
                run.ready.push_back(job);
                self.enqueue(&run_id);
            }
        }
    }

    /// An outside system's report of an external job.
    fn report(&mut self, run_id: &str, job_id: &str, report: Report) -> Result<JobState, Refusal> {
        self.unpark(run_id);
        let Some(run) = self.runs.get_mut(run_id) else {
            return Err(Refusal::NotWaiting(format!(
                "job {job_id} cannot be reported: its run has ended"
            )));
        };
        let Some(&job) = run.by_id.get(job_id) else {
            return Err(Refusal::NotWaiting(format!(
                "job {job_id} is not in run {run_id}"
            )));
        };
        let state = report_job(
            run,
            job,
            report,
            self.config.max_run_data_bytes,
            &mut self.effects,
        )?;
        self.after_change(run_id);
        Ok(state)
    }

    /// A run whose jobs moved outside an attempt's end: it ends if nothing
    /// is left, else says whether it runs or waits, and takes its turn.
    fn after_change(&mut self, run_id: &str) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.unfinished == 0 {
            finish_run(run, &mut self.effects);
            self.runs.remove(run_id);
            return;
        }
        wake(run, &mut self.effects);
        settle(run, &mut self.effects);
        if run.state.is_waiting() {
            self.park_candidates.insert(run_id.to_owned());
        }
        self.enqueue(run_id);
    }

    /// Documents of `scope` were written: its runs' jobs waiting for them
    /// may go on.
    pub(super) fn documents_changed(&mut self, scope: &str) {
        for run_id in self.parked_in_scope(scope) {
            self.unpark(&run_id);
        }
        let mut resumed = Vec::new();
        {
            let stored = stored_documents(&self.db);
            for run in self.runs.values_mut() {
                if run.document_scope() == scope
                    && documents_arrived(run, &stored, &mut self.effects)
                {
                    resumed.push(run.id.clone());
                }
            }
        }
        for run_id in resumed {
            self.enqueue(&run_id);
        }
    }

    fn cancel(&mut self, run_id: &str) -> bool {
        self.unpark(run_id);
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
        cancel_jobs(run, &mut self.effects);
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
            if job == BREAKER_TIMER {
                // `run_id` names a plugin here.
                self.release_held(&run_id);
                continue;
            }
            // Only a gate's timeout is set for a parked run.
            self.unpark(&run_id);
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if job == WALL_TIMER {
                stop_for_budget(run, BudgetKind::WallMs, &mut self.effects);
                self.after_change(&run_id);
            } else if run.jobs[job].state == JobState::WaitingApproval {
                if let Some(again) = gate_timed_out(run, job, &mut self.effects) {
                    self.timers.push(Reverse((again, run_id.clone(), job)));
                }
                self.after_change(&run_id);
            } else {
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
            let breaker = plugin_breaker(&self.plugins, &run.jobs[job]);
            let admission = match &breaker {
                Some(settings) => {
                    self.signals
                        .breakers()
                        .admit(&run.jobs[job].plugin, settings, Instant::now())
                }
                None => Admission::Go,
            };
            let probe = admission == Admission::Probe;
            let started = match admission {
                Admission::Go | Admission::Probe => start_job(
                    run,
                    job,
                    &self.plugins,
                    &self.config,
                    &stored_documents(&self.db),
                    &mut self.effects,
                ),
                Admission::Wait(until) => {
                    hold_for_breaker(run, job, &mut self.effects);
                    let plugin = run.jobs[job].plugin.clone();
                    if let Some(until) = until {
                        self.timers
                            .push(Reverse((until, plugin.clone(), BREAKER_TIMER)));
                    }
                    self.breaker_held
                        .entry(plugin)
                        .or_default()
                        .push((run_id.clone(), job));
                    false
                }
                Admission::Refuse(why) => {
                    refuse_for_breaker(run, job, why, &mut self.effects);
                    false
                }
            };
            if probe && !started {
                self.signals.breakers().forget_probe(&run.jobs[job].plugin);
            }
            if started {
                self.running += 1;
                // Held again later, it is said again.
                run.jobs[job].breaker_held = false;
            }
            let more = !run.ready.is_empty();
            if run.unfinished == 0 {
                finish_run(run, &mut self.effects);
                self.runs.remove(&run_id);
            } else if more {
                self.enqueue(&run_id);
                turns += 1;
            } else {
                settle(run, &mut self.effects);
                if run.state.is_waiting() {
                    self.park_candidates.insert(run_id);
                }
            }
        }
    }

    /// Commits this turn's decisions, then acts on them.
    pub(super) async fn flush(&mut self) -> Result<(), DbError> {
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
            launch(
                self.runtime.clone(),
                self.db.clone(),
                self.commands.clone(),
                self.config.attempts_on.as_ref(),
                start,
            );
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
        let runs_changed = changes
            .iter()
            .filter_map(|c| c.run_id().map(str::to_owned))
            .collect();
        let db = self.db.clone();
        let pins = std::mem::take(&mut self.effects.pins);
        // Blobs the batch names were written without a sync each: one
        // sync makes them all durable before their references are. (An
        // agent's documents have none: their bytes are in the batch.)
        let names_artifacts = changes.iter().any(|c| {
            matches!(c, Change::Artifacts { artifacts, in_documents, .. }
                if artifacts.iter().any(|a| !in_documents.contains(&a.name)))
        });
        let store = names_artifacts.then(|| self.runtime.artifact_store().clone());
        let write = Box::pin(async move {
            // Dropped (unpinned) when the write is over, either way.
            let _pins = pins;
            if let Some(store) = store {
                let synced = tokio::task::spawn_blocking(move || store.sync()).await;
                if !matches!(synced, Ok(Ok(()))) {
                    tracing::error!(
                        "syncing the artifact store failed: {synced:?}; stopping the engine"
                    );
                    return Err(DbError::Commit(
                        "the artifact store could not be synced".into(),
                    ));
                }
            }
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
            runs_stopped: std::mem::take(&mut self.effects.runs_stopped),
            runs_changed,
            document_scopes: std::mem::take(&mut self.effects.document_scopes),
            written: std::mem::take(&mut self.effects.written),
        })
    }

    /// Tells cancellers and waiters about decisions that are now durable.
    fn acknowledge(&mut self, commit: Commit) {
        // Stored now: a run reads its documents from the story again, unless
        // one of its jobs wrote a later one meanwhile.
        for (run_id, name, content) in commit.written {
            if let Some(run) = self.runs.get_mut(&run_id)
                && run
                    .documents
                    .get(&name)
                    .is_some_and(|held| Arc::ptr_eq(held, &content))
            {
                run.documents.remove(&name);
            }
        }
        for reply in commit.replies {
            let _ = reply.send(true);
        }
        self.signals
            .stopped
            .wake(commit.runs_stopped.iter().map(String::as_str));
        self.signals
            .changed
            .wake(commit.runs_changed.iter().map(String::as_str));
        self.signals.committed.send_modify(|n| *n += 1);
        // Other runs of the story may wait for what was just written.
        for scope in commit.document_scopes {
            let _ = self.commands.send(Command::DocumentsChanged { scope });
        }
        self.park_waiting();
    }

    pub(super) fn on_finished(&mut self, completion: Completion) {
        self.running = self.running.saturating_sub(1);
        let run_id = completion.run_id.clone();
        let job = completion.job;
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        let plugin = run.jobs[job].plugin.clone();
        // Only what the plugin did counts: a trap, an error it returned.
        // A limit may be the submitter's choice (a job's small fuel), so it
        // says nothing of the plugin; nor do cancels, the host's failures,
        // guards or a request for input.
        let plugins_fault = match &completion.outcome.result {
            Ok(_) => Some(false),
            Err(AttemptFailure::Trap { .. })
            | Err(AttemptFailure::Job {
                error: JobFailure::Retryable(_) | JobFailure::Permanent(_),
            }) => Some(true),
            Err(_) => None,
        };
        let fuel = completion.outcome.usage.fuel_consumed;
        let kept: u64 = match &completion.outcome.result {
            Ok(_) => completion.outcome.artifacts.iter().map(|a| a.size).sum(),
            Err(_) => 0,
        };
        let retry_at = finish_attempt(
            run,
            completion,
            &self.plugins,
            self.config.max_run_data_bytes,
            &mut self.effects,
        );
        let settings = plugin_breaker(&self.plugins, &run.jobs[job]);
        if settings.is_none() {
            // Its version went, or has no breaker now: a probe it ran is
            // over all the same, and what waited for it goes.
            self.signals.breakers().forget_probe(&plugin);
            self.release_held(&plugin);
        }
        if let Some(settings) = settings {
            let now = Instant::now();
            let release = match plugins_fault {
                Some(failed) => {
                    let (opened, closed) = self
                        .signals
                        .breakers()
                        .record(&plugin, &settings, failed, now);
                    if let Some(until) = opened {
                        tracing::warn!(plugin, "the plugin's circuit breaker opened");
                        self.timers
                            .push(Reverse((until, plugin.clone(), BREAKER_TIMER)));
                    }
                    closed
                }
                None => {
                    self.signals.breakers().forget_probe(&plugin);
                    true
                }
            };
            if release {
                self.release_held(&plugin);
            }
        }
        let Some(run) = self.runs.get_mut(&run_id) else {
            return;
        };
        run.used_fuel = run.used_fuel.saturating_add(fuel);
        // Kept only if the attempt's end kept them (the run's data limit
        // may have failed it after all).
        if matches!(
            run.jobs[job].state,
            JobState::Completed | JobState::WaitingApproval
        ) {
            run.used_artifact_bytes = run.used_artifact_bytes.saturating_add(kept);
        }
        if run.unfinished > 0
            && let Some(kind) = run.over_budget(Instant::now())
        {
            stop_for_budget(run, kind, &mut self.effects);
        }
        if let Some(at) = retry_at {
            self.timers.push(Reverse((at, run_id.clone(), job)));
        }
        // An agent asked for documents it was not given: those already
        // written go to its next attempt at once. (Asking again for what it
        // was given waits for a new version; a job is given none, so it
        // waits for a write.)
        let node = &run.jobs[job];
        if node.state == JobState::NeedsInput
            && node.is_agent
            && node
                .pending_docs
                .iter()
                .any(|name| !node.handed.contains(name))
        {
            documents_arrived(run, &stored_documents(&self.db), &mut self.effects);
        }
        if run.unfinished == 0 {
            finish_run(run, &mut self.effects);
            self.runs.remove(&run_id);
        } else {
            settle(run, &mut self.effects);
            if run.state.is_waiting() {
                self.park_candidates.insert(run_id.clone());
            }
            self.enqueue(&run_id);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

//! Picking up what a previous process left: each unfinished run rebuilt
//! from its rows, its interrupted attempts closed as failed (host restart)
//! and retried under their policy, a cancel asked for before the crash
//! carried out.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use warren_sandbox::runtime::AttemptOutcome;
use warren_vocabulary::{JobState, RunState};

use super::decisions::{cancel_jobs, evaluate, finish_run, gate_deadline, settle};
use super::launch::{Completion, host_failure};
use super::parking::Parked;
use super::run_graph::ActiveRun;
use super::scheduler_loop::Scheduler;
use super::spec::PipelineSpec;
use crate::db::DbError;
use crate::db::runs::{NewJob, NewRun, ParkedRun, StoredRun};

/// The in-memory state of a stored run.
pub(super) fn rebuild(
    stored_run: &StoredRun,
    config: &super::EngineConfig,
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
        replay_of: stored_run.replay_of.clone(),
        budget: None,
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
            approval: j.approval,
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
        node.pending_docs = stored_job.pending_docs.clone();
        node.asked = stored_job.pending_docs.clone();
        node.reworks = stored_job.reworks;
        node.waiting_since = stored_job.waiting_since;
        node.held_docs = stored_job.held_docs.clone();
        node.reviews = stored_job.reviews.clone();
        run.data_bytes += node.output.as_ref().map_or(0, |o| o.len() as u64);
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
    // Runs from before budgets were stored have their pipeline's.
    let budget = match &stored_run.budget {
        Some(json) => serde_json::from_str(json).map_err(|e| DbError::Corrupt(e.to_string()))?,
        None => spec.budget.unwrap_or_default(),
    };
    let age = Duration::from_millis(now_ms.saturating_sub(stored_run.created_at).max(0) as u64);
    run.set_budget(budget, now.checked_sub(age).unwrap_or(now));
    run.used_fuel = stored_run.fuel_used;
    run.used_artifact_bytes = stored_run.artifact_bytes;
    run.budget_exceeded = stored_run.budget_exceeded;
    run.token_budget = budget
        .max_tokens
        .map(|max| Arc::new(AtomicU64::new(max.saturating_sub(stored_run.tokens_used))));
    run.set_spawn_budget(config.max_spawned_per_run);
    // The server's guards as they are now, then the pipeline's own.
    run.set_guards(config.guards.for_pipeline(&spec), &spec);
    Ok(run)
}

impl Scheduler {
    /// Rebuilds the unfinished runs: attempts that were running when the
    /// process died are closed as failed (host restart) and retried under
    /// their policy.
    pub async fn recover(
        mut self,
        stored: Vec<StoredRun>,
        parked: Vec<ParkedRun>,
    ) -> Result<Self, DbError> {
        let count = stored.len() + parked.len();
        let now = Instant::now();
        let now_ms = warren_vocabulary::now_ms();
        // Runs waiting for people stay rows; only their gates' timeouts are
        // set (counted from when each job began to wait).
        for run in parked {
            // A wall budget runs out while its run waits as a row too.
            if let Some(at) = run.wall_deadline {
                let left = Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64);
                self.timers.push(Reverse((
                    now + left,
                    run.id.clone(),
                    super::budgets::WALL_TIMER,
                )));
            }
            for (index, since, gate) in &run.gates {
                if let Some(timeout) = gate.timeout_ms {
                    let elapsed = now_ms.saturating_sub(*since).max(0) as u64;
                    let at = now + Duration::from_millis(timeout.saturating_sub(elapsed));
                    self.timers.push(Reverse((at, run.id.clone(), *index)));
                }
            }
            self.parked.insert(
                run.id,
                Parked {
                    state: run.state,
                    scope: run.scope,
                    jobs: run.jobs,
                },
            );
        }
        for stored_run in stored {
            let run = rebuild(&stored_run, &self.config, now, now_ms)?;
            let run_id = run.id.clone();
            if let Some(at) = run.wall_deadline() {
                self.timers
                    .push(Reverse((at, run_id.clone(), super::budgets::WALL_TIMER)));
            }
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
                    ..host_failure("host restart: the process ended during the attempt".into())
                };
                self.on_finished(Completion {
                    run_id: run_id.clone(),
                    job,
                    attempt,
                    outcome,
                    uses: Vec::new(),
                    pins: None,
                    screenings: Vec::new(),
                });
            }
            // Closing its interrupted attempts may have ended the run.
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if run.cancelling {
                cancel_jobs(run, &mut self.effects);
            }
            for index in 0..run.jobs.len() {
                // A gate's timeout counts from when the job began to wait,
                // whatever happened to the process since.
                if run.jobs[index].state == JobState::WaitingApproval
                    && let Some(at) = gate_deadline(&run.jobs[index], now, now_ms)
                {
                    self.timers.push(Reverse((at, run_id.clone(), index)));
                }
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
        // Documents written while the process was down let waiting jobs go
        // on; runs left with nothing but waiting jobs say they wait.
        let waiting: HashSet<String> = self
            .runs
            .values()
            .filter(|run| run.jobs.iter().any(|j| j.state == JobState::NeedsInput))
            .map(|run| run.document_scope().to_owned())
            .chain(
                self.parked
                    .values()
                    .filter(|p| p.state == RunState::NeedsInput)
                    .map(|p| p.scope.clone()),
            )
            .collect();
        for scope in waiting {
            self.documents_changed(&scope);
        }
        for (run_id, run) in &mut self.runs {
            settle(run, &mut self.effects);
            if run.state.is_waiting() {
                self.park_candidates.insert(run_id.clone());
            }
        }
        self.flush().await?;
        // All of it is committed: the runs left waiting become rows.
        self.park_waiting();
        // Nothing else may happen for a while: the gauges say now what
        // was recovered (runs waiting for people, say).
        self.update_gauges(true);
        tracing::info!(runs = count, "recovered unfinished runs");
        Ok(self)
    }
}

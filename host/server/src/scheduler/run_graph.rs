//! The in-memory mirror of one unfinished run: its jobs, their edges, and
//! which of them can run.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::transitions::condition_met;
use crate::db::runs::{NewDep, NewJob, NewRun};
use warren_vocabulary::{
    ApprovalGate, Artifact, BudgetKind, Condition, JobState, Limits, RetryPolicy, Review,
    RunBudget, RunState,
};

pub(crate) struct Node {
    pub id: String,
    pub name: String,
    pub plugin: String,
    /// The plugin version it runs (`None`: whichever is active).
    pub plugin_digest: Option<String>,
    pub input: String,
    pub state: JobState,
    pub attempts: u32,
    /// Attempts made before the last manual retry; the retry policy counts
    /// from there.
    pub retry_base: u32,
    pub retry: RetryPolicy,
    pub limits: Limits,
    pub depth: u32,
    /// `(dependency index, condition)`.
    pub deps: Vec<(usize, Condition)>,
    pub dependents: Vec<usize>,
    /// A retry waits until then.
    pub not_before: Option<Instant>,
    pub output: Option<String>,
    pub artifacts: Vec<Artifact>,
    /// Set while an attempt runs; raising it stops the attempt.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The documents it waits for, in state `needs_input`.
    pub pending_docs: Vec<String>,
    /// What its agent asked for in its last `needs-input`: handed over
    /// with its `requires` from then on.
    pub asked: Vec<String>,
    /// The documents its last attempt was given.
    pub handed: Vec<String>,
    /// Whether its plugin, when it last started, was an agent.
    pub is_agent: bool,
    /// The run's guards check its output and documents (`screen`).
    pub screen: bool,
    /// Runs nothing here: an outside system reports it (stored as a job
    /// without a plugin).
    pub external: bool,
    /// Ready, but held by its plugin's open breaker (said once, in an
    /// event).
    pub breaker_held: bool,
    /// The job that spawned it.
    pub parent: Option<usize>,
    /// A person decides on each successful attempt's output.
    pub approval: Option<ApprovalGate>,
    /// Rejections sent back for rework since the last manual retry.
    pub reworks: u32,
    /// Since when it waits for people (ms since the epoch): a gate's
    /// timeout counts from here.
    pub waiting_since: Option<i64>,
    /// The documents its output wrote while it waits for a decision.
    pub held_docs: Vec<String>,
    /// Decisions on its output and input given to it, oldest first: its
    /// attempts and its dependents' are handed them (held here because an
    /// attempt may start before the commit that stores the latest).
    pub reviews: Vec<Review>,
}

pub(crate) struct ActiveRun {
    pub id: String,
    pub story_id: Option<String>,
    pub state: RunState,
    pub max_parallel: usize,
    pub jobs: Vec<Node>,
    pub by_id: HashMap<String, usize>,
    /// Jobs ready to start, in the order they became ready.
    pub ready: VecDeque<usize>,
    pub running: usize,
    /// Jobs spawned so far.
    pub spawned: u32,
    /// Jobs the run may still spawn, shared with its running attempts.
    pub spawn_budget: Arc<AtomicU32>,
    /// Plugins its jobs are pinned to: its attempts may spawn them even
    /// once retired.
    pub pinned_plugins: Arc<Vec<String>>,
    pub cancelling: bool,
    /// Shown at `/in` to jobs nobody spawned (see `Submission::in_dir`).
    pub in_dir: Option<std::path::PathBuf>,
    /// Jobs not yet in a terminal state.
    pub unfinished: usize,
    /// Bytes of every job's input and output so far (see
    /// `EngineConfig::max_run_data_bytes`).
    pub data_bytes: u64,
    /// Documents written by this run's jobs whose commit has not landed yet,
    /// latest by name: an agent downstream reads them here meanwhile (see
    /// `document_scope` for where they are stored); once committed, from
    /// the story, where a newer version may have come since.
    pub documents: HashMap<String, Arc<str>>,
    /// Model tokens the run may still use (`budget.max_tokens` less what
    /// its attempts used), shared with its running attempts.
    pub token_budget: Option<Arc<AtomicU64>>,
    /// The run whose recorded answers to calls out its attempts are given.
    pub replay_of: Option<String>,
    /// Its guards, the server's defaults first: they check the output and
    /// documents of the jobs marked `screen`.
    pub guards: Arc<[String]>,
    /// What the whole run may use (see `budgets`), and what it used.
    pub budget: RunBudget,
    pub used_fuel: u64,
    pub used_artifact_bytes: u64,
    /// The budget it reached: it is being stopped, and ends `failed`.
    pub budget_exceeded: Option<BudgetKind>,
    /// When it was submitted: its wall budget counts from here.
    pub submitted: Instant,
}

impl ActiveRun {
    pub fn new(
        run: &NewRun,
        max_parallel: Option<u32>,
        jobs: &[NewJob],
        deps: &[NewDep],
        state: RunState,
    ) -> Self {
        let mut graph = Self {
            id: run.id.clone(),
            story_id: run.story_id.clone(),
            state,
            max_parallel: max_parallel.map_or(usize::MAX, |m| m as usize),
            jobs: Vec::with_capacity(jobs.len()),
            by_id: HashMap::with_capacity(jobs.len()),
            ready: VecDeque::new(),
            running: 0,
            spawned: 0,
            spawn_budget: Arc::new(AtomicU32::new(0)),
            pinned_plugins: Arc::default(),
            cancelling: false,
            in_dir: None,
            unfinished: 0,
            data_bytes: 0,
            documents: HashMap::new(),
            token_budget: None,
            replay_of: run.replay_of.clone(),
            guards: Arc::from([]),
            budget: RunBudget::default(),
            used_fuel: 0,
            used_artifact_bytes: 0,
            budget_exceeded: None,
            submitted: Instant::now(),
        };
        graph.add_jobs(jobs, deps);
        graph
    }

    /// Adds jobs and edges (at submission, or spawned).
    pub fn add_jobs(&mut self, jobs: &[NewJob], deps: &[NewDep]) {
        for job in jobs {
            if job.plugin_digest.is_some() && !self.pinned_plugins.contains(&job.plugin) {
                Arc::make_mut(&mut self.pinned_plugins).push(job.plugin.clone());
            }
            let index = self.jobs.len();
            self.by_id.insert(job.id.clone(), index);
            if !job.state.is_terminal() {
                self.unfinished += 1;
            }
            if job.parent_job_id.is_some() {
                self.spawned += 1;
            }
            // An external job waits for its reports, not for a slot.
            if job.state == JobState::Ready && !job.plugin.is_empty() {
                self.ready.push_back(index);
            }
            self.data_bytes += job.input.len() as u64;
            self.jobs.push(Node {
                id: job.id.clone(),
                name: job.name.clone(),
                plugin: job.plugin.clone(),
                plugin_digest: job.plugin_digest.clone(),
                input: job.input.clone(),
                state: job.state,
                attempts: 0,
                retry_base: 0,
                retry: job.retry,
                limits: job.limits.clone(),
                depth: job.depth,
                deps: Vec::new(),
                dependents: Vec::new(),
                not_before: None,
                output: None,
                artifacts: Vec::new(),
                cancel: None,
                pending_docs: Vec::new(),
                asked: Vec::new(),
                handed: Vec::new(),
                is_agent: false,
                screen: false,
                external: job.plugin.is_empty(),
                breaker_held: false,
                parent: job
                    .parent_job_id
                    .as_ref()
                    .and_then(|id| self.by_id.get(id).copied()),
                approval: job.approval,
                reworks: 0,
                waiting_since: None,
                held_docs: Vec::new(),
                reviews: Vec::new(),
            });
        }
        for dep in deps {
            let (Some(&job), Some(&on)) =
                (self.by_id.get(&dep.job_id), self.by_id.get(&dep.depends_on))
            else {
                continue;
            };
            self.jobs[job].deps.push((on, dep.condition));
            self.jobs[on].dependents.push(job);
        }
    }

    /// Sets the run's guards, and which of its jobs they screen (by name,
    /// from the pipeline).
    pub fn set_guards(&mut self, guards: Vec<String>, spec: &super::spec::PipelineSpec) {
        for node in &mut self.jobs {
            node.screen = node.depth == 0 && spec.jobs.get(&node.name).is_some_and(|j| j.screen);
        }
        self.guards = guards.into();
    }

    /// Where the run's documents live: its story's, or, for a run without
    /// a story, a story named by the run's id (so documents an agent of the
    /// run waits for can still be written through the API).
    pub fn document_scope(&self) -> &str {
        self.story_id.as_deref().unwrap_or(&self.id)
    }

    /// What the run waits for when nothing can run until people act: no
    /// job runs or is ready or waits for a retry's backoff, and some job
    /// waits for a decision (`waiting_approval`) or else for documents or
    /// input (`needs_input`); the others not ended wait behind one.
    pub fn waiting_state(&self) -> Option<RunState> {
        if self.running > 0 || self.unfinished == 0 {
            return None;
        }
        let mut waiting = None;
        for job in &self.jobs {
            match job.state {
                JobState::Ready | JobState::Running => return None,
                JobState::Pending if job.not_before.is_some() => return None,
                JobState::WaitingApproval => waiting = Some(RunState::WaitingApproval),
                JobState::NeedsInput => {
                    waiting = waiting.or(Some(RunState::NeedsInput));
                }
                _ => {}
            }
        }
        waiting
    }

    /// Gives the run what is left of `max_spawned` after the jobs it has
    /// spawned already.
    pub fn set_spawn_budget(&self, max_spawned: u32) {
        self.spawn_budget
            .store(max_spawned.saturating_sub(self.spawned), Ordering::Relaxed);
    }

    /// What a pending job's dependencies allow now: `None` while one is
    /// still unfinished (or a retry's backoff runs), else whether it may run,
    /// with the reason when it may not.
    pub fn readiness(&self, index: usize, now: Instant) -> Option<Result<(), String>> {
        let node = &self.jobs[index];
        if node.state != JobState::Pending || node.not_before.is_some_and(|t| t > now) {
            return None;
        }
        for &(dep, condition) in &node.deps {
            let dep_state = self.jobs[dep].state;
            if !dep_state.is_terminal() {
                return None;
            }
            if !condition_met(condition, dep_state) {
                return Some(Err(format!(
                    "dependency {:?} ended {dep_state}, needed {}",
                    self.jobs[dep].name,
                    condition.as_str()
                )));
            }
        }
        Some(Ok(()))
    }
}

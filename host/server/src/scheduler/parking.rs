//! Runs waiting for people cost their rows, not memory: once a run waits
//! (for a decision, documents or input) with nothing else to do and all it
//! decided is committed, the scheduler drops its graph and keeps a few
//! words about it. Whatever acts on the run (a decision, input, a retry, a
//! cancel, a document written to its story, a gate's timeout) rebuilds it
//! from the database first, which then holds all of it.

use std::time::Instant;

use warren_vocabulary::{JobState, RunState};

use super::recovery::rebuild;
use super::run_graph::ActiveRun;
use super::scheduler_loop::Scheduler;
use crate::db::runs::{self, Change};

/// What the scheduler keeps of a parked run.
#[derive(Debug, Clone)]
pub(super) struct Parked {
    pub state: RunState,
    /// Where its documents live: writes there may let it go on.
    pub scope: String,
    /// Its jobs by state, for the gauges.
    pub jobs: Vec<(JobState, u32)>,
}

impl Parked {
    fn of(run: &ActiveRun) -> Self {
        let mut jobs: Vec<(JobState, u32)> = Vec::new();
        for job in &run.jobs {
            match jobs.iter_mut().find(|(state, _)| *state == job.state) {
                Some((_, n)) => *n += 1,
                None => jobs.push((job.state, 1)),
            }
        }
        Self {
            state: run.state,
            scope: run.document_scope().to_owned(),
            jobs,
        }
    }
}

impl Scheduler {
    /// Parks the candidates that wait with nothing else to do and nothing
    /// uncommitted: called once a commit is acknowledged, so what the
    /// database holds of them is all there is.
    pub(super) fn park_waiting(&mut self) {
        if self.park_candidates.is_empty() {
            return;
        }
        let touched: std::collections::HashSet<&str> = self
            .effects
            .changes
            .iter()
            .filter_map(Change::run_id)
            .collect();
        let mut keep = Vec::new();
        for run_id in std::mem::take(&mut self.park_candidates) {
            let Some(run) = self.runs.get(&run_id) else {
                continue;
            };
            if !run.state.is_waiting() || run.cancelling || run.waiting_state().is_none() {
                continue;
            }
            if touched.contains(run_id.as_str()) || !run.documents.is_empty() {
                // Its latest decisions are not committed yet: next time.
                keep.push(run_id);
                continue;
            }
            let parked = Parked::of(run);
            self.runs.remove(&run_id);
            self.parked.insert(run_id, parked);
        }
        self.park_candidates.extend(keep);
    }

    /// Brings a parked run back into memory, rebuilt from the database;
    /// returns whether it is there now (parked or not).
    pub(super) fn unpark(&mut self, run_id: &str) -> bool {
        let Some(parked) = self.parked.remove(run_id) else {
            return self.runs.contains_key(run_id);
        };
        let rebuilt = self
            .db
            .scheduler_read(|conn| runs::load_run(conn, run_id))
            .and_then(|stored| {
                stored
                    .map(|stored| {
                        rebuild(
                            &stored,
                            &self.config,
                            Instant::now(),
                            warren_vocabulary::now_ms(),
                        )
                    })
                    .transpose()
            });
        match rebuilt {
            Ok(Some(run)) => {
                self.runs.insert(run_id.to_owned(), run);
                // Parked again once whatever comes is committed, if it
                // still waits.
                self.park_candidates.insert(run_id.to_owned());
                true
            }
            Ok(None) => false,
            Err(e) => {
                // Left parked: the next action tries again.
                tracing::error!(run = run_id, "reading a waiting run back: {e}");
                self.parked.insert(run_id.to_owned(), parked);
                false
            }
        }
    }

    /// Parked runs whose documents live in `scope` and wait for some.
    pub(super) fn parked_in_scope(&self, scope: &str) -> Vec<String> {
        self.parked
            .iter()
            .filter(|(_, p)| p.state == RunState::NeedsInput && p.scope == scope)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

//! Run budgets: what a whole run may use (fuel, wall time, jobs, artifact
//! bytes, model tokens). Each attempt is started under what is left; once
//! the run reaches a budget its running jobs are stopped, the rest
//! cancelled, and the run ends `failed` with `budget_exceeded: KIND`.

use std::time::{Duration, Instant};

use warren_vocabulary::{BudgetKind, Limits, RunBudget};

use super::decisions::{Effects, cancel_jobs};
use super::run_graph::ActiveRun;
use crate::db::runs::Change;

/// The timer key of a run's wall budget (a job index never is this).
pub(super) const WALL_TIMER: usize = usize::MAX;

impl ActiveRun {
    /// When its wall budget runs out.
    pub(super) fn wall_deadline(&self) -> Option<Instant> {
        self.budget
            .max_wall_ms
            .and_then(|ms| self.submitted.checked_add(Duration::from_millis(ms)))
    }

    /// The budget it has reached, if any: checked after each attempt.
    pub(super) fn over_budget(&self, now: Instant) -> Option<BudgetKind> {
        let reached = |max: Option<u64>, used: u64| max.is_some_and(|max| used >= max);
        if reached(self.budget.max_fuel, self.used_fuel) {
            Some(BudgetKind::Fuel)
        } else if reached(self.budget.max_artifact_bytes, self.used_artifact_bytes) {
            Some(BudgetKind::ArtifactBytes)
        } else if self
            .budget
            .max_jobs
            .is_some_and(|max| self.jobs.len() as u64 > max)
        {
            Some(BudgetKind::Jobs)
        } else if self.wall_deadline().is_some_and(|at| now >= at) {
            Some(BudgetKind::WallMs)
        } else {
            None
        }
    }

    /// `limits` of an attempt starting now, bounded by what the budget has
    /// left of fuel and time: a single attempt cannot spend past them.
    /// (Artifact bytes are counted once kept: an attempt's own limit holds
    /// it, and the run stops once its jobs kept the budget's worth.)
    pub(super) fn within_budget(&self, mut limits: Limits, now: Instant) -> Limits {
        let left = |max: Option<u64>, used: u64| max.map(|max| max.saturating_sub(used).max(1));
        if let Some(fuel) = left(self.budget.max_fuel, self.used_fuel) {
            limits.fuel = limits.fuel.min(fuel);
        }
        if let Some(at) = self.wall_deadline() {
            let ms = at.saturating_duration_since(now).as_millis().max(1);
            limits.timeout_ms = limits.timeout_ms.min(u64::try_from(ms).unwrap_or(u64::MAX));
        }
        limits
    }

    /// Sets its budget, what it used before (a recovered run) and when it
    /// was submitted.
    pub(super) fn set_budget(&mut self, budget: RunBudget, submitted: Instant) {
        self.budget = budget;
        self.submitted = submitted;
    }
}

/// Stops `run` for reaching `kind`: as a cancel does, but it ends
/// `failed` with `budget_exceeded: KIND`.
pub(super) fn stop_for_budget(run: &mut ActiveRun, kind: BudgetKind, fx: &mut Effects) {
    if run.cancelling || run.budget_exceeded.is_some() {
        return;
    }
    run.budget_exceeded = Some(kind);
    run.cancelling = true;
    fx.changes.push(Change::BudgetExceeded {
        run_id: run.id.clone(),
        kind,
    });
    cancel_jobs(run, fx);
}

/// The budget a run gets: its pipeline's, its submission's and the
/// operator's cap, the tightest of each.
pub(super) fn budget_of(
    pipeline: Option<RunBudget>,
    submitted: Option<RunBudget>,
    cap: RunBudget,
) -> RunBudget {
    pipeline
        .unwrap_or_default()
        .tightest(submitted.unwrap_or_default())
        .tightest(cap)
}

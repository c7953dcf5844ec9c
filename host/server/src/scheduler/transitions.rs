//! Every state change of a job or a run, as pure functions of the state and
//! what happened: the scheduler asks here before it changes anything, and
//! the tables below are tested over every (state, event) pair.

use warren_sandbox::runtime::{AttemptFailure, JobFailure, LimitHit};
use warren_vocabulary::{Condition, JobState, RunState};

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// Its dependencies let it run.
    DependenciesMet,
    /// Its dependencies can no longer be met.
    DependenciesUnmet,
    /// An attempt starts.
    Started,
    /// Its plugin, or the version its run uses, is not loaded.
    PluginMissing,
    /// The attempt succeeded.
    Succeeded,
    /// The attempt succeeded and the job's gate waits for a decision.
    AwaitingApproval,
    /// A person (or a timeout) approved its output.
    Approved,
    /// Its output was rejected and rework is left: it runs again.
    SentBack,
    /// Its output was rejected for good (final, rework used up, or a
    /// timeout that fails).
    Rejected,
    /// Someone gave it the input it waited for.
    InputGiven,
    /// The attempt failed in a way worth retrying, and attempts are left.
    RetryScheduled,
    /// The attempt failed for good.
    Failed,
    /// The plugin asked for input it did not have.
    InputNeeded,
    /// An agent's required documents are not all there; no attempt starts.
    DocumentsMissing,
    /// The documents it waited for are all there.
    DocumentsArrived,
    /// Its run was cancelled, or its attempt was.
    Cancelled,
    /// Someone asked for it to run again.
    RetryRequested,
    /// A job it waits for runs again, so the reason it was skipped is gone.
    Reopened,
    /// Its plugin's circuit breaker is open and fails its attempts fast.
    BreakerOpen,
    /// An outside system reports an external job running.
    ReportedRunning,
    /// An outside system reports an external job done.
    ReportedCompleted,
    /// An outside system reports an external job failed.
    ReportedFailed,
    /// An outside system reports an external job waiting for input.
    ReportedNeedsInput,
}

impl JobEvent {
    pub const ALL: &'static [Self] = &[
        Self::DependenciesMet,
        Self::DependenciesUnmet,
        Self::Started,
        Self::PluginMissing,
        Self::Succeeded,
        Self::AwaitingApproval,
        Self::Approved,
        Self::SentBack,
        Self::Rejected,
        Self::InputGiven,
        Self::RetryScheduled,
        Self::Failed,
        Self::InputNeeded,
        Self::DocumentsMissing,
        Self::DocumentsArrived,
        Self::Cancelled,
        Self::RetryRequested,
        Self::Reopened,
        Self::BreakerOpen,
        Self::ReportedRunning,
        Self::ReportedCompleted,
        Self::ReportedFailed,
        Self::ReportedNeedsInput,
    ];
}

/// The state `event` moves a job in `from` to; `None` when the event cannot
/// happen in that state.
pub fn job_transition(from: JobState, event: JobEvent) -> Option<JobState> {
    use JobEvent as E;
    use JobState as S;
    Some(match (from, event) {
        (S::Pending, E::DependenciesMet) => S::Ready,
        (S::Pending, E::DependenciesUnmet) => S::Skipped,
        (S::Ready, E::Started) => S::Running,
        (S::Ready, E::PluginMissing | E::BreakerOpen) => S::Failed,
        (S::Running, E::Succeeded) => S::Completed,
        (S::Running, E::AwaitingApproval) => S::WaitingApproval,
        (S::WaitingApproval, E::Approved) => S::Completed,
        (S::WaitingApproval, E::SentBack) => S::Pending,
        (S::WaitingApproval, E::Rejected) => S::Failed,
        (S::NeedsInput, E::InputGiven) => S::Pending,
        (S::Running, E::RetryScheduled) => S::Pending,
        (S::Running, E::Failed) => S::Failed,
        (S::Running, E::InputNeeded) => S::NeedsInput,
        (S::Ready, E::DocumentsMissing) => S::NeedsInput,
        (S::NeedsInput, E::DocumentsArrived) => S::Pending,
        (S::Pending | S::Ready | S::Running | S::NeedsInput | S::WaitingApproval, E::Cancelled) => {
            S::Cancelled
        }
        (S::Failed | S::NeedsInput, E::RetryRequested) => S::Pending,
        (S::Skipped, E::Reopened) => S::Pending,
        (S::Ready | S::Running | S::NeedsInput, E::ReportedRunning) => S::Running,
        (S::Ready | S::Running | S::NeedsInput, E::ReportedCompleted) => S::Completed,
        (S::Ready | S::Running | S::NeedsInput, E::ReportedFailed) => S::Failed,
        (S::Ready | S::Running | S::NeedsInput, E::ReportedNeedsInput) => S::NeedsInput,
        _ => return None,
    })
}

/// What happens to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// Its first attempt starts.
    JobStarted,
    /// Every job ended, none failed.
    AllSucceeded,
    /// Every job ended, some failed or were cancelled.
    SomeFailed,
    /// Every job ended after the run was cancelled.
    Cancelled,
    /// A job of the ended run was retried.
    JobRetried,
    /// Nothing can run until documents or input arrive.
    Stalled,
    /// Nothing can run until a person decides on a job's output.
    AwaitingApproval,
    /// A job starts again after the run waited for people.
    Resumed,
}

impl RunEvent {
    pub const ALL: &'static [Self] = &[
        Self::JobStarted,
        Self::AllSucceeded,
        Self::SomeFailed,
        Self::Cancelled,
        Self::JobRetried,
        Self::Stalled,
        Self::AwaitingApproval,
        Self::Resumed,
    ];
}

/// The state `event` moves a run in `from` to; `None` when the event cannot
/// happen in that state.
pub fn run_transition(from: RunState, event: RunEvent) -> Option<RunState> {
    use RunEvent as E;
    use RunState as S;
    Some(match (from, event) {
        (S::Pending, E::JobStarted) => S::Running,
        // A waiting run ends too when its last jobs end without running
        // (a retried job whose plugin is gone, say).
        (S::Pending | S::Running | S::NeedsInput | S::WaitingApproval, E::AllSucceeded) => {
            S::Completed
        }
        (S::Pending | S::Running | S::NeedsInput | S::WaitingApproval, E::SomeFailed) => S::Failed,
        (S::Pending | S::Running | S::NeedsInput | S::WaitingApproval, E::Cancelled) => {
            S::Cancelled
        }
        // A cancelled run stays cancelled.
        (S::Completed | S::Failed, E::JobRetried) => S::Running,
        // A run waits for a decision rather than documents while any job
        // waits for one: a person is there to act.
        (S::Pending | S::Running | S::WaitingApproval, E::Stalled) => S::NeedsInput,
        (S::Pending | S::Running | S::NeedsInput, E::AwaitingApproval) => S::WaitingApproval,
        (S::NeedsInput | S::WaitingApproval, E::Resumed) => S::Running,
        _ => return None,
    })
}

/// How a run whose jobs have all ended ends.
pub fn run_ending(cancelling: bool, jobs: impl IntoIterator<Item = JobState>) -> RunEvent {
    if cancelling {
        return RunEvent::Cancelled;
    }
    let failed = jobs
        .into_iter()
        .any(|state| matches!(state, JobState::Failed | JobState::Cancelled));
    if failed {
        RunEvent::SomeFailed
    } else {
        RunEvent::AllSucceeded
    }
}

/// Whether a dependency that ended in `state` lets its dependent run.
pub fn condition_met(condition: Condition, state: JobState) -> bool {
    match condition {
        Condition::OnSuccess => state == JobState::Completed,
        Condition::OnFailure => state == JobState::Failed,
        Condition::Always => true,
    }
}

/// Retried: failures that may go away (the plugin says so, a trap, a
/// deadline, the host). Not retried: permanent errors and limits that the
/// same input would hit again.
pub fn is_retryable(failure: &AttemptFailure) -> bool {
    match failure {
        AttemptFailure::Job { error } => matches!(error, JobFailure::Retryable(_)),
        AttemptFailure::Limit { hit } => matches!(hit, LimitHit::Deadline { .. }),
        AttemptFailure::Trap { .. } | AttemptFailure::Host { .. } => true,
        AttemptFailure::Cancelled | AttemptFailure::Guard { .. } => false,
    }
}

/// What a failed attempt means for its job.
pub fn after_failure(failure: &AttemptFailure, cancelling: bool, attempts_left: bool) -> JobEvent {
    if cancelling || *failure == AttemptFailure::Cancelled {
        return JobEvent::Cancelled;
    }
    match failure {
        AttemptFailure::Job {
            error: JobFailure::NeedsInput(_),
        } => JobEvent::InputNeeded,
        f if is_retryable(f) && attempts_left => JobEvent::RetryScheduled,
        _ => JobEvent::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transition a job can make; any pair not listed has none.
    const JOB_TABLE: &[(JobState, JobEvent, JobState)] = {
        use JobEvent as E;
        use JobState as S;
        &[
            (S::Pending, E::DependenciesMet, S::Ready),
            (S::Pending, E::DependenciesUnmet, S::Skipped),
            (S::Pending, E::Cancelled, S::Cancelled),
            (S::Ready, E::Started, S::Running),
            (S::Ready, E::PluginMissing, S::Failed),
            (S::Ready, E::BreakerOpen, S::Failed),
            (S::Ready, E::Cancelled, S::Cancelled),
            (S::Running, E::Succeeded, S::Completed),
            (S::Running, E::AwaitingApproval, S::WaitingApproval),
            (S::WaitingApproval, E::Approved, S::Completed),
            (S::WaitingApproval, E::SentBack, S::Pending),
            (S::WaitingApproval, E::Rejected, S::Failed),
            (S::WaitingApproval, E::Cancelled, S::Cancelled),
            (S::NeedsInput, E::InputGiven, S::Pending),
            (S::Running, E::RetryScheduled, S::Pending),
            (S::Running, E::Failed, S::Failed),
            (S::Running, E::InputNeeded, S::NeedsInput),
            (S::Running, E::Cancelled, S::Cancelled),
            (S::Ready, E::DocumentsMissing, S::NeedsInput),
            (S::NeedsInput, E::DocumentsArrived, S::Pending),
            (S::NeedsInput, E::Cancelled, S::Cancelled),
            (S::Failed, E::RetryRequested, S::Pending),
            (S::NeedsInput, E::RetryRequested, S::Pending),
            (S::Skipped, E::Reopened, S::Pending),
            (S::Ready, E::ReportedRunning, S::Running),
            (S::Running, E::ReportedRunning, S::Running),
            (S::NeedsInput, E::ReportedRunning, S::Running),
            (S::Ready, E::ReportedCompleted, S::Completed),
            (S::Running, E::ReportedCompleted, S::Completed),
            (S::NeedsInput, E::ReportedCompleted, S::Completed),
            (S::Ready, E::ReportedFailed, S::Failed),
            (S::Running, E::ReportedFailed, S::Failed),
            (S::NeedsInput, E::ReportedFailed, S::Failed),
            (S::Ready, E::ReportedNeedsInput, S::NeedsInput),
            (S::Running, E::ReportedNeedsInput, S::NeedsInput),
            (S::NeedsInput, E::ReportedNeedsInput, S::NeedsInput),
        ]
    };

    const RUN_TABLE: &[(RunState, RunEvent, RunState)] = {
        use RunEvent as E;
        use RunState as S;
        &[
            (S::Pending, E::JobStarted, S::Running),
            (S::Pending, E::AllSucceeded, S::Completed),
            (S::Pending, E::SomeFailed, S::Failed),
            (S::Pending, E::Cancelled, S::Cancelled),
            (S::Running, E::AllSucceeded, S::Completed),
            (S::Running, E::SomeFailed, S::Failed),
            (S::Running, E::Cancelled, S::Cancelled),
            (S::Completed, E::JobRetried, S::Running),
            (S::Failed, E::JobRetried, S::Running),
            (S::Pending, E::Stalled, S::NeedsInput),
            (S::Running, E::Stalled, S::NeedsInput),
            (S::NeedsInput, E::Resumed, S::Running),
            (S::NeedsInput, E::Cancelled, S::Cancelled),
            (S::NeedsInput, E::AllSucceeded, S::Completed),
            (S::NeedsInput, E::SomeFailed, S::Failed),
            (S::Pending, E::AwaitingApproval, S::WaitingApproval),
            (S::Running, E::AwaitingApproval, S::WaitingApproval),
            (S::NeedsInput, E::AwaitingApproval, S::WaitingApproval),
            (S::WaitingApproval, E::Stalled, S::NeedsInput),
            (S::WaitingApproval, E::Resumed, S::Running),
            (S::WaitingApproval, E::Cancelled, S::Cancelled),
            (S::WaitingApproval, E::AllSucceeded, S::Completed),
            (S::WaitingApproval, E::SomeFailed, S::Failed),
        ]
    };

    #[test]
    fn every_job_state_and_event_pair_follows_the_table() {
        let mut checked = 0;
        for &state in JobState::ALL {
            for &event in JobEvent::ALL {
                let expected = JOB_TABLE
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(
                    job_transition(state, event),
                    expected,
                    "job in {state} on {event:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, JobState::ALL.len() * JobEvent::ALL.len());
    }

    #[test]
    fn every_run_state_and_event_pair_follows_the_table() {
        let mut checked = 0;
        for &state in RunState::ALL {
            for &event in RunEvent::ALL {
                let expected = RUN_TABLE
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(
                    run_transition(state, event),
                    expected,
                    "run in {state} on {event:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, RunState::ALL.len() * RunEvent::ALL.len());
    }

    #[test]
    fn ended_states_only_leave_by_a_retry_and_cancelled_ones_never() {
        for &state in JobState::ALL.iter().filter(|s| s.is_terminal()) {
            for &event in JobEvent::ALL {
                if let Some(to) = job_transition(state, event) {
                    assert!(
                        matches!(event, JobEvent::RetryRequested | JobEvent::Reopened),
                        "{state} left on {event:?}"
                    );
                    assert_eq!(to, JobState::Pending);
                }
            }
        }
        for &event in RunEvent::ALL {
            assert_eq!(run_transition(RunState::Cancelled, event), None);
        }
    }

    #[test]
    fn a_run_ends_by_its_jobs_unless_it_was_cancelled() {
        use JobState as S;
        assert_eq!(
            run_ending(false, [S::Completed, S::Skipped]),
            RunEvent::AllSucceeded
        );
        for bad in [S::Failed, S::Cancelled] {
            assert_eq!(run_ending(false, [S::Completed, bad]), RunEvent::SomeFailed);
        }
        assert_eq!(run_ending(true, [S::Completed]), RunEvent::Cancelled);
        assert_eq!(run_ending(false, []), RunEvent::AllSucceeded);
    }

    #[test]
    fn conditions_decide_on_the_dependency_outcome() {
        for &state in JobState::ALL.iter().filter(|s| s.is_terminal()) {
            assert_eq!(
                condition_met(Condition::OnSuccess, state),
                state == JobState::Completed
            );
            assert_eq!(
                condition_met(Condition::OnFailure, state),
                state == JobState::Failed
            );
            assert!(condition_met(Condition::Always, state));
        }
    }

    #[test]
    fn failures_become_retries_only_when_worth_it_and_allowed() {
        let retryable = AttemptFailure::Job {
            error: JobFailure::Retryable("busy".into()),
        };
        let permanent = AttemptFailure::Job {
            error: JobFailure::Permanent("no".into()),
        };
        let needs = AttemptFailure::Job {
            error: JobFailure::NeedsInput(vec!["doc".into()]),
        };
        let fuel = AttemptFailure::Limit {
            hit: LimitHit::Fuel { budget: 1 },
        };
        let deadline = AttemptFailure::Limit {
            hit: LimitHit::Deadline { timeout_ms: 1 },
        };
        let trap = AttemptFailure::Trap {
            message: "x".into(),
        };
        assert_eq!(
            after_failure(&retryable, false, true),
            JobEvent::RetryScheduled
        );
        assert_eq!(after_failure(&retryable, false, false), JobEvent::Failed);
        assert_eq!(
            after_failure(&deadline, false, true),
            JobEvent::RetryScheduled
        );
        assert_eq!(after_failure(&trap, false, true), JobEvent::RetryScheduled);
        assert_eq!(after_failure(&permanent, false, true), JobEvent::Failed);
        assert_eq!(after_failure(&fuel, false, true), JobEvent::Failed);
        assert_eq!(after_failure(&needs, false, true), JobEvent::InputNeeded);
        assert_eq!(after_failure(&retryable, true, true), JobEvent::Cancelled);
        assert_eq!(
            after_failure(&AttemptFailure::Cancelled, false, true),
            JobEvent::Cancelled
        );
    }
}

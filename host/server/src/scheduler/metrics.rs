//! Counters of what the engine committed, for `/metrics` (Prometheus text
//! format). The scheduler counts each batch of decisions as it sends it to
//! the database, so the figures follow the history.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::runs::Change;
use warren_sandbox::capabilities::breaker::{BreakerState, DestinationReport};
use warren_vocabulary::{Decision, JobState, RunState, Screening};

/// Upper bounds (seconds) of the attempt duration histogram.
const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0,
];

const RUN_STATES: [RunState; 3] = [RunState::Completed, RunState::Failed, RunState::Cancelled];
/// The states a job ends in (one waiting for input or a decision has not
/// ended: it is among `warren_jobs{state="needs_input"}` or
/// `warren_jobs{state="waiting_approval"}`).
const JOB_STATES: [JobState; 4] = [
    JobState::Completed,
    JobState::Failed,
    JobState::Skipped,
    JobState::Cancelled,
];

/// Every job state, in the order of [`Metrics::jobs_by_state`].
pub(crate) const ALL_JOB_STATES: [JobState; 9] = [
    JobState::Pending,
    JobState::Ready,
    JobState::Running,
    JobState::Completed,
    JobState::Failed,
    JobState::Skipped,
    JobState::Cancelled,
    JobState::NeedsInput,
    JobState::WaitingApproval,
];

/// The states a run waits for people in, in the order of
/// [`Metrics::runs_waiting`].
pub(crate) const WAITING_RUN_STATES: [RunState; 2] =
    [RunState::NeedsInput, RunState::WaitingApproval];

#[derive(Debug, Default)]
pub struct Metrics {
    runs_submitted: AtomicU64,
    runs_ended: [AtomicU64; RUN_STATES.len()],
    jobs_ended: [AtomicU64; JOB_STATES.len()],
    attempts_succeeded: AtomicU64,
    attempts_failed: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_sum_us: AtomicU64,
    fuel_consumed: AtomicU64,
    /// Gauges, set by the scheduler each turn.
    pub(crate) running: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) active_runs: AtomicU64,
    /// Active runs whose graph is in memory (the others wait as rows).
    pub(crate) runs_in_memory: AtomicU64,
    /// Jobs of the runs not yet ended, by current state.
    pub(crate) jobs_by_state: [AtomicU64; ALL_JOB_STATES.len()],
    /// Runs waiting for people, by state.
    pub(crate) runs_waiting: [AtomicU64; WAITING_RUN_STATES.len()],
    /// Reviews recorded, by decision.
    reviews: [AtomicU64; Decision::ALL.len()],
    /// Guards' verdicts, by [`VERDICTS`].
    verdicts: [AtomicU64; VERDICTS.len()],
}

/// A guard's verdicts, in the order of [`Metrics::verdicts`].
const VERDICTS: [&str; 3] = ["allow", "deny", "redact"];

impl Metrics {
    pub(crate) fn count(&self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::InsertRun(_) => {
                    self.runs_submitted.fetch_add(1, Ordering::Relaxed);
                }
                Change::RunState { to, .. } => {
                    if let Some(i) = RUN_STATES.iter().position(|s| s == to) {
                        self.runs_ended[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Change::JobState { to, .. } => {
                    if let Some(i) = JOB_STATES.iter().position(|s| s == to) {
                        self.jobs_ended[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Change::FinishAttempt {
                    succeeded, usage, ..
                } => {
                    let outcome = if *succeeded {
                        &self.attempts_succeeded
                    } else {
                        &self.attempts_failed
                    };
                    outcome.fetch_add(1, Ordering::Relaxed);
                    let seconds = usage.wall_time.as_secs_f64();
                    if let Some(i) = DURATION_BUCKETS.iter().position(|&b| seconds <= b) {
                        self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
                    }
                    self.duration_sum_us
                        .fetch_add(usage.wall_time.as_micros() as u64, Ordering::Relaxed);
                    self.fuel_consumed
                        .fetch_add(usage.fuel_consumed, Ordering::Relaxed);
                }
                Change::Review { review, .. } => {
                    if let Some(i) = Decision::ALL.iter().position(|d| *d == review.decision) {
                        self.reviews[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Change::Screened { screening, .. } => {
                    self.count_screenings(std::slice::from_ref(screening));
                }
                _ => {}
            }
        }
    }

    /// Counts guards' verdicts (those of a refused submission are stored
    /// outside any batch).
    pub(crate) fn count_screenings(&self, screenings: &[Screening]) {
        for screening in screenings {
            if let Some(i) = VERDICTS.iter().position(|v| *v == screening.verdict.name()) {
                self.verdicts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP warren_guard_verdicts_total Guards' verdicts on inputs, outputs and documents.\n# TYPE warren_guard_verdicts_total counter"
        );
        for (verdict, n) in VERDICTS.iter().zip(&self.verdicts) {
            let _ = writeln!(
                out,
                "warren_guard_verdicts_total{{verdict=\"{verdict}\"}} {}",
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_runs_submitted_total Runs accepted.\n# TYPE warren_runs_submitted_total counter\nwarren_runs_submitted_total {}",
            get(&self.runs_submitted)
        );
        let _ = writeln!(
            out,
            "# HELP warren_runs_ended_total Runs that ended, by final state.\n# TYPE warren_runs_ended_total counter"
        );
        for (state, n) in RUN_STATES.iter().zip(&self.runs_ended) {
            let _ = writeln!(
                out,
                "warren_runs_ended_total{{state=\"{state}\"}} {}",
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_jobs_ended_total Jobs that ended, by final state.\n# TYPE warren_jobs_ended_total counter"
        );
        for (state, n) in JOB_STATES.iter().zip(&self.jobs_ended) {
            let _ = writeln!(
                out,
                "warren_jobs_ended_total{{state=\"{state}\"}} {}",
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_attempts_total Attempts that ended, by outcome.\n# TYPE warren_attempts_total counter\nwarren_attempts_total{{outcome=\"succeeded\"}} {}\nwarren_attempts_total{{outcome=\"failed\"}} {}",
            get(&self.attempts_succeeded),
            get(&self.attempts_failed)
        );
        let _ = writeln!(
            out,
            "# HELP warren_attempt_duration_seconds Wall time of attempts.\n# TYPE warren_attempt_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            cumulative += get(n);
            let _ = writeln!(
                out,
                "warren_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = get(&self.attempts_succeeded) + get(&self.attempts_failed);
        let _ = writeln!(
            out,
            "warren_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nwarren_attempt_duration_seconds_sum {}\nwarren_attempt_duration_seconds_count {count}",
            get(&self.duration_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP warren_fuel_consumed_total Fuel consumed by attempts.\n# TYPE warren_fuel_consumed_total counter\nwarren_fuel_consumed_total {}",
            get(&self.fuel_consumed)
        );
        let _ = writeln!(
            out,
            "# HELP warren_jobs Jobs of the runs not yet ended, by current state.\n# TYPE warren_jobs gauge"
        );
        for (state, n) in ALL_JOB_STATES.iter().zip(&self.jobs_by_state) {
            let _ = writeln!(out, "warren_jobs{{state=\"{state}\"}} {}", get(n));
        }
        let _ = writeln!(
            out,
            "# HELP warren_runs_waiting Runs waiting for people (documents, input, a decision), by state.\n# TYPE warren_runs_waiting gauge"
        );
        for (state, n) in WAITING_RUN_STATES.iter().zip(&self.runs_waiting) {
            let _ = writeln!(out, "warren_runs_waiting{{state=\"{state}\"}} {}", get(n));
        }
        let _ = writeln!(
            out,
            "# HELP warren_reviews_total Decisions and input recorded, by decision.\n# TYPE warren_reviews_total counter"
        );
        for (decision, n) in Decision::ALL.iter().zip(&self.reviews) {
            let _ = writeln!(
                out,
                "warren_reviews_total{{decision=\"{decision}\"}} {}",
                get(n)
            );
        }
        let tokens = &warren_sandbox::capabilities::models::TOKENS;
        let _ = writeln!(
            out,
            "# HELP warren_model_tokens_total Model tokens plugins' calls used: of the prompts (in) and of the answers (out).\n# TYPE warren_model_tokens_total counter\nwarren_model_tokens_total{{direction=\"in\"}} {}\nwarren_model_tokens_total{{direction=\"out\"}} {}",
            get(&tokens.input),
            get(&tokens.output)
        );
        let _ = writeln!(
            out,
            "# HELP warren_model_calls_total Model calls: answered, failed (sent, no completion), or refused before sending (a token budget, an open breaker).\n# TYPE warren_model_calls_total counter\nwarren_model_calls_total{{outcome=\"answered\"}} {}\nwarren_model_calls_total{{outcome=\"failed\"}} {}\nwarren_model_calls_total{{outcome=\"refused\"}} {}",
            get(&tokens.calls),
            get(&tokens.failed),
            get(&tokens.refused)
        );
        let outbound = &warren_sandbox::capabilities::outbound::OUTBOUND;
        let _ = writeln!(
            out,
            "# HELP warren_outbound_requests_total Plugins' HTTP requests: sent, denied (no grant names the destination; never sent), cut (by a job's deadline or cancel), refused (their destination's breaker was open; never sent).\n# TYPE warren_outbound_requests_total counter"
        );
        for (outcome, n) in [
            ("sent", &outbound.sent),
            ("denied", &outbound.denied),
            ("cut", &outbound.cut),
            ("refused", &outbound.refused),
        ] {
            let _ = writeln!(
                out,
                "warren_outbound_requests_total{{outcome=\"{outcome}\"}} {}",
                get(n)
            );
        }
        for (name, help, value) in [
            (
                "warren_attempts_running",
                "Attempts running now.",
                &self.running,
            ),
            (
                "warren_jobs_queued",
                "Jobs ready and waiting for a slot.",
                &self.queued,
            ),
            (
                "warren_runs_active",
                "Runs not yet ended.",
                &self.active_runs,
            ),
            (
                "warren_runs_in_memory",
                "Runs not yet ended whose graph the scheduler holds; those waiting for people with nothing else to do are kept as rows only.",
                &self.runs_in_memory,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                get(value)
            );
        }
        out
    }
}

/// Each outbound destination's circuit breaker, for `/metrics`: 1 when
/// open (or letting its one probe through), 0 when closed.
pub fn render_breakers(report: &[DestinationReport]) -> String {
    let mut out = String::from(
        "# HELP warren_outbound_breaker_open Whether an outbound destination's circuit breaker is open (1) or closed (0).\n# TYPE warren_outbound_breaker_open gauge\n",
    );
    for destination in report {
        let open = u8::from(destination.state != BreakerState::Closed);
        // A destination is `host:port`, from a granted URL: no quote or
        // backslash, which the label would have to escape.
        let _ = writeln!(
            out,
            "warren_outbound_breaker_open{{destination=\"{}\"}} {open}",
            destination.destination.replace(['"', '\\', '\n'], "_")
        );
    }
    out
}

/// `warren_plugin_breaker_open{plugin}`: 1 for each plugin whose circuit
/// breaker is open or half open (plugins whose breaker is closed are not
/// listed).
pub fn render_plugin_breakers(open: &[String]) -> String {
    let mut out = String::from(
        "# HELP warren_plugin_breaker_open Plugins whose circuit breaker is open or half open.\n# TYPE warren_plugin_breaker_open gauge\n",
    );
    for plugin in open {
        let _ = writeln!(out, "warren_plugin_breaker_open{{plugin=\"{plugin}\"}} 1");
    }
    out
}

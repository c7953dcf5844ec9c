//! How jobs of a pipeline depend on each other and are retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a dependency lets its dependent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency completed.
    #[default]
    OnSuccess,
    /// The dependency failed.
    OnFailure,
    /// The dependency ended, whatever the outcome.
    Always,
}

crate::text_enum!(Condition {
    OnSuccess => "on_success",
    OnFailure => "on_failure",
    Always => "always",
});

/// How often and how fast a job is retried after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled at each further retry.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 for the first retry): doubles
    /// each time up to the maximum, with equal jitter so retries of many
    /// jobs do not land together. `unit` is a random number in [0, 1).
    pub fn backoff(&self, next_attempt: u32, unit: f64) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(32);
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_backoff_ms);
        let half = base as f64 / 2.0;
        Duration::from_millis((half + half * unit.clamp(0.0, 1.0)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        assert_eq!(policy.backoff(2, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(2, 0.999_999), Duration::from_millis(99));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(4, 0.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(9, 0.0), Duration::from_millis(500));
        assert_eq!(policy.backoff(60, 1.0), Duration::from_millis(1_000));
    }
}

//! What a whole run may use, over all its attempts and jobs.

use serde::{Deserialize, Serialize};

/// A run's budget: each limit is optional, and a run stops (its running
/// jobs stopped, the rest cancelled, the run `failed` with reason
/// `budget_exceeded: KIND`) once it reaches one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunBudget {
    /// Fuel all its attempts may consume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_fuel: Option<u64>,
    /// Milliseconds from its submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_wall_ms: Option<u64>,
    /// Jobs in all, spawned ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_jobs: Option<u64>,
    /// Bytes of artifacts its jobs keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_artifact_bytes: Option<u64>,
    /// Model tokens (prompts and answers) its calls may use in all; a call
    /// that could pass it fails with `limit-exceeded`, unsent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_tokens: Option<u64>,
}

/// Which budget a run reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    Fuel,
    WallMs,
    Jobs,
    ArtifactBytes,
    Tokens,
}

crate::text_enum!(BudgetKind {
    Fuel => "fuel",
    WallMs => "wall_ms",
    Jobs => "jobs",
    ArtifactBytes => "artifact_bytes",
    Tokens => "tokens",
});

impl RunBudget {
    /// Each limit the tighter of the two (an absent one is no limit).
    pub fn tightest(self, other: Self) -> Self {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            max_fuel: min(self.max_fuel, other.max_fuel),
            max_wall_ms: min(self.max_wall_ms, other.max_wall_ms),
            max_jobs: min(self.max_jobs, other.max_jobs),
            max_artifact_bytes: min(self.max_artifact_bytes, other.max_artifact_bytes),
            max_tokens: min(self.max_tokens, other.max_tokens),
        }
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A limit of 0 (nothing could run under it), or one past what is
    /// stored as a signed 64-bit number, named.
    pub fn check(&self) -> Result<(), String> {
        for (kind, value) in self.limits() {
            if value == Some(0) {
                return Err(format!("budget.max_{kind} must be at least 1"));
            }
            if value.is_some_and(|v| v > i64::MAX as u64) {
                return Err(format!("budget.max_{kind} must be at most {}", i64::MAX));
            }
        }
        Ok(())
    }

    /// Each limit with its kind.
    pub fn limits(&self) -> [(BudgetKind, Option<u64>); 5] {
        [
            (BudgetKind::Fuel, self.max_fuel),
            (BudgetKind::WallMs, self.max_wall_ms),
            (BudgetKind::Jobs, self.max_jobs),
            (BudgetKind::ArtifactBytes, self.max_artifact_bytes),
            (BudgetKind::Tokens, self.max_tokens),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_budget_keeps_each_smaller_limit() {
        let run = RunBudget {
            max_fuel: Some(10),
            max_jobs: Some(5),
            ..RunBudget::default()
        };
        let policy = RunBudget {
            max_fuel: Some(7),
            max_wall_ms: Some(1_000),
            ..RunBudget::default()
        };
        assert_eq!(
            run.tightest(policy),
            RunBudget {
                max_fuel: Some(7),
                max_wall_ms: Some(1_000),
                max_jobs: Some(5),
                ..RunBudget::default()
            }
        );
        assert!(RunBudget::default().is_empty());
        let zero = RunBudget {
            max_jobs: Some(0),
            ..RunBudget::default()
        };
        assert_eq!(
            zero.check(),
            Err("budget.max_jobs must be at least 1".into())
        );
        for kind in BudgetKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::json!(kind.as_str()))
            );
        }
    }
}

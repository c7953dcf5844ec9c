//! Warren's ground floor: the words every layer shares (run and job states,
//! dependency conditions, retry policies, limits, usage, artifact
//! references, plugin kinds, ids, time and names). It depends on serde and
//! uuid only, and nothing here knows about wasm, SQLite or HTTP.
//!
//! ```
//! use warren_vocabulary::{JobState, Limits, LimitsSpec};
//!
//! let limits = LimitsSpec { timeout_ms: Some(500), ..LimitsSpec::default() }
//!     .resolve(&Limits::default());
//! assert_eq!(limits.timeout_ms, 500);
//! assert_eq!(JobState::parse("needs_input"), Some(JobState::NeedsInput));
//! ```

mod agent;
mod artifact;
mod budget;
mod guard;
mod id;
mod limits;
pub mod names;
mod pipeline;
mod plugin;
mod review;
mod state;
pub mod text;
mod usage;

pub use agent::{AgentInfo, MAX_AGENT_DOCUMENTS};
pub use artifact::Artifact;
pub use budget::{BudgetKind, RunBudget};
pub use guard::{GuardFinding, GuardSubjectKind, GuardVerdict, Screening};
pub use id::{new_id, now_ms};
pub use limits::{Limits, LimitsSpec};
pub use pipeline::{Condition, RetryPolicy};
pub use plugin::{MemoryScope, PluginKind};
pub use review::{
    ApprovalGate, Decision, MAX_COMMENT_CHARS, MAX_REVIEW_DATA_BYTES, MAX_REVIEWS_HANDED,
    OnTimeout, Review, Reviewer, Role,
};
pub use state::{JobState, RunState};
pub use usage::Usage;

/// Enums stored and shown as snake_case text: one `as_str`, one `parse`,
/// `Display`, and `ALL` (every variant, for exhaustive tests). Exported so
/// every crate of the host converts its enums the same way; each text must
/// be serde's form of its variant (test it over `ALL`).
#[macro_export]
macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)* _ => None }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text forms and serde's forms are one and the same.
    fn same_forms<T: serde::Serialize + Copy>(all: &[T], as_str: impl Fn(T) -> &'static str) {
        for &value in all {
            let json = serde_json::to_string(&value).expect("serialize");
            assert_eq!(json, format!("\"{}\"", as_str(value)));
        }
    }

    #[test]
    fn text_forms_match_serde_and_parse_back() {
        same_forms(RunState::ALL, RunState::as_str);
        same_forms(JobState::ALL, JobState::as_str);
        same_forms(Condition::ALL, Condition::as_str);
        same_forms(PluginKind::ALL, PluginKind::as_str);
        same_forms(MemoryScope::ALL, MemoryScope::as_str);
        same_forms(Role::ALL, Role::as_str);
        same_forms(Decision::ALL, Decision::as_str);
        for &state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        for &state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("Completed"), None);
    }
}

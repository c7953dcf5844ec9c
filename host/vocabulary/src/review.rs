//! People in a run: approval gates on jobs, the roles that may decide
//! them, and the reviews (decisions and input) kept on record.

use serde::{Deserialize, Serialize};

/// What a bearer token may do. For deciding a gate they rank client <
/// approver < admin: a gate names the least role that may decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs, decisions, input and reading.
    Client,
    /// Decisions, input and reading only: may not submit, cancel, retry or
    /// write documents.
    Approver,
    /// Everything a client may do, plus templates, plugins and configuration.
    Admin,
}

crate::text_enum!(Role {
    Client => "client",
    Approver => "approver",
    Admin => "admin",
});

impl Role {
    /// Whether this role may decide a gate that asks for `least`.
    pub fn may_decide(self, least: Role) -> bool {
        self.rank() >= least.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Client => 0,
            Self::Approver => 1,
            Self::Admin => 2,
        }
    }
}

/// Most reworks a gate may allow.
pub const MAX_REWORK: u32 = 100;
/// Longest a gate may wait for a decision: 30 days.
pub const MAX_GATE_TIMEOUT_MS: u64 = 30 * 24 * 3_600_000;
/// Longest comment a review keeps, in characters.
pub const MAX_COMMENT_CHARS: usize = 16 << 10;
/// Largest `data` a review carries, as JSON (more belongs in a document).
pub const MAX_REVIEW_DATA_BYTES: usize = 64 << 10;
/// A job's latest reviews handed to its attempts (and to its dependents')
/// and listed in its view: every review stays on record, but a job given
/// input again and again does not grow what each attempt is handed.
pub const MAX_REVIEWS_HANDED: usize = 32;

/// A person must approve a job's output before its dependents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalGate {
    /// `false` leaves the job ungated (as if there were no `approval`).
    pub required: bool,
    /// How long the job waits for a decision; for ever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2_592_000_000u64))]
    pub timeout_ms: Option<u64>,
    /// What a timeout does: `fail` (default) fails the job; `reject` is a
    /// rejection on record by `warren`, reworked as a person's would be.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// Rejections that send the job back for rework; the next one fails it.
    #[serde(default = "default_max_rework")]
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub max_rework: u32,
    /// The least role that may decide: `client` (default), `approver` or
    /// `admin`.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_max_rework() -> u32 {
    3
}

fn default_role() -> Role {
    Role::Client
}

impl ApprovalGate {
    /// Why the gate cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.max_rework > MAX_REWORK {
            return Err(format!("max_rework is at most {MAX_REWORK}"));
        }
        match self.timeout_ms {
            Some(0) => Err("timeout_ms must be at least 1".into()),
            Some(ms) if ms > MAX_GATE_TIMEOUT_MS => Err(format!(
                "timeout_ms is at most {MAX_GATE_TIMEOUT_MS} (30 days)"
            )),
            _ => Ok(()),
        }
    }
}

/// What a gate does when nobody decides in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Reject,
    #[default]
    Fail,
}

/// What a review says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The output is accepted: the job completes.
    Approve,
    /// The output is refused: reworked, or failed when final.
    Reject,
    /// Input given to a job that waited for it.
    Input,
}

crate::text_enum!(Decision {
    Approve => "approve",
    Reject => "reject",
    Input => "input",
});

/// Who a review is from: a token's name and role, or Warren itself (a
/// gate's timeout) with no role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reviewer {
    /// The token's name; `None` on a server without tokens, and for Warren.
    pub name: Option<String>,
    /// `None` when Warren decided (a timeout).
    pub role: Option<Role>,
}

impl Reviewer {
    /// A gate's timeout deciding.
    pub fn warren() -> Self {
        Self {
            name: Some("warren".into()),
            role: None,
        }
    }
}

/// One decision on a job's output, or input given to it, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    pub decision: Decision,
    /// A rejection that failed the job at once.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub comments: Option<String>,
    /// JSON the reviewer added (kept as text).
    pub data: Option<String>,
    pub by: Reviewer,
    /// When it was recorded, ms since the Unix epoch.
    pub at: i64,
    /// The attempt whose output it decided on (the last one, for input).
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_client_approver_admin_for_deciding() {
        assert!(Role::Admin.may_decide(Role::Admin));
        assert!(Role::Admin.may_decide(Role::Client));
        assert!(Role::Approver.may_decide(Role::Approver));
        assert!(!Role::Approver.may_decide(Role::Admin));
        assert!(!Role::Client.may_decide(Role::Approver));
        assert!(Role::Client.may_decide(Role::Client));
    }

    #[test]
    fn a_gate_takes_defaults_and_refuses_what_it_cannot_use() {
        let gate: ApprovalGate = serde_json::from_str(r#"{"required": true}"#).unwrap();
        assert_eq!(gate.max_rework, 3);
        assert_eq!(gate.role, Role::Client);
        assert_eq!(gate.on_timeout, OnTimeout::Fail);
        assert_eq!(gate.timeout_ms, None);
        assert!(gate.check().is_ok());
        let zero = ApprovalGate {
            timeout_ms: Some(0),
            ..gate
        };
        assert!(zero.check().unwrap_err().contains("at least 1"));
        let many = ApprovalGate {
            max_rework: 101,
            ..gate
        };
        assert!(many.check().is_err());
        assert!(
            serde_json::from_str::<ApprovalGate>(r#"{"required": true, "role": "root"}"#).is_err()
        );
        assert!(serde_json::from_str::<ApprovalGate>(r#"{"required": true, "extra": 1}"#).is_err());
    }
}

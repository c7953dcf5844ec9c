//! What a guard plugin says of the text it checks.

use serde::{Deserialize, Serialize};

/// What a guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GuardSubjectKind {
    /// A run's input, before it is stored.
    RunInput,
    /// A job's output, before its dependents get it.
    JobOutput,
    /// A document an agent wrote, before it becomes a story version.
    Document,
}

crate::text_enum!(GuardSubjectKind {
    RunInput => "run_input",
    JobOutput => "job_output",
    Document => "document",
});

/// Something a guard found: its kind and where, never the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuardFinding {
    /// e.g. `pii.card` or `injection.override`.
    pub category: String,
    /// Byte offset in the text checked.
    pub start: u32,
    /// Length in bytes.
    pub length: u32,
}

/// A guard's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum GuardVerdict {
    Allow,
    Deny {
        category: String,
        reason: String,
        findings: Vec<GuardFinding>,
    },
    /// `content` replaces the text checked.
    Redact {
        content: String,
        findings: Vec<GuardFinding>,
    },
}

impl GuardVerdict {
    /// The verdict's name: `allow`, `deny` or `redact`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny { .. } => "deny",
            Self::Redact { .. } => "redact",
        }
    }

    /// What was found.
    pub fn findings(&self) -> &[GuardFinding] {
        match self {
            Self::Allow => &[],
            Self::Deny { findings, .. } | Self::Redact { findings, .. } => findings,
        }
    }
}

/// One guard's verdict on one text, as Warren records it: the text's
/// sha256, never the text (a redaction's new text is kept where it is
/// used, not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screening {
    pub guard: String,
    pub subject: GuardSubjectKind,
    /// The pipeline's name, the job's or the document's.
    pub origin: String,
    /// sha256 of the text checked, hex.
    pub sha256: String,
    pub verdict: GuardVerdict,
}

impl Screening {
    /// `category` and `reason` of a denial.
    pub fn denial(&self) -> Option<(&str, &str)> {
        match &self.verdict {
            GuardVerdict::Deny {
                category, reason, ..
            } => Some((category, reason)),
            _ => None,
        }
    }
}

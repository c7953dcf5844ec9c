//! Run and job states, as stored and as shown to clients.

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    Running,
    /// Nothing can run until documents arrive: every job not ended waits
    /// for documents (`needs_input`) or for such a job.
    NeedsInput,
    /// Nothing can run until a person decides: some job waits for a
    /// decision, and every other job not ended waits for people too.
    WaitingApproval,
    Completed,
    Failed,
    Cancelled,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its dependencies (or for a retry's backoff).
    Pending,
    /// Dependencies met; waiting for a slot.
    Ready,
    Running,
    Completed,
    Failed,
    /// Its dependencies can no longer be met.
    Skipped,
    Cancelled,
    /// Waits for documents (its `pending_docs`) or for input: it goes on by
    /// itself when the documents are written, or when someone gives it
    /// input or retries it.
    NeedsInput,
    /// Its attempt succeeded and its gate waits for a decision; its output
    /// and artifacts are held from its dependents until it is approved.
    WaitingApproval,
}

crate::text_enum!(RunState {
    Pending => "pending",
    Running => "running",
    NeedsInput => "needs_input",
    WaitingApproval => "waiting_approval",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

crate::text_enum!(JobState {
    Pending => "pending",
    Ready => "ready",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
    NeedsInput => "needs_input",
    WaitingApproval => "waiting_approval",
});

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Ended, or waiting for people (documents, input, a decision):
    /// nothing happens until someone acts.
    pub fn has_stopped(self) -> bool {
        self.is_terminal() || self.is_waiting()
    }

    /// Waiting for people: `needs_input` or `waiting_approval`.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::NeedsInput | Self::WaitingApproval)
    }
}

impl JobState {
    /// Waiting for people: `needs_input` or `waiting_approval`.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::NeedsInput | Self::WaitingApproval)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

use crate::bindings::types;

/// Why a job or an agent call failed. The variant tells the scheduler what to
/// do next: retry, give up, or wait for input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A transient failure; the scheduler may try again.
    Retryable(String),
    /// Trying again cannot help.
    Permanent(String),
    /// The job needs these things to go on.
    NeedsInput(Vec<String>),
}

impl Error {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// The job cannot go on without these inputs.
    pub fn needs_input<I, S>(needs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::NeedsInput(needs.into_iter().map(Into::into).collect())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retryable(m) => write!(f, "retryable: {m}"),
            Self::Permanent(m) => write!(f, "permanent: {m}"),
            Self::NeedsInput(needs) => write!(f, "needs input: {}", needs.join(", ")),
        }
    }
}

impl std::error::Error for Error {}

/// A host call was refused or failed.
pub type HostError = types::HostError;

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Unavailable(m) => Self::Retryable(format!("host unavailable: {m}")),
            HostError::AccessDenied(m) => Self::Permanent(format!("access denied: {m}")),
            HostError::NotFound(m) => Self::Permanent(format!("not found: {m}")),
            HostError::Invalid(m) => Self::Permanent(format!("invalid: {m}")),
            HostError::LimitExceeded(m) => Self::Permanent(format!("limit exceeded: {m}")),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Permanent(format!("JSON: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Permanent(format!("I/O: {e}"))
    }
}

impl From<Error> for types::JobError {
    fn from(e: Error) -> Self {
        match e {
            Error::Retryable(m) => Self::Retryable(m),
            Error::Permanent(m) => Self::Permanent(m),
            Error::NeedsInput(needs) => Self::NeedsInput(needs),
        }
    }
}

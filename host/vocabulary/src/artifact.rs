use serde::Serialize;

/// An artifact as recorded by the host: a name in its producer's space and
/// the sha256 of its content in the content-addressed store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    /// Name of the job that produced it.
    pub producer: String,
}

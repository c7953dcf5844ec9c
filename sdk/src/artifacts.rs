//! Content-addressed artifacts. Files left in `/out` also become artifacts
//! when the job succeeds; these functions are for bytes held in memory.

use crate::Error;
use crate::bindings::job::warren::plugin::artifacts as wit;

pub use crate::bindings::types::ArtifactInfo;

/// Stores `data` as an artifact of this job named `name` (relative, `/`-separated).
pub fn put(name: &str, data: &[u8]) -> Result<ArtifactInfo, Error> {
    Ok(wit::put(name, data)?)
}

/// Reads an artifact of this job or of an upstream job (`<job>/<name>`).
pub fn get(name: &str) -> Result<Vec<u8>, Error> {
    Ok(wit::get(name)?)
}

/// Artifacts this job can read.
pub fn list() -> Result<Vec<ArtifactInfo>, Error> {
    Ok(wit::list()?)
}

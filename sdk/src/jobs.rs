//! Spawning child jobs and reporting progress (job world only).

use serde::Serialize;

use crate::Error;
use crate::bindings::job::warren::plugin::jobs as wit;

/// Asks the host to run `plugin` with `input` after this job; returns the
/// child job's id.
pub fn spawn<T: Serialize + ?Sized>(
    plugin: &str,
    input: &T,
    reason: &str,
) -> Result<String, Error> {
    let input = serde_json::to_string(input)?;
    Ok(wit::spawn(plugin, &input, reason)?)
}

/// Reports progress (0 to 100) with a short summary.
pub fn progress(percent: u8, summary: &str) {
    wit::progress(percent.min(100), summary);
}

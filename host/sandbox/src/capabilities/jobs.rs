//! `warren:plugin/jobs`: spawning child jobs and reporting progress. A spawn
//! is only recorded here; whoever runs the attempt decides when the child
//! runs (after its parent).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use warren_vocabulary::text;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::jobs::Host;
use crate::bindings::types::HostError;

/// Longest spawn reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4 << 10;
/// Longest progress summary, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 1 << 10;
/// Largest input of a spawned job, in bytes.
pub const MAX_SPAWN_INPUT_BYTES: usize = 1 << 20;

/// A child job asked for by a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpawnRequest {
    pub job_id: String,
    pub plugin: String,
    /// JSON input, checked to parse.
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub percent: u8,
    pub summary: String,
}

/// Tells whether a plugin name can be spawned.
pub type PluginLookup = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What one attempt may spawn.
#[derive(Clone)]
pub struct JobsCtx {
    /// Whether the plugin's grants allow spawning at all.
    pub spawn_granted: bool,
    /// How deep this job is in its spawn tree (0 for a job nobody spawned).
    pub depth: u32,
    pub max_depth: u32,
    /// Children this attempt may spawn.
    pub max_spawned: u32,
    pub plugin_exists: PluginLookup,
    /// Jobs the whole run may still spawn, shared by its attempts.
    pub run_budget: Option<Arc<AtomicU32>>,
}

impl std::fmt::Debug for JobsCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsCtx")
            .field("depth", &self.depth)
            .field("max_depth", &self.max_depth)
            .field("max_spawned", &self.max_spawned)
            .finish_non_exhaustive()
    }
}

/// Per-attempt state of the jobs capability.
pub struct JobsState {
    grant: JobsCtx,
    pub spawned: Vec<SpawnRequest>,
    pub progress: Option<Progress>,
}

impl JobsState {
    pub fn new(grant: JobsCtx) -> Self {
        Self {
            grant,
            spawned: Vec::new(),
            progress: None,
        }
    }

    fn spawn(
        &mut self,
        plugin: String,
        input: String,
        reason: String,
    ) -> Result<String, HostError> {
        if !self.grant.spawn_granted {
            return Err(HostError::AccessDenied(
                "this plugin is not granted spawn (its manifest or the operator's policy)".into(),
            ));
        }
        if self.grant.depth >= self.grant.max_depth {
            return Err(HostError::LimitExceeded(format!(
                "spawned jobs nest at most {} deep",
                self.grant.max_depth
            )));
        }
        if self.spawned.len() as u32 >= self.grant.max_spawned {
            return Err(HostError::LimitExceeded(format!(
                "an attempt spawns at most {} jobs",
                self.grant.max_spawned
            )));
        }
        if !warren_vocabulary::names::is_valid_plugin_name(&plugin) {
            return Err(HostError::Invalid(format!(
                "{} is not a plugin name",
                text::shown(&plugin)
            )));
        }
        if !(self.grant.plugin_exists)(&plugin) {
            return Err(HostError::NotFound(format!("no plugin named {plugin:?}")));
        }
        if input.len() > MAX_SPAWN_INPUT_BYTES {
            return Err(HostError::LimitExceeded(format!(
                "a spawned job's input is at most {MAX_SPAWN_INPUT_BYTES} bytes"
            )));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(HostError::Invalid(format!("input is not JSON: {e}")));
        }
        if let Err(e) = text::check_json_depth(&input) {
            return Err(HostError::Invalid(format!("input: {e}")));
        }
        if reason.len() > MAX_REASON_BYTES {
            return Err(HostError::Invalid(format!(
                "reasons are at most {MAX_REASON_BYTES} bytes"
            )));
        }
        // Taken last, so a refused call costs the run nothing.
        if let Some(budget) = &self.grant.run_budget
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_err()
        {
            return Err(HostError::LimitExceeded(
                "this run has spawned as many jobs as it may".into(),
            ));
        }
        let job_id = warren_vocabulary::new_id();
        self.spawned.push(SpawnRequest {
            job_id: job_id.clone(),
            plugin,
            input,
            reason,
        });
        Ok(job_id)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
impl Host for JobsState {
    #[tracing::instrument(name = "warren.jobs.spawn", skip(self, input, reason))]
    fn spawn(
        &mut self,
        plugin: String,
        input: String,
        reason: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        // `input` is bounded by the guest's memory cap and kept only if it parses.
        Ok(JobsState::spawn(self, plugin, input, reason))
    }

    #[tracing::instrument(name = "warren.jobs.progress", skip(self, summary))]
    fn progress(&mut self, percent: u8, summary: String) -> wasmtime::Result<()> {
        self.progress = Some(Progress {
            percent: percent.min(100),
            summary: text::prefix(&summary, MAX_SUMMARY_BYTES).to_owned(),
        });
        Ok(())
    }
}

/// Adds `warren:plugin/jobs`; `get` finds this capability's state in the
/// store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut JobsState,
) -> anyhow::Result<()> {
    crate::bindings::jobs::add_to_linker::<T, HasSelf<JobsState>>(linker, get)?;
    Ok(())
}

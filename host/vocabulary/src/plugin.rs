//! What kind of plugin a component is, and the memory scopes it may use.

use serde::{Deserialize, Serialize};

/// Which world a plugin targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Job,
    Agent,
    /// A policy check of text (see [`crate::GuardVerdict`]): never a job.
    Guard,
}

crate::text_enum!(PluginKind {
    Job => "job",
    Agent => "agent",
    Guard => "guard",
});

/// A memory namespace a plugin's calls may be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MemoryScope {
    /// Private to one run.
    Run,
    /// Shared by the runs of one story.
    Story,
    /// Private to one plugin within one story: two agents of a story share
    /// `story` keys but never see each other's `agent` keys.
    Agent,
}

crate::text_enum!(MemoryScope {
    Run => "run",
    Story => "story",
    Agent => "agent",
});

impl MemoryScope {
    /// The stored namespace of this scope for the run or story `id`:
    /// `run:<id>` or `story:<id>`. The host picks it, never the guest.
    pub fn namespace(self, id: &str) -> String {
        format!("{}:{id}", self.as_str())
    }

    /// The `agent` namespace of `plugin` in `story`: `agent:<plugin>:<story>`.
    /// Plugin names hold no `:`, so no two pairs share a namespace.
    pub fn agent_namespace(plugin: &str, story: &str) -> String {
        format!("{}:{plugin}:{story}", Self::Agent.as_str())
    }
}

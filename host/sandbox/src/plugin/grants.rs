//! What a plugin version's attempts may use. Warren's server resolves
//! grants from the plugin's manifest capped by the operator's policy; the
//! sandbox only applies them.

use std::path::PathBuf;

use serde::Serialize;
use warren_vocabulary::{Limits, LimitsSpec, MemoryScope};

/// What one plugin version may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The most a job of this plugin may ask for.
    pub limits: Limits,
    /// What a job gets when its pipeline asks for nothing.
    pub default_limits: Limits,
    pub memory: Vec<MemoryScope>,
    pub spawn: bool,
    pub directories: Vec<DirectoryGrant>,
    /// What the manifest asked for and did not get, and why.
    pub capped: Vec<String>,
}

/// A host directory preopened for the plugin's attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryGrant {
    /// Canonical host path.
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl Default for Grants {
    /// What a plugin without manifest gets under the default policy: every
    /// memory scope, spawning, no host directory, the default limits and
    /// ceiling.
    fn default() -> Self {
        Self {
            limits: Limits::default_ceiling(),
            default_limits: Limits::default(),
            memory: vec![MemoryScope::Run, MemoryScope::Story, MemoryScope::Agent],
            spawn: true,
            directories: Vec::new(),
            capped: Vec::new(),
        }
    }
}

impl Grants {
    /// What `self` may use that `before` could not: a larger limit, a new
    /// memory scope, spawning, a directory or write access to one.
    pub fn escalations_over(&self, before: &Grants) -> Vec<String> {
        let mut more = Vec::new();
        let now = LimitsSpec::from(&self.limits);
        let then = LimitsSpec::from(&before.limits);
        for ((name, now), (_, then)) in now.fields().into_iter().zip(then.fields()) {
            if now > then {
                more.push(format!(
                    "{name}: {} (was {})",
                    now.unwrap_or_default(),
                    then.unwrap_or_default()
                ));
            }
        }
        for scope in &self.memory {
            if !before.memory.contains(scope) {
                more.push(format!("memory scope {}", scope.as_str()));
            }
        }
        if self.spawn && !before.spawn {
            more.push("spawn".into());
        }
        for dir in &self.directories {
            let had = before.directories.iter().any(|old| {
                old.host == dir.host && old.guest == dir.guest && (old.writable || !dir.writable)
            });
            if !had {
                let access = if dir.writable {
                    "read-write"
                } else {
                    "read-only"
                };
                more.push(format!(
                    "directory {} at {} ({access})",
                    dir.host.display(),
                    dir.guest
                ));
            }
        }
        more
    }
}

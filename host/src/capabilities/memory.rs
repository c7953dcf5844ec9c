//! `warren:plugin/memory`: key-value memory in SQLite. The host binds each
//! scope to a namespace (`run:<id>`, `story:<id>`), so a guest can only name
//! keys, never another run's or story's namespace.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::memory::{Host, Scope};
use crate::bindings::types::HostError;
use crate::db::Database;
use crate::plugins::grants::MemoryScope;
use crate::runtime::PluginState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys in one namespace.
pub const MAX_KEYS_PER_NAMESPACE: u64 = 10_000;
/// Most keys one `list-keys` call returns.
pub const MAX_LISTED_KEYS: usize = 1_000;

/// What memory one attempt may use: the namespaces its scopes map to.
#[derive(Debug, Clone)]
pub struct MemoryCtx {
    pub run_namespace: String,
    /// `None` when the run has no story: story calls are denied.
    pub story_namespace: Option<String>,
    /// The scopes the plugin's grants allow.
    pub granted: Vec<MemoryScope>,
}

impl MemoryCtx {
    pub fn new(run_id: &str, story_id: Option<&str>, granted: &[MemoryScope]) -> Self {
        Self {
            run_namespace: format!("run:{run_id}"),
            story_namespace: story_id.map(|s| format!("story:{s}")),
            granted: granted.to_vec(),
        }
    }
}

/// Per-attempt state of the memory capability.
pub struct MemoryState {
    db: Arc<Database>,
    grant: MemoryCtx,
}

impl MemoryState {
    pub fn new(db: Arc<Database>, grant: MemoryCtx) -> Self {
        Self { db, grant }
    }

    fn namespace(&self, scope: Scope) -> Result<&str, HostError> {
        let (granted, name) = match scope {
            Scope::Run => (MemoryScope::Run, "run"),
            Scope::Story => (MemoryScope::Story, "story"),
        };
        if !self.grant.granted.contains(&granted) {
            return Err(HostError::AccessDenied(format!(
                "this plugin is not granted {name} memory (its manifest or the operator's policy)"
            )));
        }
        match scope {
            Scope::Run => Ok(&self.grant.run_namespace),
            Scope::Story => self.grant.story_namespace.as_deref().ok_or_else(|| {
                HostError::AccessDenied("this run has no story, so no story memory".into())
            }),
        }
    }
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(HostError::Invalid(format!(
            "keys must be 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Database failures are the host's problem, reported as retryable.
fn unavailable(e: crate::db::DbError) -> HostError {
    tracing::error!("memory store: {e}");
    HostError::Unavailable("memory store unavailable".into())
}

impl Host for MemoryState {
    #[tracing::instrument(name = "warren.memory.get", skip(self))]
    fn get(
        &mut self,
        scope: Scope,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        Ok((|| {
            let namespace = self.namespace(scope)?;
            check_key(&key)?;
            self.db.memory_get(namespace, &key).map_err(unavailable)
        })())
    }

    #[tracing::instrument(name = "warren.memory.set", skip(self, value))]
    async fn set(
        &mut self,
        scope: Scope,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let outcome = async {
            let namespace = self.namespace(scope)?.to_owned();
            check_key(&key)?;
            // `value` was copied out of guest memory (bounded by its cap); only
            // values up to MAX_VALUE_BYTES are stored.
            if value.len() > MAX_VALUE_BYTES {
                return Err(HostError::LimitExceeded(format!(
                    "values are at most {MAX_VALUE_BYTES} bytes"
                )));
            }
            let stored = self
                .db
                .memory_set(namespace, key, value, MAX_KEYS_PER_NAMESPACE)
                .await
                .map_err(unavailable)?;
            if stored {
                Ok(())
            } else {
                Err(HostError::LimitExceeded(format!(
                    "a namespace holds at most {MAX_KEYS_PER_NAMESPACE} keys"
                )))
            }
        };
        Ok(outcome.await)
    }

    #[tracing::instrument(name = "warren.memory.delete", skip(self))]
    async fn delete(
        &mut self,
        scope: Scope,
        key: String,
    ) -> wasmtime::Result<Result<bool, HostError>> {
        let outcome = async {
            let namespace = self.namespace(scope)?.to_owned();
            check_key(&key)?;
            self.db
                .memory_delete(namespace, key)
                .await
                .map_err(unavailable)
        };
        Ok(outcome.await)
    }

    #[tracing::instrument(name = "warren.memory.list_keys", skip(self))]
    fn list_keys(
        &mut self,
        scope: Scope,
        prefix: String,
        start_after: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        Ok((|| {
            let namespace = self.namespace(scope)?;
            let too_long = |s: &str| s.len() > MAX_KEY_BYTES;
            if too_long(&prefix) || start_after.as_deref().is_some_and(too_long) {
                return Err(HostError::Invalid(format!(
                    "prefixes and keys are at most {MAX_KEY_BYTES} bytes"
                )));
            }
            self.db
                .memory_keys(namespace, &prefix, start_after.as_deref(), MAX_LISTED_KEYS)
                .map_err(unavailable)
        })())
    }
}

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> anyhow::Result<()> {
    crate::bindings::memory::add_to_linker::<PluginState, HasSelf<MemoryState>>(linker, |s| {
        &mut s.memory
    })?;
    Ok(())
}

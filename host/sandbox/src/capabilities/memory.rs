//! `warren:plugin/memory`: key-value memory behind a [`MemoryStore`]
//! (SQLite in Warren's server). The host binds each scope to a namespace
//! (`run:<id>`, `story:<id>`, `agent:<plugin>:<story>`), so a guest can only name keys, never another
//! run's or story's namespace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use warren_vocabulary::MemoryScope;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::agent_memory;
use crate::bindings::memory::{Host, Scope};
use crate::bindings::types::HostError;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// What one namespace (a run's, a story's) may hold.
pub const NAMESPACE_QUOTA: NamespaceQuota = NamespaceQuota {
    max_keys: 10_000,
    max_bytes: 64 << 20,
};
/// Most keys one `list-keys` call returns.
pub const MAX_LISTED_KEYS: usize = 1_000;

/// What one namespace may hold: keys, and bytes of keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceQuota {
    pub max_keys: u64,
    pub max_bytes: u64,
}

/// What a `set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Stored,
    /// Refused: a new key would pass the key quota.
    TooManyKeys,
    /// Refused: the namespace would hold more bytes than its quota.
    TooManyBytes,
}

/// A storage failure, reported to the guest as `unavailable`.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// Where memory lives. Writes are async so a store can group them (the
/// server's SQLite writer thread does); reads are short and synchronous.
#[async_trait::async_trait]
pub trait MemoryStore: Send + Sync + std::fmt::Debug {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `key`, unless that would make `namespace` hold more than
    /// `quota` allows. The check and the write must be atomic, so
    /// concurrent writers cannot overshoot.
    async fn set(
        &self,
        namespace: String,
        key: String,
        value: Vec<u8>,
        quota: NamespaceQuota,
    ) -> Result<SetOutcome, StoreError>;

    /// Returns whether the key existed.
    async fn delete(&self, namespace: String, key: String) -> Result<bool, StoreError>;

    /// Keys of `namespace` starting with `prefix` (compared byte by byte,
    /// no wildcards) and after `start_after`, in byte order, at most `limit`.
    fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
}

/// Memory that lives as long as the process: for embedders without a
/// database, and the default of [`crate::runtime::RuntimeConfig`].
#[derive(Debug, Default)]
pub struct InMemoryStore {
    entries: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl InMemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl MemoryStore for InMemoryStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .entries()
            .get(&(namespace.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn set(
        &self,
        namespace: String,
        key: String,
        value: Vec<u8>,
        quota: NamespaceQuota,
    ) -> Result<SetOutcome, StoreError> {
        let mut entries = self.entries();
        let id = (namespace, key);
        let (mut keys, mut bytes) = (0u64, 0u64);
        for ((_, key), value) in entries
            .range((id.0.clone(), String::new())..)
            .take_while(|((ns, _), _)| *ns == id.0)
        {
            keys += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        let replaced = entries.get(&id).map(|old| (id.1.len() + old.len()) as u64);
        if replaced.is_none() && keys >= quota.max_keys {
            return Ok(SetOutcome::TooManyKeys);
        }
        let after = bytes - replaced.unwrap_or(0) + (id.1.len() + value.len()) as u64;
        if after > quota.max_bytes {
            return Ok(SetOutcome::TooManyBytes);
        }
        entries.insert(id, value);
        Ok(SetOutcome::Stored)
    }

    async fn delete(&self, namespace: String, key: String) -> Result<bool, StoreError> {
        Ok(self.entries().remove(&(namespace, key)).is_some())
    }

    fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let entries = self.entries();
        Ok(entries
            .range((namespace.to_owned(), prefix.to_owned())..)
            .map(|((ns, key), _)| (ns, key))
            .take_while(|(ns, key)| *ns == namespace && key.starts_with(prefix))
            .filter(|(_, key)| start_after.is_none_or(|after| key.as_str() > after))
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect())
    }
}

/// What memory one attempt may use: the namespaces its scopes map to.
#[derive(Debug, Clone)]
pub struct MemoryCtx {
    pub run_namespace: String,
    /// `None` when the run has no story: story calls are denied.
    pub story_namespace: Option<String>,
    /// This plugin's namespace in the story; `None` without a story.
    pub agent_namespace: Option<String>,
    /// The scopes the plugin's grants allow.
    pub granted: Vec<MemoryScope>,
}

impl MemoryCtx {
    pub fn new(
        run_id: &str,
        story_id: Option<&str>,
        plugin: &str,
        granted: &[MemoryScope],
    ) -> Self {
        Self {
            run_namespace: MemoryScope::Run.namespace(run_id),
            story_namespace: story_id.map(|s| MemoryScope::Story.namespace(s)),
            agent_namespace: story_id.map(|s| MemoryScope::agent_namespace(plugin, s)),
            granted: granted.to_vec(),
        }
    }

    /// No memory at all: what `describe()` runs with.
    pub fn none() -> Self {
        Self {
            run_namespace: String::new(),
            story_namespace: None,
            agent_namespace: None,
            granted: Vec::new(),
        }
    }
}

/// Per-attempt state of the memory capability.
pub struct MemoryState {
    store: Arc<dyn MemoryStore>,
    grant: MemoryCtx,
}

impl MemoryState {
    pub fn new(store: Arc<dyn MemoryStore>, grant: MemoryCtx) -> Self {
        Self { store, grant }
    }

    fn namespace(&self, scope: MemoryScope) -> Result<String, HostError> {
        if !self.grant.granted.contains(&scope) {
            return Err(HostError::AccessDenied(format!(
                "this plugin is not granted {scope} memory (its manifest or the operator's policy)"
            )));
        }
        let namespace = match scope {
            MemoryScope::Run => Some(&self.grant.run_namespace),
            MemoryScope::Story => self.grant.story_namespace.as_ref(),
            MemoryScope::Agent => self.grant.agent_namespace.as_ref(),
        };
        namespace.cloned().ok_or_else(|| {
            HostError::AccessDenied(format!("this run has no story, so no {scope} memory"))
        })
    }

    async fn get(&self, scope: MemoryScope, key: String) -> Result<Option<Vec<u8>>, HostError> {
        let namespace = self.namespace(scope)?;
        check_key(&key)?;
        let store = self.store.clone();
        // A database read: off the async worker threads.
        tokio::task::spawn_blocking(move || store.get(&namespace, &key))
            .await
            .map_err(|e| HostError::Unavailable(format!("memory store: {e}")))?
            .map_err(unavailable)
    }

    async fn set(&self, scope: MemoryScope, key: String, value: Vec<u8>) -> Result<(), HostError> {
        let namespace = self.namespace(scope)?;
        check_key(&key)?;
        // `value` was copied out of guest memory (bounded by its cap); only
        // values up to MAX_VALUE_BYTES are stored.
        if value.len() > MAX_VALUE_BYTES {
            return Err(HostError::LimitExceeded(format!(
                "values are at most {MAX_VALUE_BYTES} bytes"
            )));
        }
        let quota = NAMESPACE_QUOTA;
        match self
            .store
            .set(namespace, key, value, quota)
            .await
            .map_err(unavailable)?
        {
            SetOutcome::Stored => Ok(()),
            SetOutcome::TooManyKeys => Err(HostError::LimitExceeded(format!(
                "a namespace holds at most {} keys",
                quota.max_keys
            ))),
            SetOutcome::TooManyBytes => Err(HostError::LimitExceeded(format!(
                "a namespace holds at most {} bytes of keys and values",
                quota.max_bytes
            ))),
        }
    }

    async fn delete(&self, scope: MemoryScope, key: String) -> Result<bool, HostError> {
        let namespace = self.namespace(scope)?;
        check_key(&key)?;
        self.store.delete(namespace, key).await.map_err(unavailable)
    }

    async fn list_keys(
        &self,
        scope: MemoryScope,
        prefix: String,
        start_after: Option<String>,
    ) -> Result<Vec<String>, HostError> {
        let namespace = self.namespace(scope)?;
        let too_long = |s: &str| s.len() > MAX_KEY_BYTES;
        if too_long(&prefix) || start_after.as_deref().is_some_and(too_long) {
            return Err(HostError::Invalid(format!(
                "prefixes and keys are at most {MAX_KEY_BYTES} bytes"
            )));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.keys(&namespace, &prefix, start_after.as_deref(), MAX_LISTED_KEYS)
        })
        .await
        .map_err(|e| HostError::Unavailable(format!("memory store: {e}")))?
        .map_err(unavailable)
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

/// Storage failures are the host's problem, reported as retryable.
fn unavailable(e: StoreError) -> HostError {
    tracing::error!("memory store: {e}");
    HostError::Unavailable("memory store unavailable".into())
}

fn scope_of(scope: Scope) -> MemoryScope {
    match scope {
        Scope::Run => MemoryScope::Run,
        Scope::Story => MemoryScope::Story,
    }
}

impl Host for MemoryState {
    #[tracing::instrument(name = "warren.memory.get", skip(self))]
    async fn get(
        &mut self,
        scope: Scope,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        Ok(MemoryState::get(self, scope_of(scope), key).await)
    }

    #[tracing::instrument(name = "warren.memory.set", skip(self, value))]
    async fn set(
        &mut self,
        scope: Scope,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(MemoryState::set(self, scope_of(scope), key, value).await)
    }

    #[tracing::instrument(name = "warren.memory.delete", skip(self))]
    async fn delete(
        &mut self,
        scope: Scope,
        key: String,
    ) -> wasmtime::Result<Result<bool, HostError>> {
        Ok(MemoryState::delete(self, scope_of(scope), key).await)
    }

    #[tracing::instrument(name = "warren.memory.list_keys", skip(self))]
    async fn list_keys(
        &mut self,
        scope: Scope,
        prefix: String,
        start_after: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        Ok(MemoryState::list_keys(self, scope_of(scope), prefix, start_after).await)
    }
}

impl agent_memory::Host for MemoryState {
    #[tracing::instrument(name = "warren.agent_memory.get", skip(self))]
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        Ok(MemoryState::get(self, MemoryScope::Agent, key).await)
    }

    #[tracing::instrument(name = "warren.agent_memory.set", skip(self, value))]
    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(MemoryState::set(self, MemoryScope::Agent, key, value).await)
    }

    #[tracing::instrument(name = "warren.agent_memory.delete", skip(self))]
    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, HostError>> {
        Ok(MemoryState::delete(self, MemoryScope::Agent, key).await)
    }

    #[tracing::instrument(name = "warren.agent_memory.list_keys", skip(self))]
    async fn list_keys(
        &mut self,
        prefix: String,
        start_after: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        Ok(MemoryState::list_keys(self, MemoryScope::Agent, prefix, start_after).await)
    }
}

/// Adds `warren:plugin/memory` and `warren:plugin/agent-memory`; `get`
/// finds this capability's state in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut MemoryState,
) -> anyhow::Result<()> {
    crate::bindings::memory::add_to_linker::<T, HasSelf<MemoryState>>(linker, get)?;
    crate::bindings::agent_memory::add_to_linker::<T, HasSelf<MemoryState>>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_store_matches_prefixes_literally_and_caps_namespaces() {
        let store = InMemoryStore::default();
        let quota = NamespaceQuota {
            max_keys: 4,
            max_bytes: 1 << 20,
        };
        let big = vec![0u8; 1 << 20];
        assert_eq!(
            store
                .set("run:3".into(), "k".into(), big, quota)
                .await
                .expect("too big"),
            SetOutcome::TooManyBytes,
            "the key's bytes count too"
        );
        for key in ["a_1", "a%2", "ab", "b"] {
            assert_eq!(
                store
                    .set("run:1".into(), key.into(), b"v".to_vec(), quota)
                    .await
                    .expect("set"),
                SetOutcome::Stored
            );
        }
        assert_eq!(
            store
                .set("run:1".into(), "c".into(), b"v".to_vec(), quota)
                .await
                .expect("full"),
            SetOutcome::TooManyKeys
        );
        assert_eq!(
            store
                .set("run:1".into(), "a_1".into(), b"w".to_vec(), quota)
                .await
                .expect("update"),
            SetOutcome::Stored
        );
        assert_eq!(
            store
                .set("run:2".into(), "a_0".into(), b"v".to_vec(), quota)
                .await
                .expect("other"),
            SetOutcome::Stored
        );
        assert_eq!(
            store.keys("run:1", "a_", None, 10).expect("keys"),
            vec!["a_1"]
        );
        assert_eq!(
            store.keys("run:1", "a", None, 10).expect("keys"),
            vec!["a%2", "a_1", "ab"]
        );
        assert_eq!(
            store.keys("run:1", "", Some("a_1"), 2).expect("keys"),
            vec!["ab", "b"]
        );
        assert_eq!(store.get("run:1", "a_1").expect("get"), Some(b"w".to_vec()));
        assert!(
            store
                .delete("run:1".into(), "b".into())
                .await
                .expect("delete")
        );
        assert!(
            !store
                .delete("run:1".into(), "b".into())
                .await
                .expect("again")
        );
        assert_eq!(store.get("run:2", "a_1").expect("get"), None);
    }
}

//! The plugins an engine can run, by name.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use warren_sandbox::plugin::Plugin;

/// Loaded plugins: the active version of each name, which new runs use, and
/// every other version still loaded, since a run keeps the version it
/// started with. Cheap to clone and share; so are the plugins it hands out
/// (a lookup per submitted job and per attempt).
#[derive(Clone, Default)]
pub struct PluginRegistry {
    inner: Arc<RwLock<Loaded>>,
    loader: Arc<RwLock<Option<VersionLoader>>>,
    source: Arc<RwLock<Option<PluginSource>>>,
    loading: Arc<watch::Sender<Loading>>,
}

/// Names whose files are still being examined (a start compiles in the
/// background): runs naming them wait, and the loader takes them first.
#[derive(Debug, Default)]
pub struct Loading {
    pub names: HashSet<String>,
    /// Names a submitted run is waiting for.
    pub wanted: HashSet<String>,
}

/// Loads a version that is not in memory (from a kept copy); may compile.
pub type VersionLoader = Arc<dyn Fn(&str, &str) -> Option<Plugin> + Send + Sync>;

/// Finds a plugin by name the first time it is asked for (`warren run`
/// loads the plugins a job spawns from beside it); may compile.
pub type PluginSource = Arc<dyn Fn(&str) -> Option<Plugin> + Send + Sync>;

#[derive(Default)]
struct Loaded {
    active: HashMap<String, Arc<Plugin>>,
    /// Every loaded version by name then digest, active ones included.
    versions: HashMap<String, HashMap<String, Arc<Plugin>>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PluginRegistry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Loaded> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `plugin` and makes it the active version of its name.
    pub fn insert(&self, plugin: Plugin) {
        let plugin = Arc::new(plugin);
        let mut loaded = self.write();
        loaded
            .versions
            .entry(plugin.name().to_owned())
            .or_default()
            .insert(plugin.digest().to_owned(), plugin.clone());
        loaded.active.insert(plugin.name().to_owned(), plugin);
    }

    /// Adds `plugin` without making it active: runs pinned to it can run.
    pub fn add_version(&self, plugin: Plugin) {
        let plugin = Arc::new(plugin);
        self.write()
            .versions
            .entry(plugin.name().to_owned())
            .or_default()
            .insert(plugin.digest().to_owned(), plugin);
    }

    /// Makes a loaded version the active one; false if it is not loaded.
    pub fn activate(&self, name: &str, digest: &str) -> bool {
        let mut loaded = self.write();
        let Some(plugin) = loaded
            .versions
            .get(name)
            .and_then(|versions| versions.get(digest))
            .cloned()
        else {
            return false;
        };
        loaded.active.insert(name.to_owned(), plugin);
        true
    }

    /// New runs can no longer use `name`; runs pinned to one of its
    /// versions still can.
    pub fn retire(&self, name: &str) {
        self.write().active.remove(name);
    }

    /// The active version of `name`, loaded from the source (if one is
    /// set) the first time it is asked for.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        if let Some(plugin) = self.read().active.get(name).cloned() {
            return Some(plugin);
        }
        let source = self
            .source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let plugin = source(name)?;
        self.insert(plugin);
        self.read().active.get(name).cloned()
    }

    /// Where [`PluginRegistry::get`] finds plugins not loaded yet.
    pub fn set_source(&self, source: PluginSource) {
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// Version `digest` of `name`, active or not, if loaded.
    pub fn version(&self, name: &str, digest: &str) -> Option<Arc<Plugin>> {
        self.read().versions.get(name)?.get(digest).cloned()
    }

    /// Where [`PluginRegistry::ensure_version`] finds versions not loaded.
    pub fn set_loader(&self, loader: VersionLoader) {
        *self.loader.write().unwrap_or_else(|p| p.into_inner()) = Some(loader);
    }

    /// Loads version `digest` of `name` if it is not loaded and a loader can
    /// find it; returns whether it is loaded. Blocking: it may compile.
    pub fn ensure_version(&self, name: &str, digest: &str) -> bool {
        if self.version(name, digest).is_some() {
            return true;
        }
        let loader = self
            .loader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match loader.and_then(|load| load(name, digest)) {
            Some(plugin) => {
                self.add_version(plugin);
                true
            }
            None => false,
        }
    }

    /// `names` are about to be examined: runs naming them wait for it.
    pub fn expect(&self, names: impl IntoIterator<Item = String>) {
        self.loading
            .send_modify(|loading| loading.names.extend(names));
    }

    /// `name` was examined (whatever came of it).
    pub fn settle(&self, name: &str) {
        self.loading.send_if_modified(|loading| {
            loading.wanted.remove(name);
            loading.names.remove(name)
        });
    }

    /// Which names are being examined, and which of them runs wait for.
    pub fn loading(&self) -> watch::Receiver<Loading> {
        self.loading.subscribe()
    }

    /// Waits (at most `patience`) until none of `names` is being examined,
    /// asking for them first. Returns whether they all were.
    pub async fn wait_examined(&self, names: &[&str], patience: Duration) -> bool {
        let mut loading = self.loading.subscribe();
        let waiting = |loading: &Loading| names.iter().any(|n| loading.names.contains(*n));
        if !waiting(&loading.borrow()) {
            return true;
        }
        self.loading.send_modify(|loading| {
            for name in names {
                if loading.names.contains(*name) {
                    loading.wanted.insert((*name).to_owned());
                }
            }
        });
        tokio::time::timeout(patience, loading.wait_for(|l| !waiting(l)))
            .await
            .is_ok_and(|done| done.is_ok())
    }

    /// Whether `name` has an active version (or its source has one).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Names with an active version, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().active.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_when_the_names_are_examined_and_asks_for_them_first() {
        let registry = PluginRegistry::default();
        assert!(
            registry
                .wait_examined(&["echo"], Duration::from_millis(1))
                .await,
            "nothing is loading"
        );
        registry.expect(["echo".to_owned(), "other".to_owned()]);
        assert!(
            !registry
                .wait_examined(&["echo"], Duration::from_millis(20))
                .await,
            "still loading"
        );
        assert!(registry.loading().borrow().wanted.contains("echo"));
        let settler = registry.clone();
        let waiter = tokio::spawn(async move {
            registry
                .wait_examined(&["echo"], Duration::from_secs(10))
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        settler.settle("echo");
        assert!(waiter.await.expect("waiter"), "examined");
        let loading = settler.loading();
        let loading = loading.borrow();
        assert!(!loading.names.contains("echo"));
        assert!(!loading.wanted.contains("echo"));
        assert!(loading.names.contains("other"));
    }
}

//! The plugins an engine can run, by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Plugin, PluginError};
use crate::runtime::Runtime;

/// Loaded plugins by name; cheap to clone and share.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: Arc<RwLock<HashMap<String, Plugin>>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PluginRegistry {
    /// Loads every `.wasm` file of `dir`; returns the files it rejected.
    pub fn load_dir(
        &self,
        runtime: &Runtime,
        dir: &Path,
    ) -> std::io::Result<Vec<(PathBuf, PluginError)>> {
        let mut rejected = Vec::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            match runtime.load_file(&path) {
                Ok(plugin) => self.insert(plugin),
                Err(e) => rejected.push((path, e)),
            }
        }
        Ok(rejected)
    }

    /// Adds `plugin`, replacing any plugin of the same name.
    pub fn insert(&self, plugin: Plugin) {
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.name().to_owned(), plugin);
    }

    pub fn get(&self, name: &str) -> Option<Plugin> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

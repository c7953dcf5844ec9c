//! One plugin file loaded with its manifest (`NAME.toml` beside
//! `NAME.wasm`) under the operator's policy, outside a watched folder: what
//! `warren run` runs.

use std::path::Path;

use warren_sandbox::plugin::{Plugin, PluginError};
use warren_sandbox::runtime::Runtime;
use warren_vocabulary::{Limits, LimitsSpec};

use super::grants::{Manifest, Policy, grant};

#[derive(Debug, thiserror::Error)]
pub enum PluginFileError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{0}")]
    Manifest(String),
    /// An agent's `describe()` failed or answered nonsense.
    #[error("{0}")]
    Describe(String),
}

/// Loads `path` (validated, compiled or taken from the cache) with the
/// grants its manifest gets under `policy`.
pub fn load(runtime: &Runtime, path: &Path, policy: &Policy) -> Result<Plugin, PluginFileError> {
    let plugin = runtime.load_file(path)?;
    let manifest = read_manifest(path, plugin.name())?;
    if let Some(kind) = manifest.as_ref().and_then(|m| m.kind)
        && kind != plugin.kind()
    {
        return Err(PluginFileError::Manifest(format!(
            "the manifest says kind {kind}, the component exports the {} world",
            plugin.kind()
        )));
    }
    let grants = grant(manifest.as_ref(), policy);
    for capped in &grants.capped {
        tracing::info!(plugin = plugin.name(), "capped by policy: {capped}");
    }
    Ok(plugin.with_grants(grants))
}

/// The manifest beside `path`, checked against the plugin's `name`.
pub fn read_manifest(path: &Path, name: &str) -> Result<Option<Manifest>, PluginFileError> {
    let manifest_path = path.with_extension("toml");
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PluginFileError::Manifest(format!(
                "cannot read {}: {e}",
                manifest_path.display()
            )));
        }
    };
    let invalid =
        |e: String| PluginFileError::Manifest(format!("invalid manifest {name}.toml: {e}"));
    let manifest = Manifest::parse(&text).map_err(invalid)?;
    if let Some(named) = &manifest.name
        && named != name
    {
        return Err(PluginFileError::Manifest(format!(
            "the manifest names the plugin {named:?}, but the file is {name}.wasm"
        )));
    }
    let unbounded =
        LimitsSpec::from_fields([Some(u64::MAX); LimitsSpec::FIELDS]).resolve(&Limits::default());
    manifest.limits.check(&unbounded).map_err(invalid)?;
    Ok(Some(manifest))
}

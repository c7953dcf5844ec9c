//! Plugin loading: every file is validated (size, is a component, exports a
//! supported world, imports only what Warren provides) before it is
//! compiled, cached and pre-linked.

pub mod grants;

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use warren_vocabulary::names::is_valid_plugin_name;
use warren_vocabulary::{AgentInfo, PluginKind};

use crate::artifact_store::sha256_hex;
use crate::bindings::{
    AGENT_EXPORT, AgentPre, CONTRACT_VERSION, GUARD_EXPORT, GuardPre, JOB_EXPORT, JobPre,
};
use crate::runtime::{CacheOutcome, PluginState, Runtime};

pub use grants::Grants;

/// Largest plugin file accepted.
pub const MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// Why a plugin was rejected. Each message names the problem.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{name:?} is not a plugin name (letters, digits, `-` and `_`, at most 64)")]
    BadName { name: String },
    #[error("the file is {size} bytes, more than the {limit} allowed")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a WebAssembly file")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build it with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "exports none of the `job` world ({JOB_EXPORT}@{CONTRACT_VERSION}), the `agent` world ({AGENT_EXPORT}@{CONTRACT_VERSION}) and the `guard` world ({GUARD_EXPORT}@{CONTRACT_VERSION}); it exports: {exports}"
    )]
    WrongWorld { exports: String },
    #[error("targets warren:plugin {found}, but this host supports {CONTRACT_VERSION}")]
    UnsupportedContract { found: String },
    #[error("imports `{import}`, which Warren does not provide")]
    UnsupportedImport { import: String },
    #[error("does not match the warren:plugin contract: {0}")]
    ContractMismatch(String),
}

/// The pre-linked plugin, ready to instantiate.
#[derive(Clone)]
pub enum PluginPre {
    Job(JobPre<PluginState>),
    Agent(AgentPre<PluginState>),
    Guard(GuardPre<PluginState>),
}

/// A validated, compiled plugin version.
#[derive(Clone)]
pub struct Plugin {
    name: String,
    digest: String,
    size: u64,
    kind: PluginKind,
    imports: Vec<String>,
    exports: Vec<String>,
    uses_filesystem: bool,
    cache: CacheOutcome,
    pre: PluginPre,
    grants: Arc<Grants>,
    agent: Option<Arc<AgentInfo>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// sha256 of the file: identifies this version.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// Interfaces the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// What the component exports.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Whether the component can open files (imports WASI preopens).
    pub fn uses_filesystem(&self) -> bool {
        self.uses_filesystem
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    pub(crate) fn pre(&self) -> &PluginPre {
        &self.pre
    }

    /// What its attempts may use; a plugin loaded without manifest or
    /// policy gets [`Grants::default`].
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = Arc::new(grants);
        self
    }

    /// What an agent said of itself ([`Runtime::describe_agent`]); `None`
    /// for jobs, and for agents not yet described.
    pub fn agent_info(&self) -> Option<&AgentInfo> {
        self.agent.as_deref()
    }

    pub fn with_agent_info(mut self, info: AgentInfo) -> Self {
        self.agent = Some(Arc::new(info));
        self
    }
}

pub(crate) fn load_file(runtime: &Runtime, path: &Path) -> Result<Plugin, PluginError> {
    let read_error = |source| PluginError::Read {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_PLUGIN_BYTES {
        return Err(PluginError::TooLarge {
            size,
            limit: MAX_PLUGIN_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    load_bytes(runtime, &name, &bytes)
}

pub(crate) fn load_bytes(
    runtime: &Runtime,
    name: &str,
    bytes: &[u8],
) -> Result<Plugin, PluginError> {
    if !is_valid_plugin_name(name) {
        return Err(PluginError::BadName {
            name: name.to_owned(),
        });
    }
    let size = bytes.len() as u64;
    if size > MAX_PLUGIN_BYTES {
        return Err(PluginError::TooLarge {
            size,
            limit: MAX_PLUGIN_BYTES,
        });
    }
    check_header(bytes)?;
    let digest = sha256_hex(bytes);
    let engine = runtime.engine();
    let (component, cache) = match runtime.cache().load(engine, &digest) {
        Some(component) => (component, CacheOutcome::Hit),
        None => {
            let component = Component::new(engine, bytes)
                .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
            (component, CacheOutcome::Compiled)
        }
    };

    let component_type = component.component_type();
    let imports: Vec<String> = component_type
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = component_type
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let kind = world_of(&component)?;
    let pre = runtime
        .linker()
        .instantiate_pre(&component)
        .map_err(|e| unsupported_import(&e, &imports))?;
    let pre = match kind {
        PluginKind::Job => PluginPre::Job(
            JobPre::new(pre).map_err(|e| PluginError::ContractMismatch(format!("{e:#}")))?,
        ),
        PluginKind::Agent => PluginPre::Agent(
            AgentPre::new(pre).map_err(|e| PluginError::ContractMismatch(format!("{e:#}")))?,
        ),
        PluginKind::Guard => PluginPre::Guard(
            GuardPre::new(pre).map_err(|e| PluginError::ContractMismatch(format!("{e:#}")))?,
        ),
    };
    if cache == CacheOutcome::Compiled
        && let Err(e) = runtime.cache().store(&digest, &component)
    {
        // The plugin still runs; the next load compiles again.
        tracing::warn!(plugin = name, "could not cache the compiled plugin: {e:#}");
    }
    let uses_filesystem = imports
        .iter()
        .any(|i| i.starts_with("wasi:filesystem/preopens@"));
    Ok(Plugin {
        name: name.to_owned(),
        digest,
        size,
        kind,
        imports,
        exports,
        uses_filesystem,
        cache,
        pre,
        grants: Arc::default(),
        agent: None,
    })
}

/// Tells core modules, components and other files apart by their header,
/// so the error says what the file is.
fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::NotWasm);
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    match [bytes[6], bytes[7]] {
        [0, 0] => Err(PluginError::CoreModule),
        [1, 0] => Ok(()),
        _ => Err(PluginError::Invalid(
            "unknown WebAssembly binary layer".into(),
        )),
    }
}

/// Which world the component targets, from its exports.
fn world_of(component: &Component) -> Result<PluginKind, PluginError> {
    let engine = component.engine();
    let exports: Vec<(String, bool)> = component
        .component_type()
        .exports(engine)
        .map(|(name, item)| {
            (
                name.to_owned(),
                matches!(item.ty, ComponentItem::ComponentInstance(_)),
            )
        })
        .collect();
    let supported = |export: &str| -> Option<Result<(), String>> {
        let (_, version) = exports
            .iter()
            .filter(|(_, is_instance)| *is_instance)
            .find_map(|(name, _)| {
                name.split_once('@')
                    .filter(|(interface, _)| *interface == export)
            })?;
        Some(if is_compatible(version) {
            Ok(())
        } else {
            Err(version.to_owned())
        })
    };
    for (export, kind) in [
        (JOB_EXPORT, PluginKind::Job),
        (AGENT_EXPORT, PluginKind::Agent),
        (GUARD_EXPORT, PluginKind::Guard),
    ] {
        match supported(export) {
            Some(Ok(())) => return Ok(kind),
            Some(Err(found)) => return Err(PluginError::UnsupportedContract { found }),
            None => {}
        }
    }
    let listed = if exports.is_empty() {
        "nothing".to_owned()
    } else {
        exports
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(PluginError::WrongWorld { exports: listed })
}

/// 0.1.x plugins run on this host (0.x minor versions are breaking).
fn is_compatible(version: &str) -> bool {
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    major_minor(version) == major_minor(CONTRACT_VERSION)
}

/// Names the import the linker could not satisfy; an import Warren has
/// but with other types is a contract mismatch instead.
fn unsupported_import(error: &wasmtime::Error, imports: &[String]) -> PluginError {
    let message = format!("{error:#}");
    let missing = message.contains("is missing");
    match imports.iter().find(|name| message.contains(name.as_str())) {
        Some(import) if missing => PluginError::UnsupportedImport {
            import: import.clone(),
        },
        _ => PluginError::ContractMismatch(message),
    }
}

/// The component with a custom section holding `index` appended: the same
/// code under another digest, so each copy is compiled and cached on its own
/// (for benchmarks and tests of many plugins).
pub fn with_marker(bytes: &[u8], index: usize) -> Vec<u8> {
    let name = b"warren-bench";
    let payload = index.to_le_bytes();
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len());
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_components_and_garbage_apart() {
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(
            check_header(b"MZ\x90\0\x03\0\0\0"),
            Err(PluginError::NotWasm)
        ));
        assert!(matches!(check_header(b"\0as"), Err(PluginError::NotWasm)));
    }

    #[test]
    fn only_the_same_minor_contract_is_compatible() {
        assert!(is_compatible("0.1.0"));
        assert!(is_compatible("0.1.7"));
        assert!(!is_compatible("0.2.0"));
        assert!(!is_compatible("1.1.0"));
    }
}

//! The plugin runtime: one wasmtime engine, a compiled-component cache, the
//! linker holding every host interface, and a fresh `Store` per attempt.

mod attempt;
mod cache;
mod engine;
mod guard;
mod limiter;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use attempt::{
    AttemptFailure, AttemptOutcome, AttemptRequest, DEFAULT_MAX_SPAWN_DEPTH, JobFailure, LimitHit,
    WrittenDocument,
};
pub use cache::{CacheOutcome, CompileCache};
pub use engine::{EPOCH_TICK, EngineSettings};
pub use guard::GuardSubject;
pub use limiter::{MemoryLimitExceeded, MemoryLimiter};

use crate::artifact_store::{ArtifactStore, ContentByDigest};
use crate::capabilities::agent_inputs::AgentInputsState;
use crate::capabilities::artifacts::ArtifactsState;
use crate::capabilities::breaker::{BreakerSettings, Breakers};
use crate::capabilities::disk_quota::DiskQuota;
use crate::capabilities::jobs::JobsState;
use crate::capabilities::log::AttemptLog;
use crate::capabilities::memory::{InMemoryStore, MemoryState, MemoryStore};
use crate::capabilities::models::ModelsState;
use crate::capabilities::outbound::{InFlight, OutboundHooks};
use crate::capabilities::reviews::ReviewsState;
use crate::plugin::{Plugin, PluginError};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Where the runtime keeps its state and how its engine is built.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of what the runtime stores: artifacts, cache, scratch.
    pub data_dir: PathBuf,
    pub engine: EngineSettings,
    /// Where compiled components are kept (`DATA_DIR/cache` by default);
    /// `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Where plugin memory lives. In memory by default (gone with the
    /// process); Warren's server gives its SQLite database.
    pub memory: Arc<dyn MemoryStore>,
    /// When outbound destinations' circuit breakers open.
    pub breakers: BreakerSettings,
    /// Where the bytes of artifacts without a blob are read (Warren's
    /// server gives its SQLite database: an agent's documents); none by
    /// default.
    pub content_elsewhere: Option<Arc<dyn ContentByDigest>>,
}

impl RuntimeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            cache_dir: Some(data_dir.join("cache")),
            data_dir,
            engine: EngineSettings::default(),
            memory: Arc::new(InMemoryStore::default()),
            breakers: BreakerSettings::default(),
            content_elsewhere: None,
        }
    }
}

/// Shared services the capabilities use.
#[derive(Debug)]
pub(crate) struct Services {
    pub memory: Arc<dyn MemoryStore>,
    pub artifacts: Arc<ArtifactStore>,
    pub work_root: PathBuf,
    pub breakers: Arc<Breakers>,
    pub in_flight: Arc<InFlight>,
}

/// Loads plugins and runs attempts. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: CompileCache,
    settings: EngineSettings,
    services: Services,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = engine::build_engine(&config.engine)?;
        if config.engine.limits {
            engine::start_epoch_ticker(&engine)?;
        }
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker)?;

        std::fs::create_dir_all(&config.data_dir)?;
        let cache = CompileCache::new(&engine, config.cache_dir.clone())?;
        let mut artifacts = ArtifactStore::open(&config.data_dir.join("artifacts"))?;
        if let Some(elsewhere) = config.content_elsewhere.clone() {
            artifacts = artifacts.with_content_elsewhere(elsewhere);
        }
        let services = Services {
            memory: config.memory.clone(),
            artifacts: Arc::new(artifacts),
            work_root: config.data_dir.join("work"),
            breakers: Arc::new(Breakers::new(config.breakers)),
            in_flight: Arc::new(InFlight::default()),
        };
        Ok(Self {
            engine,
            linker,
            cache,
            settings: config.engine,
            services,
            data_dir: config.data_dir,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Root of everything this runtime stores.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn artifact_store(&self) -> &Arc<ArtifactStore> {
        &self.services.artifacts
    }

    /// The outbound destinations' circuit breakers.
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.services.breakers
    }

    /// Where per-attempt directories are made.
    pub fn work_root(&self) -> &Path {
        &self.services.work_root
    }

    /// Validates, compiles (or loads from the cache) and pre-links the plugin
    /// at `path`; its name is the file stem.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, PluginError> {
        crate::plugin::load_file(self, path)
    }

    /// Same as [`Runtime::load_file`] for bytes already in memory.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        crate::plugin::load_bytes(self, name, bytes)
    }

    pub(crate) fn cache(&self) -> &CompileCache {
        &self.cache
    }

    pub(crate) fn services(&self) -> &Services {
        &self.services
    }
}

/// Everything a `Store` holds for one attempt.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) disk: Arc<DiskQuota>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: AttemptLog,
    pub(crate) memory: MemoryState,
    pub(crate) artifacts: ArtifactsState,
    pub(crate) jobs: JobsState,
    pub(crate) agent_inputs: AgentInputsState,
    pub(crate) reviews: ReviewsState,
    pub(crate) http: WasiHttpCtx,
    pub(crate) outbound: OutboundHooks,
    pub(crate) models: ModelsState,
    /// Shared by `outbound` and `models`: their answers, recorded.
    pub(crate) tape: Arc<crate::capabilities::replay::Tape>,
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::types::Host for PluginState {}

/// Adds every interface Warren provides (WASI p2 and `warren:plugin`), each
/// capability given its own part of the attempt's state.
fn add_to_linker(linker: &mut Linker<PluginState>) -> anyhow::Result<()> {
    use crate::capabilities::{
        agent_inputs, artifacts, disk_quota, jobs, log, memory, models, reviews,
    };
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    // Every plugin links `wasi:http`; its grants decide what leaves.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    // wasmtime-wasi's filesystem, with every write charged to the quota.
    disk_quota::add_to_linker(linker, |s| disk_quota::QuotaFilesystem {
        inner: wasmtime_wasi::filesystem::WasiFilesystemCtxView {
            ctx: s.wasi.filesystem(),
            table: &mut s.table,
        },
        quota: &s.disk,
    })?;
    crate::bindings::types::add_to_linker::<PluginState, wasmtime::component::HasSelf<PluginState>>(
        linker,
        |s| s,
    )?;
    log::add_to_linker(linker, |s| &mut s.log)?;
    memory::add_to_linker(linker, |s| &mut s.memory)?;
    artifacts::add_to_linker(linker, |s| &mut s.artifacts)?;
    jobs::add_to_linker(linker, |s| &mut s.jobs)?;
    agent_inputs::add_to_linker(linker, |s| &mut s.agent_inputs)?;
    reviews::add_to_linker(linker, |s| &mut s.reviews)?;
    models::add_to_linker(linker, |s| &mut s.models)?;
    Ok(())
}

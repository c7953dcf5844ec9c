//! One way to assemble Warren, used by every command, the benchmarks and
//! the tests: the SQLite database, a sandbox runtime whose plugin memory
//! lives in that database, the plugin catalogue and the engine.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warren::host::HostBuilder;
//!
//! let host = HostBuilder::new("./warren-data").open()?;
//! let plugins = host.open_plugins_dir(warren::BUILTIN_PLUGINS_DIR.as_ref(), Default::default()).await?;
//! let engine = host.start_engine(Default::default()).await?;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use warren_sandbox::capabilities::breaker::BreakerSettings;
use warren_sandbox::runtime::{EngineSettings, Runtime, RuntimeConfig};

use crate::catalogue::PluginRegistry;
use crate::catalogue::directory::PluginDirectory;
use crate::catalogue::grants::Policy;
use crate::db::{Database, Durability};
use crate::scheduler::{Engine, EngineConfig, EngineError};

/// How long loading one plugin file may take by default.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// What to open: a data directory and how to treat it.
#[derive(Debug, Clone)]
pub struct HostBuilder {
    data_dir: PathBuf,
    durability: Durability,
    cache_dir: Option<PathBuf>,
    engine_settings: EngineSettings,
    compile_timeout: Duration,
    breakers: BreakerSettings,
}

/// An assembled host: its parts share one database and one runtime.
#[derive(Debug, Clone)]
pub struct Host {
    pub data_dir: PathBuf,
    pub db: Arc<Database>,
    pub runtime: Arc<Runtime>,
    pub plugins: PluginRegistry,
    compile_timeout: Duration,
    /// Held while the host lives: one process per data directory.
    _lock: Arc<std::fs::File>,
}

/// The file whose lock says a process uses the data directory.
pub const LOCK_FILE: &str = "warren.lock";

impl HostBuilder {
    /// A host over `data_dir` (created if missing), its compile cache in
    /// `DATA_DIR/cache`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            cache_dir: Some(data_dir.join("cache")),
            data_dir,
            durability: Durability::default(),
            engine_settings: EngineSettings::default(),
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            breakers: BreakerSettings::default(),
        }
    }

    /// When outbound destinations' circuit breakers open.
    pub fn breakers(mut self, settings: BreakerSettings) -> Self {
        self.breakers = settings;
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Where compiled components are kept; `None` compiles every load.
    pub fn cache_dir(mut self, cache_dir: Option<PathBuf>) -> Self {
        self.cache_dir = cache_dir;
        self
    }

    pub fn engine_settings(mut self, settings: EngineSettings) -> Self {
        self.engine_settings = settings;
        self
    }

    pub fn compile_timeout(mut self, timeout: Duration) -> Self {
        self.compile_timeout = timeout;
        self
    }

    /// Opens (creating and migrating if needed) the database and builds the
    /// runtime over it.
    pub fn open(self) -> anyhow::Result<Host> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let lock = lock_data_dir(&self.data_dir)?;
        let db = Arc::new(
            Database::open(&self.data_dir.join("warren.db"), self.durability)
                .context("opening the database")?,
        );
        let runtime = Runtime::new(RuntimeConfig {
            data_dir: self.data_dir.clone(),
            engine: self.engine_settings,
            cache_dir: self.cache_dir,
            memory: db.clone(),
            breakers: self.breakers,
            content_elsewhere: Some(db.clone()),
        })?;
        Ok(Host {
            data_dir: self.data_dir,
            db,
            runtime: Arc::new(runtime),
            plugins: PluginRegistry::default(),
            compile_timeout: self.compile_timeout,
            _lock: Arc::new(lock),
        })
    }
}

/// Takes the data directory's lock, or says another process has it: two
/// schedulers on one database would run the same jobs, and a collector
/// could remove a blob another process is about to reference.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the data directory {} is in use by another warren process; stop it first",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

impl Host {
    /// Opens the plugins folder `dir` with manifests under `policy`,
    /// restoring the versions the database knows; its files are examined by
    /// [`PluginDirectory::examine_all`], and the folder is watched only once
    /// [`PluginDirectory::watch`] is called.
    pub async fn open_plugins_dir(
        &self,
        dir: &Path,
        policy: Policy,
    ) -> anyhow::Result<PluginDirectory> {
        PluginDirectory::open(
            self.runtime.clone(),
            self.db.clone(),
            self.plugins.clone(),
            dir,
            policy,
            self.compile_timeout,
        )
        .await
        .with_context(|| format!("loading plugins from {}", dir.display()))
    }

    /// Recovers what a previous process left unfinished and starts
    /// scheduling on the current tokio runtime.
    pub async fn start_engine(&self, config: EngineConfig) -> Result<Engine, EngineError> {
        Engine::start(
            self.runtime.clone(),
            self.db.clone(),
            self.plugins.clone(),
            config,
        )
        .await
    }
}

//! `warren bench plugins`: how long a file dropped into the plugins folder
//! of a running server takes to become runnable, against compiling that
//! file from scratch; and how long a server takes to start with 50 plugins,
//! compiled or not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{Measurement, Samples, millis};
use warren::catalogue::directory::PluginDirectory;
use warren::config::ServeConfig;
use warren::serve;
use warren_sandbox::runtime::{CacheOutcome, Runtime, RuntimeConfig};

#[derive(Debug, Clone)]
pub struct PluginsBenchOptions {
    /// Folder holding `wordcount.wasm`.
    pub plugins_dir: PathBuf,
    /// Drops (each into a fresh server) and cold compiles measured.
    pub repeats: usize,
    /// Plugins in the folder of the start-time benchmark.
    pub plugins: usize,
}

impl Default for PluginsBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            repeats: 5,
            plugins: 50,
        }
    }
}

pub async fn run(options: &PluginsBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let source = options.plugins_dir.join("wordcount.wasm");
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let root = super::tempdir()?;
    let result = measure(options, &bytes, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn measure(
    options: &PluginsBenchOptions,
    bytes: &[u8],
    root: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let repeats = options.repeats.max(1);
    let cold = Samples::new(cold_compiles(bytes, root, repeats)?);
    let mut drops = Vec::with_capacity(repeats);
    for round in 0..repeats {
        drops.push(drop_to_runnable(bytes, &root.join(format!("drop-{round}"))).await?);
    }
    let drops = Samples::new(drops);
    let (uncached, cached) = start_times(bytes, &root.join("start"), options.plugins).await?;
    let n = options.plugins;
    Ok(vec![
        Measurement::new("wordcount_cold_compile_median", millis(cold.median()), "ms"),
        Measurement::new(
            "wordcount_drop_to_runnable_median",
            millis(drops.median()),
            "ms",
        )
        .against(millis(cold.median())),
        Measurement::new(
            &format!("server_start_{n}_plugins_uncached"),
            millis(uncached),
            "ms",
        ),
        Measurement::new(
            &format!("server_start_{n}_plugins_cached"),
            millis(cached),
            "ms",
        )
        .against(millis(uncached)),
    ])
}

/// Validating, compiling and linking the file with nothing cached: what a
/// server must do at the least before it can run a new file.
fn cold_compiles(bytes: &[u8], root: &Path, repeats: usize) -> anyhow::Result<Vec<Duration>> {
    let mut config = RuntimeConfig::new(root.join("cold"));
    config.cache_dir = None;
    let runtime = Runtime::new(config)?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let started = Instant::now();
        let plugin = runtime.load_bytes("wordcount", bytes)?;
        samples.push(started.elapsed());
        anyhow::ensure!(plugin.cache_outcome() == CacheOutcome::Compiled);
    }
    Ok(samples)
}

/// A server with an empty folder and nothing compiled; the time from the
/// file appearing (renamed in) to a run being able to name it.
async fn drop_to_runnable(bytes: &[u8], root: &Path) -> anyhow::Result<Duration> {
    let folder = root.join("plugins");
    std::fs::create_dir_all(&folder)?;
    let mut server = serve::start(&config(root, &folder)).await?;
    server.ready().await;
    let staged = folder.join(".wordcount.wasm.partial");
    std::fs::write(&staged, bytes)?;
    let started = Instant::now();
    std::fs::rename(&staged, folder.join("wordcount.wasm"))?;
    let deadline = started + Duration::from_secs(120);
    while !server.engine.plugins().contains("wordcount") {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the plugin never became runnable"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = started.elapsed();
    server.shutdown().await?;
    Ok(elapsed)
}

/// Server start with `count` distinct plugins, first with nothing compiled,
/// then again on the same data (everything in the cache).
async fn start_times(
    bytes: &[u8],
    root: &Path,
    count: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let folder = root.join("plugins");
    std::fs::create_dir_all(&folder)?;
    for i in 0..count {
        std::fs::write(
            folder.join(format!("plugin-{i}.wasm")),
            warren_sandbox::plugin::with_marker(bytes, i),
        )?;
    }
    let config = config(root, &folder);
    let started = Instant::now();
    let mut server = serve::start(&config).await?;
    server.ready().await;
    let uncached = started.elapsed();
    anyhow::ensure!(server.engine.plugins().names().len() == count);
    server.shutdown().await?;

    let started = Instant::now();
    let mut server = serve::start(&config).await?;
    server.ready().await;
    let cached = started.elapsed();
    let compiled = compiled_count(&server.plugins);
    server.shutdown().await?;
    anyhow::ensure!(
        compiled == 0,
        "{compiled} plugins were compiled again at the second start"
    );
    Ok((uncached, cached))
}

/// Plugins whose code was compiled rather than read from the cache.
fn compiled_count(plugins: &PluginDirectory) -> usize {
    let registry = plugins.registry();
    registry
        .names()
        .iter()
        .filter_map(|name| registry.get(name))
        .filter(|p| p.cache_outcome() == CacheOutcome::Compiled)
        .count()
}

fn config(root: &Path, folder: &Path) -> ServeConfig {
    ServeConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: root.join("data"),
        plugins_dir: Some(folder.to_owned()),
        ..ServeConfig::default()
    }
}

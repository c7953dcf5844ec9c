//! `warren gc`: upkeep on demand, on a data directory no server is using
//! (the data directory's lock makes sure): what earlier processes left
//! staged, ended runs past their retention, unreferenced artifact blobs,
//! and the database's free pages.

use std::path::PathBuf;

use warren::config::{Layer, ServeConfig};
use warren::db::retention;
use warren::host::HostBuilder;
use warren::upkeep::{self, UpkeepReport};

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub data_dir: Option<PathBuf>,
    /// Overrides the configuration's `retention_days`.
    pub retention_days: Option<u64>,
    pub config: Option<PathBuf>,
}

/// What `warren gc` did, printed as JSON with `--json`.
#[derive(Debug, serde::Serialize)]
pub struct GcReport {
    pub staged_removed: usize,
    #[serde(flatten)]
    pub upkeep: UpkeepReport,
    /// Whether the database was rewritten to give space back incrementally
    /// from now on (older databases, once).
    pub vacuumed: bool,
    pub database_bytes_before: u64,
    pub database_bytes_after: u64,
}

pub async fn gc(options: GcOptions) -> anyhow::Result<GcReport> {
    let mut layers = Layer::operator(options.config.as_deref())?;
    if let Some(days) = options.retention_days {
        layers.push(Layer {
            retention_days: Some(days),
            ..Layer::default()
        });
    }
    let config = ServeConfig::resolve(&layers)?;
    let data_dir = options.data_dir.unwrap_or(config.data_dir);
    let database = data_dir.join("warren.db");
    anyhow::ensure!(
        database.is_file(),
        "{} holds no Warren database",
        data_dir.display()
    );
    let size = || std::fs::metadata(&database).map_or(0, |m| m.len());
    let database_bytes_before = size();
    // The lock first: nothing below may run beside a server.
    let host = HostBuilder::new(&data_dir).cache_dir(None).open()?;
    // A database made before incremental vacuum was on is rewritten once.
    let vacuumed = !host.db.read(retention::is_incremental)?;
    if vacuumed {
        retention::rewrite_incremental(&database)?;
    }
    let store = host.runtime.artifact_store().clone();
    let staged_removed = upkeep::sweep_staged(store.clone()).await?;
    let report = upkeep::upkeep(host.db.clone(), store, config.keep_ended_runs).await?;
    retention::truncate_wal_at(&database)?;
    Ok(GcReport {
        staged_removed,
        upkeep: report,
        vacuumed,
        database_bytes_before,
        database_bytes_after: size(),
    })
}

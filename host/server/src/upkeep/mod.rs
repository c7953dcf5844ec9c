//! Keeping the data directory bounded: staged artifacts of attempts that
//! cannot be running are swept at start; periodically (and on demand,
//! `warren gc`) ended runs past their retention are deleted, blobs nothing
//! references are collected, and the database gives free pages back.

use std::sync::Arc;
use std::time::Duration;

use warren_sandbox::artifact_store::{ArtifactStore, Collected};

use crate::db::{Database, reads, retention};

/// How often upkeep runs after the pass at start.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs deleted per transaction, so the writer is never held long.
const DELETE_BATCH: usize = 100;

/// Free pages given back per transaction.
const VACUUM_PAGES: u32 = 2_000;

/// What one upkeep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpkeepReport {
    pub runs_deleted: usize,
    pub blobs_examined: u64,
    pub blobs_removed: u64,
    pub bytes_removed: u64,
}

/// Removes what attempts of an earlier process staged. Call it before any
/// attempt of this process starts.
pub async fn sweep_staged(store: Arc<ArtifactStore>) -> anyhow::Result<usize> {
    Ok(tokio::task::spawn_blocking(move || store.sweep_staging()).await??)
}

/// Removes every artifact blob no job references (and no promotion is
/// about to reference), off the async threads.
pub async fn collect_artifacts(
    db: Arc<Database>,
    store: Arc<ArtifactStore>,
) -> anyhow::Result<Collected> {
    let collected = tokio::task::spawn_blocking(move || {
        store.collect_garbage(|batch| {
            db.read(|conn| reads::referenced_digests(conn, batch))
                .map_err(|e| e.to_string())
        })
    })
    .await??;
    if collected.removed > 0 {
        tracing::info!(
            removed = collected.removed,
            bytes = collected.removed_bytes,
            "removed unreferenced artifact blobs"
        );
    }
    Ok(collected)
}

/// Deletes the runs that ended more than `keep` ago, in batches; returns
/// how many.
pub async fn delete_old_runs(db: &Database, keep: Duration) -> anyhow::Result<usize> {
    let cutoff = warren_vocabulary::now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut deleted = 0;
    loop {
        let batch = db
            .write(move |conn| retention::delete_ended_runs(conn, cutoff, DELETE_BATCH))
            .await?;
        deleted += batch;
        if batch < DELETE_BATCH {
            return Ok(deleted);
        }
    }
}

/// Gives the database's free pages back to the file system, a batch per
/// transaction, until none is left.
pub async fn give_space_back(db: &Database) -> anyhow::Result<()> {
    loop {
        let left = db
            .write(|conn| {
                retention::incremental_vacuum(conn, VACUUM_PAGES)?;
                retention::free_pages(conn)
            })
            .await?;
        // A database without incremental mode keeps its free pages.
        if left == 0 || !db.read(retention::is_incremental)? {
            return Ok(());
        }
    }
}

/// One pass: retention (when `keep` is set), then the collector, then the
/// space given back.
pub async fn upkeep(
    db: Arc<Database>,
    store: Arc<ArtifactStore>,
    keep: Option<Duration>,
) -> anyhow::Result<UpkeepReport> {
    let runs_deleted = match keep {
        Some(keep) => delete_old_runs(&db, keep).await?,
        None => 0,
    };
    if runs_deleted > 0 {
        tracing::info!(runs = runs_deleted, "deleted runs past their retention");
    }
    let collected = collect_artifacts(db.clone(), store).await?;
    give_space_back(&db).await?;
    Ok(UpkeepReport {
        runs_deleted,
        blobs_examined: collected.examined,
        blobs_removed: collected.removed,
        bytes_removed: collected.removed_bytes,
    })
}

/// Runs [`upkeep`] now and every `period`, on a task that lives as long as
/// the tokio runtime.
pub fn upkeep_periodically(
    db: Arc<Database>,
    store: Arc<ArtifactStore>,
    keep: Option<Duration>,
    period: Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            if let Err(e) = upkeep(db.clone(), store.clone(), keep).await {
                tracing::error!("upkeep: {e:#}");
            }
        }
    });
}

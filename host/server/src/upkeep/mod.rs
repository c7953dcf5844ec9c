//! Keeping the data directory bounded: staged artifacts of attempts that
//! cannot be running are swept at start, and blobs nothing references are
//! collected at start and then periodically.

use std::sync::Arc;
use std::time::Duration;

use warren_sandbox::artifact_store::{ArtifactStore, Collected};

use crate::db::{Database, reads};

/// How often the artifact collector runs after the one at start.
pub const COLLECT_EVERY: Duration = Duration::from_secs(3600);

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

/// Collects artifacts now and every `period`, on a task that lives as long
/// as the tokio runtime.
pub fn collect_artifacts_periodically(
    db: Arc<Database>,
    store: Arc<ArtifactStore>,
    period: Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            if let Err(e) = collect_artifacts(db.clone(), store.clone()).await {
                tracing::error!("collecting unreferenced artifacts: {e:#}");
            }
        }
    });
}

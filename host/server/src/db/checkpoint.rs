//! Copies committed pages from the WAL into the database file on a thread of
//! its own. A checkpoint reads and writes every page changed since the last
//! one and syncs the file; left to SQLite's automatic checkpoints, that work
//! would stall whichever connection happened to commit, mostly the writer.
//!
//! SQLite starts the WAL over only when a checkpoint has copied all of it.
//! Under steady writes this thread never gets there: the writer commits new
//! pages while it copies. So once the WAL is past a size, the writer copies
//! the little left between two groups ([`Checkpointer::catch_up_requested`]),
//! and its next commit starts the WAL over; without that the WAL grows for
//! as long as writes go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

/// Wait after a nudge, so one checkpoint covers many commits.
const PAUSE: Duration = Duration::from_millis(500);

/// Wait after a nudge while the WAL grows fast: a checkpoint of half a
/// second of heavy writes copied 80 MiB in about 70 ms, busying a core and
/// the disk, and the WAL outgrew `journal_size_limit`, so SQLite cut the
/// file down at every start over. Measured with `warren bench flows` at
/// 500 flows a second (35,000 pages a second): p99 69 ms with the long
/// pause, 15 ms with this one.
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// Pages added to the WAL between two checkpoints past which the short
/// pause applies (SQLite's own automatic checkpoint runs every 1,000).
const BUSY_PAGES: i64 = 1000;

/// Pages in the WAL past which the writer is asked to finish a checkpoint
/// (16 MiB of 4 KiB pages). Measured with `warren bench api`: at 3,000
/// submissions a second, 64 MiB let checkpoints grow long enough to double
/// the p99; a smaller WAL only means more pauses of the writer.
pub const CATCH_UP_PAGES: i64 = 4096;

/// Passes run back to back before the writer finishes a checkpoint.
const FOLLOW_UP_PASSES: usize = 2;

/// Handle to the checkpoint thread; it stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    nudges: mpsc::SyncSender<()>,
    thread: Arc<std::thread::JoinHandle<()>>,
    catch_up: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread; past `catch_up_pages` pages in the WAL it asks the
    /// writer to finish the checkpoint.
    pub fn start(conn: Connection, catch_up_pages: i64) -> std::io::Result<Self> {
        let (nudges, received) = mpsc::sync_channel(1);
        let catch_up = Arc::new(AtomicBool::new(false));
        let flag = catch_up.clone();
        let thread = std::thread::Builder::new()
            .name("warren-db-checkpoint".into())
            .spawn(move || serve(&conn, &received, &flag, catch_up_pages))?;
        Ok(Self {
            nudges,
            thread: Arc::new(thread),
            catch_up,
        })
    }

    /// Whether the writer should run a checkpoint itself now (once per
    /// request): the WAL has grown past the limit without starting over.
    pub fn catch_up_requested(&self) -> bool {
        self.catch_up.swap(false, Ordering::Relaxed)
    }

    /// False once the thread has ended; from then on the WAL only grows.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Says that something was committed; cheap and never blocks.
    pub fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

fn serve(conn: &Connection, nudges: &mpsc::Receiver<()>, catch_up: &AtomicBool, limit: i64) {
    let mut pause = PAUSE;
    let mut last_pages = 0;
    while nudges.recv().is_ok() {
        std::thread::sleep(pause);
        while nudges.try_recv().is_ok() {}
        // The count is of pages since the WAL last started over.
        let Some(mut pages) = checkpoint(conn) else {
            continue;
        };
        let grown = if pages >= last_pages {
            pages - last_pages
        } else {
            pages
        };
        pause = next_pause(grown);
        if pages > limit {
            // Each pass copies what was committed during the last one, so
            // what is left for the writer, and its pause, shrinks.
            for _ in 0..FOLLOW_UP_PASSES {
                pages = checkpoint(conn).unwrap_or(pages);
            }
            catch_up.store(true, Ordering::Relaxed);
        }
        last_pages = pages;
    }
    checkpoint(conn);
}

/// The wait before the next checkpoint, after `grown` pages were added to
/// the WAL since the last one.
fn next_pause(grown: i64) -> Duration {
    if grown >= BUSY_PAGES {
        BUSY_PAUSE
    } else {
        PAUSE
    }
}

/// Passive: never waits for readers or the writer, copies what it can.
/// Returns the pages in the WAL, if the checkpoint ran.
pub fn checkpoint(conn: &Connection) -> Option<i64> {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1)) {
        Ok(pages) => Some(pages),
        Err(e) => {
            tracing::warn!("WAL checkpoint failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::db::writer::Writer;
    use crate::db::{Durability, open_connection};

    /// Steady writes for a few checkpoint periods: rows of 4 KiB, a commit
    /// every millisecond or so, so each checkpoint pass finds new pages
    /// committed while it copied. Returns the bytes inserted, the WAL file's
    /// size at the end, and how many times the WAL started over.
    async fn write_steadily(catch_up_pages: i64) -> (u64, u64, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let wal_path = dir.path().join("w.db-wal");
        let open = || open_connection(&path, Durability::Normal).expect("open");
        open()
            .execute_batch("CREATE TABLE rows (data BLOB NOT NULL)")
            .expect("create");
        let checkpointer = Checkpointer::start(open(), catch_up_pages).expect("checkpointer");
        let writer = Writer::start(open(), checkpointer).expect("writer");
        let until = Instant::now() + PAUSE * 6;
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let writer = writer.clone();
            writers.spawn(async move {
                let mut inserted = 0u64;
                while Instant::now() < until {
                    writer
                        .write(|conn| {
                            conn.execute("INSERT INTO rows (data) VALUES (zeroblob(4096))", [])?;
                            Ok(())
                        })
                        .await
                        .expect("write");
                    inserted += 4096;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                inserted
            });
        }
        // The WAL header's first salt changes each time the WAL starts over.
        let mut salts = Vec::new();
        while Instant::now() < until {
            if let Ok(header) = std::fs::read(&wal_path)
                .map(|bytes| bytes.get(16..20).map(<[u8]>::to_vec).unwrap_or_default())
                && salts.last() != Some(&header)
            {
                salts.push(header);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut inserted = 0;
        while let Some(written) = writers.join_next().await {
            inserted += written.expect("writer task");
        }
        let wal = std::fs::metadata(&wal_path).expect("wal").len();
        (inserted, wal, salts.len().saturating_sub(1))
    }

    #[test]
    fn checkpoints_come_sooner_while_the_wal_grows_fast() {
        assert_eq!(next_pause(0), PAUSE);
        assert_eq!(next_pause(BUSY_PAGES - 1), PAUSE);
        assert_eq!(next_pause(BUSY_PAGES), BUSY_PAUSE);
        assert_eq!(next_pause(40_000), BUSY_PAUSE);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let (inserted, wal, restarts) = write_steadily(64).await;
        // About once per pass; without the writer finishing checkpoints it
        // started over once in the same time.
        assert!(restarts >= 4, "the WAL started over {restarts} times");
        // Every inserted page went through the WAL: had it never started
        // over, it would hold them all.
        assert!(
            wal < inserted,
            "the WAL holds {wal} bytes after {inserted} bytes were inserted"
        );
    }
}

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
/// the disk, and the WAL could outgrow `journal_size_limit`, so that
/// SQLite cut the file down when it started over. Measured with
/// `warren bench flows` at 500 flows a second (35,000 pages a second):
/// p99 40 to 69 ms with the long pause, 14 to 27 ms with this one.
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
    // Pages in the WAL after the last pass, or 0 when the WAL may have
    // started over since (all of it was copied, or the writer was asked
    // to finish): then every page counted next is new.
    let mut last_pages = 0;
    while nudges.recv().is_ok() {
        std::thread::sleep(pause);
        while nudges.try_recv().is_ok() {}
        // Busy (the writer is finishing one) or failed: nothing learned.
        let Some(mut wal) = checkpoint(conn) else {
            continue;
        };
        pause = next_pause(pages_added(last_pages, wal.pages));
        if wal.pages > limit {
            // Each pass copies what was committed during the last one, so
            // what is left for the writer, and its pause, shrinks.
            for _ in 0..FOLLOW_UP_PASSES {
                wal = checkpoint(conn).unwrap_or(wal);
            }
            catch_up.store(true, Ordering::Relaxed);
            last_pages = 0;
        } else {
            last_pages = if wal.copied == wal.pages {
                0
            } else {
                wal.pages
            };
        }
    }
    checkpoint(conn);
}

/// Pages added to the WAL between a pass that left `last` pages in it and
/// one that found `now` (fewer: it started over in between).
fn pages_added(last: i64, now: i64) -> i64 {
    if now >= last { now - last } else { now }
}

/// The wait before the next checkpoint, after `added` pages were added to
/// the WAL since the last one.
fn next_pause(added: i64) -> Duration {
    if added >= BUSY_PAGES {
        BUSY_PAUSE
    } else {
        PAUSE
    }
}

/// The WAL as a checkpoint pass left it, counted since it last started
/// over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPages {
    /// Pages in the WAL.
    pub pages: i64,
    /// Of those, pages copied into the database file.
    pub copied: i64,
}

/// Passive: never waits for readers or the writer, copies what it can.
/// `None` if the checkpoint did not run: it failed, or another connection
/// was checkpointing (SQLite then answers busy with counts of -1).
pub fn checkpoint(conn: &Connection) -> Option<WalPages> {
    let answer = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match answer {
        Ok(row) => wal_pages(row),
        Err(e) => {
            tracing::warn!("WAL checkpoint failed: {e}");
            None
        }
    }
}

/// Reads the row of `PRAGMA wal_checkpoint`: busy, pages, pages copied.
fn wal_pages((busy, pages, copied): (i64, i64, i64)) -> Option<WalPages> {
    (busy == 0 && pages >= 0 && copied >= 0).then_some(WalPages { pages, copied })
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
    fn pages_added_count_from_the_start_when_the_wal_started_over() {
        assert_eq!(pages_added(0, 1_250), 1_250);
        assert_eq!(pages_added(1_000, 1_250), 250);
        // Started over and grew again past a smaller count.
        assert_eq!(pages_added(5_000, 1_250), 1_250);
    }

    #[test]
    fn a_busy_checkpoint_is_no_answer() {
        assert_eq!(wal_pages((1, -1, -1)), None);
        assert_eq!(wal_pages((0, -1, -1)), None);
        assert_eq!(
            wal_pages((0, 40, 12)),
            Some(WalPages {
                pages: 40,
                copied: 12
            })
        );
    }

    #[test]
    fn an_idle_checkpoint_copies_the_whole_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_connection(&dir.path().join("c.db"), Durability::Normal).expect("open");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("write");
        let wal = checkpoint(&conn).expect("an idle checkpoint runs");
        assert!(wal.pages > 0);
        assert_eq!(wal.copied, wal.pages);
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

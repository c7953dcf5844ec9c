//! Copies committed pages from the WAL into the database file on a thread of
//! its own. A checkpoint reads and writes every page changed since the last
//! one and syncs the file; left to SQLite's automatic checkpoints, that work
//! would stall whichever connection happened to commit, mostly the writer.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

/// Wait after a nudge, so one checkpoint covers many commits.
const PAUSE: Duration = Duration::from_millis(500);

/// Handle to the checkpoint thread; it stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    nudges: mpsc::SyncSender<()>,
    thread: Arc<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (nudges, received) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("warren-db-checkpoint".into())
            .spawn(move || serve(&conn, &received))?;
        Ok(Self {
            nudges,
            thread: Arc::new(thread),
        })
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

fn serve(conn: &Connection, nudges: &mpsc::Receiver<()>) {
    while nudges.recv().is_ok() {
        std::thread::sleep(PAUSE);
        while nudges.try_recv().is_ok() {}
        checkpoint(conn);
    }
    checkpoint(conn);
}

/// Passive: never waits for readers or the writer, copies what it can.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!("WAL checkpoint failed: {e}");
    }
}

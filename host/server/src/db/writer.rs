//! The one thread that owns the write connection. Async callers send work
//! over a channel; whatever is queued when the thread gets to it runs in one
//! transaction (group commit), each piece inside its own savepoint so one
//! failing piece does not undo the others.

use std::sync::{Arc, mpsc};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::DbError;
use super::checkpoint::{self, Checkpointer};

type Work = Box<dyn FnOnce(&Connection) -> Result<(), DbError> + Send>;

struct Request {
    work: Work,
    done: oneshot::Sender<Result<(), DbError>>,
}

/// Most pieces of work grouped into one transaction.
const MAX_GROUP: usize = 512;

/// Handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Request>,
    thread: Arc<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the thread; it stops when every handle is dropped.
    pub fn start(conn: Connection, checkpointer: Checkpointer) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("warren-db-writer".into())
            .spawn(move || serve(conn, &requests, &checkpointer))?;
        Ok(Self {
            queue,
            thread: Arc::new(thread),
        })
    }

    /// False once the thread has ended (it only ends on a panic while
    /// handles remain).
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Runs `work` in a write transaction and returns once it is committed.
    pub async fn write<R, F>(&self, work: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let (result_tx, result_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let value = work(conn)?;
            let _ = result_tx.send(value);
            Ok(())
        });
        self.queue
            .send(Request {
                work,
                done: done_tx,
            })
            .map_err(|_| DbError::WriterGone)?;
        done_rx.await.map_err(|_| DbError::WriterGone)??;
        result_rx.await.map_err(|_| DbError::WriterGone)
    }
}

fn serve(mut conn: Connection, requests: &mpsc::Receiver<Request>, checkpointer: &Checkpointer) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, group);
        checkpointer.nudge();
        if checkpointer.catch_up_requested() {
            checkpoint::checkpoint(&conn);
        }
    }
}

fn commit_group(conn: &mut Connection, group: Vec<Request>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for request in group {
                let _ = request.done.send(Err(DbError::Commit(message.clone())));
            }
            return;
        }
    };
    // A piece alone needs no savepoint: if it fails, the whole transaction
    // is rolled back. A savepoint copies every page it touches.
    if group.len() == 1 {
        if let Some(request) = group.into_iter().next() {
            let outcome = run_piece(request.work, &tx).and_then(|()| Ok(tx.commit()?));
            let _ = request.done.send(outcome);
        }
        return;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    let mut pieces = group.into_iter();
    for request in pieces.by_ref() {
        let outcome = match tx.savepoint() {
            // Dropping a savepoint that failed rolls back this piece alone.
            Ok(savepoint) => run_piece(request.work, &savepoint)
                .and_then(|()| savepoint.commit().map_err(DbError::from)),
            Err(e) => Err(e.into()),
        };
        let failed = outcome.is_err();
        outcomes.push((request.done, outcome));
        // After some errors (I/O, full disk) SQLite rolls the whole
        // transaction back: nothing of this group can be committed.
        if failed && tx.is_autocommit() {
            let message = "the transaction was rolled back".to_owned();
            for (done, _) in outcomes {
                let _ = done.send(Err(DbError::Commit(message.clone())));
            }
            for rest in pieces {
                let _ = rest.done.send(Err(DbError::Commit(message.clone())));
            }
            return;
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (done, outcome) in outcomes {
                let _ = done.send(outcome);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (done, _) in outcomes {
                let _ = done.send(Err(DbError::Commit(message.clone())));
            }
        }
    }
}

/// Runs one piece of work; a panic fails the piece instead of killing the
/// thread.
fn run_piece(work: Work, conn: &Connection) -> Result<(), DbError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(DbError::Commit("a write panicked".into())))
}

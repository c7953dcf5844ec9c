//! Tasks waiting for something to happen to particular runs: for a run to
//! stop (`Engine::wait`, behind `POST /v1/run` and the CLI), or for its
//! history to grow (a run's event stream). After each commit the scheduler
//! wakes the tasks of the runs that commit stopped or changed, and no
//! other: with a hundred clients waiting, one run's end costs one read of
//! that run, not a read of every waiting client's run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// Who waits for which run; shared by the engine's handles and the
/// scheduler.
#[derive(Default)]
pub(crate) struct RunWakers {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_run: HashMap<String, Watched>,
    /// The scheduler has ended: no run will stop any more.
    closed: bool,
}

/// One run's waiters: what wakes them, and how many watches are out.
#[derive(Default)]
struct Watched {
    notify: Arc<Notify>,
    watches: usize,
}

impl RunWakers {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers interest in `run_id` until the returned watch is dropped.
    pub fn watch(self: &Arc<Self>, run_id: &str) -> RunWatch {
        let notify = {
            let mut state = self.lock();
            let watched = state.by_run.entry(run_id.to_owned()).or_default();
            watched.watches += 1;
            watched.notify.clone()
        };
        RunWatch {
            wakers: self.clone(),
            run_id: run_id.to_owned(),
            notify,
        }
    }

    /// Wakes the waiters of `run_ids`, whose news is committed.
    pub fn wake<'a>(&self, run_ids: impl IntoIterator<Item = &'a str>) {
        let state = self.lock();
        for run_id in run_ids {
            if let Some(watched) = state.by_run.get(run_id) {
                watched.notify.notify_waiters();
            }
        }
    }

    /// Wakes every waiter for good: the scheduler has ended.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for watched in state.by_run.values() {
            watched.notify.notify_waiters();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.lock().by_run.len()
    }
}

/// One waiter's registration for one run.
pub(crate) struct RunWatch {
    wakers: Arc<RunWakers>,
    run_id: String,
    notify: Arc<Notify>,
}

impl RunWatch {
    /// Ready once the run is woken (or the scheduler ends). Only futures
    /// enabled before the wake see it, so enable one before reading the
    /// run.
    pub fn notified(&self) -> OwnedNotified {
        self.notify.clone().notified_owned()
    }

    pub fn is_closed(&self) -> bool {
        self.wakers.is_closed()
    }
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        // Counted, not read off the `Arc`: futures from `notified` hold
        // shares of it too, and may outlive the watch.
        let mut state = self.wakers.lock();
        if let Some(watched) = state.by_run.get_mut(&self.run_id) {
            watched.watches -= 1;
            if watched.watches == 0 {
                state.by_run.remove(&self.run_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::time::Duration;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_stop_wakes_the_waiters_of_that_run_only() {
        let waiters = Arc::new(RunWakers::default());
        let a = waiters.watch("a");
        let b = waiters.watch("b");
        let mut woken_a = pin!(a.notified());
        let mut woken_b = pin!(b.notified());
        woken_a.as_mut().enable();
        woken_b.as_mut().enable();
        waiters.wake(["a"]);
        assert!(tokio::time::timeout(SOON, woken_a).await.is_ok());
        assert!(tokio::time::timeout(SOON, woken_b).await.is_err());
    }

    #[tokio::test]
    async fn two_waiters_of_one_run_are_both_woken_and_the_last_one_out_cleans_up() {
        let waiters = Arc::new(RunWakers::default());
        let first = waiters.watch("a");
        let second = waiters.watch("a");
        assert_eq!(waiters.watched(), 1);
        {
            let mut one = pin!(first.notified());
            let mut two = pin!(second.notified());
            one.as_mut().enable();
            two.as_mut().enable();
            waiters.wake(["a"]);
            assert!(tokio::time::timeout(SOON, one).await.is_ok());
            assert!(tokio::time::timeout(SOON, two).await.is_ok());
        }
        drop(first);
        assert_eq!(waiters.watched(), 1, "the second waiter still watches");
        drop(second);
        assert_eq!(waiters.watched(), 0);
    }

    #[tokio::test]
    async fn closing_wakes_everyone_and_says_so() {
        let waiters = Arc::new(RunWakers::default());
        let a = waiters.watch("a");
        let mut woken = pin!(a.notified());
        woken.as_mut().enable();
        assert!(!a.is_closed());
        waiters.close();
        assert!(tokio::time::timeout(SOON, woken).await.is_ok());
        assert!(a.is_closed());
    }

    #[test]
    fn a_future_that_outlives_its_watch_does_not_keep_the_entry() {
        let waiters = Arc::new(RunWakers::default());
        let watch = waiters.watch("a");
        let pending = watch.notified();
        drop(watch);
        assert_eq!(waiters.watched(), 0);
        drop(pending);
    }

    #[test]
    fn a_stop_nobody_waits_for_is_ignored() {
        let waiters = RunWakers::default();
        waiters.wake(["nobody"]);
        assert_eq!(waiters.watched(), 0);
    }
}

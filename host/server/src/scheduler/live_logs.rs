//! Attempts' log lines as they are written, for whoever follows a job
//! (`GET /v1/jobs/{id}/logs?follow=true`). A log is stored when its
//! attempt ends; until then its lines are only here: the latest of each
//! running attempt are kept for a follower who comes late, and each line
//! passes through a bounded channel. A follower too slow to keep up is
//! told how many lines it missed, and nothing waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use warren_sandbox::capabilities::log::{LogLine, LogSink};

/// Lines kept for followers that fall behind.
const CAPACITY: usize = 4_096;

/// The latest bytes of lines kept per running attempt (messages and about
/// 64 bytes a line besides).
const BACKLOG_BYTES: usize = 64 * 1024;

/// One line of a running attempt.
#[derive(Debug, Clone)]
pub struct LiveLine {
    pub job_id: String,
    pub attempt: u32,
    pub line: LogLine,
}

impl LiveLine {
    fn weight(&self) -> usize {
        self.line.message.len() + 64
    }
}

/// What a follower gets first: the latest lines of the job's running
/// attempt, and how many earlier ones were not kept.
#[derive(Debug, Default)]
pub struct Backlog {
    pub lines: Vec<Arc<LiveLine>>,
    pub dropped: u64,
}

/// The latest lines of one job's running attempt.
#[derive(Debug)]
struct Kept {
    attempt: u32,
    lines: VecDeque<Arc<LiveLine>>,
    bytes: usize,
    dropped: u64,
}

impl Kept {
    fn new(attempt: u32) -> Self {
        Self {
            attempt,
            lines: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Keeps `line` and drops the oldest lines over the bound, never the
    /// newest (one line may be larger than the bound).
    fn push(&mut self, line: Arc<LiveLine>) {
        self.bytes += line.weight();
        self.lines.push_back(line);
        while self.bytes > BACKLOG_BYTES && self.lines.len() > 1 {
            let Some(oldest) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= oldest.weight();
            self.dropped += 1;
        }
    }
}

type Backlogs = Arc<Mutex<HashMap<Arc<str>, Kept>>>;

fn lock(backlogs: &Backlogs) -> MutexGuard<'_, HashMap<Arc<str>, Kept>> {
    backlogs.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where attempts' lines go live.
#[derive(Debug, Clone)]
pub struct LiveLogs {
    lines: broadcast::Sender<Arc<LiveLine>>,
    /// By job id.
    backlogs: Backlogs,
}

impl Default for LiveLogs {
    fn default() -> Self {
        Self {
            lines: broadcast::channel(CAPACITY).0,
            backlogs: Backlogs::default(),
        }
    }
}

/// Forgets an attempt's lines when its sink is dropped (the attempt ended).
struct Forget {
    backlogs: Backlogs,
    job_id: Arc<str>,
    attempt: u32,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let mut backlogs = lock(&self.backlogs);
        if backlogs
            .get(&*self.job_id)
            .is_some_and(|kept| kept.attempt == self.attempt)
        {
            backlogs.remove(&*self.job_id);
        }
    }
}

impl LiveLogs {
    /// The lines of job `job_id` from now on, and the latest it wrote
    /// before: the two never overlap and nothing falls between them.
    pub fn follow(&self, job_id: &str) -> (Backlog, broadcast::Receiver<Arc<LiveLine>>) {
        let backlogs = lock(&self.backlogs);
        let receiver = self.lines.subscribe();
        let backlog = backlogs
            .get(job_id)
            .map_or_else(Backlog::default, |kept| Backlog {
                lines: kept.lines.iter().cloned().collect(),
                dropped: kept.dropped,
            });
        (backlog, receiver)
    }

    /// The sink of one attempt: its lines are kept while it runs, go to the
    /// followers (when there are any) and to `also`.
    pub fn sink(&self, job_id: &str, attempt: u32, also: Option<LogSink>) -> LogSink {
        let lines = self.lines.clone();
        let forget = Forget {
            backlogs: self.backlogs.clone(),
            job_id: job_id.into(),
            attempt,
        };
        Arc::new(move |line: &LogLine| {
            if let Some(also) = &also {
                also(line);
            }
            let live = Arc::new(LiveLine {
                job_id: forget.job_id.to_string(),
                attempt,
                line: line.clone(),
            });
            let mut backlogs = lock(&forget.backlogs);
            let kept = backlogs
                .entry(forget.job_id.clone())
                .or_insert_with(|| Kept::new(attempt));
            // A later attempt starts afresh; an earlier one's late line is
            // only sent.
            if kept.attempt < attempt {
                *kept = Kept::new(attempt);
            }
            if kept.attempt == attempt {
                kept.push(live.clone());
            }
            // Sent while the backlogs are locked, so that a new follower
            // gets each line once: in its backlog or from the channel.
            if lines.receiver_count() > 0 {
                let _ = lines.send(live);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_sandbox::capabilities::log::{LogLevel, LogSource};

    fn line(message: &str) -> LogLine {
        LogLine {
            at_ms: 0,
            source: LogSource::Log,
            level: LogLevel::Info,
            message: message.to_owned(),
        }
    }

    fn messages(backlog: &Backlog) -> Vec<&str> {
        backlog
            .lines
            .iter()
            .map(|l| l.line.message.as_str())
            .collect()
    }

    #[test]
    fn a_late_follower_gets_the_earlier_lines_then_the_new_ones_once() {
        let logs = LiveLogs::default();
        let sink = logs.sink("job", 1, None);
        sink(&line("one"));
        sink(&line("two"));
        let (backlog, mut receiver) = logs.follow("job");
        assert_eq!(messages(&backlog), ["one", "two"]);
        assert_eq!(backlog.dropped, 0);
        sink(&line("three"));
        let next = receiver.try_recv().expect("a line");
        assert_eq!(next.line.message, "three");
        assert!(receiver.try_recv().is_err(), "nothing twice");
        // Another job's follower sees none of it.
        assert!(logs.follow("other").0.lines.is_empty());
    }

    #[test]
    fn the_backlog_keeps_the_latest_bytes_and_counts_the_rest() {
        let logs = LiveLogs::default();
        let sink = logs.sink("job", 1, None);
        let long = "x".repeat(1_000);
        for _ in 0..200 {
            sink(&line(&long));
        }
        let (backlog, _) = logs.follow("job");
        let kept = backlog.lines.len();
        assert_eq!(kept, BACKLOG_BYTES / 1_064);
        assert_eq!(backlog.dropped, 200 - kept as u64);
    }

    #[test]
    fn a_line_larger_than_the_backlog_is_kept_alone() {
        let logs = LiveLogs::default();
        let sink = logs.sink("job", 1, None);
        sink(&line("small"));
        sink(&line(&"x".repeat(BACKLOG_BYTES * 2)));
        let (backlog, _) = logs.follow("job");
        assert_eq!(backlog.lines.len(), 1);
        assert_eq!(backlog.lines[0].line.message.len(), BACKLOG_BYTES * 2);
        assert_eq!(backlog.dropped, 1);
    }

    #[test]
    fn an_ended_attempt_is_forgotten_and_a_retry_starts_afresh() {
        let logs = LiveLogs::default();
        let first = logs.sink("job", 1, None);
        first(&line("attempt one"));
        let second = logs.sink("job", 2, None);
        second(&line("attempt two"));
        // A late line of the first attempt does not replace the second's.
        first(&line("late"));
        assert_eq!(messages(&logs.follow("job").0), ["attempt two"]);
        // The first attempt's sink goes after the second began: the
        // second's lines stay.
        drop(first);
        assert_eq!(messages(&logs.follow("job").0), ["attempt two"]);
        drop(second);
        assert!(logs.follow("job").0.lines.is_empty());
        assert!(lock(&logs.backlogs).is_empty(), "nothing left behind");
    }
}

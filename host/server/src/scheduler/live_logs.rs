//! Attempts' log lines as they are written, for whoever follows a job
//! (`GET /v1/jobs/{id}/logs?follow=true`). A log is stored when its
//! attempt ends; until then its lines are only here. Lines pass through a
//! bounded channel: a follower too slow to keep up is told how many it
//! missed, and nothing waits for it.

use std::sync::Arc;

use tokio::sync::broadcast;
use warren_sandbox::capabilities::log::{LogLine, LogSink};

/// Lines kept for followers that fall behind.
const CAPACITY: usize = 4_096;

/// One line of a running attempt.
#[derive(Debug, Clone)]
pub struct LiveLine {
    pub job_id: String,
    pub attempt: u32,
    pub line: LogLine,
}

/// Where attempts' lines go live.
#[derive(Debug, Clone)]
pub struct LiveLogs {
    lines: broadcast::Sender<Arc<LiveLine>>,
}

impl Default for LiveLogs {
    fn default() -> Self {
        Self {
            lines: broadcast::channel(CAPACITY).0,
        }
    }
}

impl LiveLogs {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveLine>> {
        self.lines.subscribe()
    }

    /// The sink of one attempt: its lines go to the followers (when there
    /// are any) and to `also`.
    pub fn sink(&self, job_id: &str, attempt: u32, also: Option<LogSink>) -> LogSink {
        let (lines, job_id) = (self.lines.clone(), job_id.to_owned());
        Arc::new(move |line: &LogLine| {
            if let Some(also) = &also {
                also(line);
            }
            if lines.receiver_count() > 0 {
                let _ = lines.send(Arc::new(LiveLine {
                    job_id: job_id.clone(),
                    attempt,
                    line: line.clone(),
                }));
            }
        })
    }
}

//! `GET /v1/jobs/{id}/logs?follow=true`: a job's log lines as its attempts
//! write them, as Server-Sent Events, until the job stops running; first
//! the latest lines its running attempt wrote before.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast;

use super::AppState;
use crate::scheduler::live_logs::LiveLine;
use warren_vocabulary::JobState;

/// How often a follower looks whether the job still runs.
const CHECK: Duration = Duration::from_millis(250);

/// What a follower sends next.
enum Next {
    Line(Arc<LiveLine>),
    Lagged(u64),
    /// The job stopped running, in this state.
    End(Option<JobState>),
}

struct Follow {
    state: AppState,
    job_id: String,
    /// Lines written before the follower came, sent first.
    backlog: VecDeque<Arc<LiveLine>>,
    /// Earlier lines of the running attempt not kept, told first.
    not_kept: u64,
    lines: broadcast::Receiver<Arc<LiveLine>>,
    ended: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Next> {
        if self.ended {
            return None;
        }
        if self.not_kept > 0 {
            return Some(Next::Lagged(std::mem::take(&mut self.not_kept)));
        }
        if let Some(line) = self.backlog.pop_front() {
            return Some(Next::Line(line));
        }
        let mut check = tokio::time::interval(CHECK);
        check.tick().await;
        loop {
            tokio::select! {
                // Lines already sent go out before the end is told.
                biased;
                received = self.lines.recv() => match received {
                    Ok(line) if line.job_id == self.job_id => return Some(Next::Line(line)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        return Some(Next::Lagged(skipped));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.ended = true;
                        return Some(Next::End(None));
                    }
                },
                _ = check.tick() => {
                    let id = self.job_id.clone();
                    let state = self
                        .state
                        .engine
                        .database()
                        .query(move |conn| crate::db::runs::job_run(conn, &id))
                        .await
                        .ok()
                        .flatten()
                        .map(|(_, state)| state);
                    let running = state.is_some_and(|s| {
                        matches!(s, JobState::Pending | JobState::Ready | JobState::Running)
                    });
                    if !running {
                        self.ended = true;
                        return Some(Next::End(state));
                    }
                }
            }
        }
    }
}

/// The stream: `line` events (`{"attempt", "at_ms", "source", "level",
/// "message"}`), `lagged` (`{"skipped"}`) for lines the follower does not
/// get (written before the latest 64 KiB it gets first, or missed when it
/// fell behind), and a last `end` (`{"state"}`) once the job no longer
/// runs.
pub fn follow(state: AppState, job_id: String) -> Response {
    let (backlog, lines) = state.engine.follow_logs(&job_id);
    let follow = Follow {
        state,
        job_id,
        backlog: backlog.lines.into(),
        not_kept: backlog.dropped,
        lines,
        ended: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = match follow.next().await? {
            Next::Line(live) => Event::default().event("line").json_data(json!({
                "attempt": live.attempt,
                "at_ms": live.line.at_ms,
                "source": live.line.source,
                "level": live.line.level,
                "message": live.line.message,
            })),
            Next::Lagged(skipped) => Event::default()
                .event("lagged")
                .json_data(json!({"skipped": skipped})),
            Next::End(state) => Event::default()
                .event("end")
                .json_data(json!({"state": state})),
        };
        let event = event.unwrap_or_else(|_| Event::default().comment("unserializable line"));
        Some((Ok::<_, Infallible>(event), follow))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

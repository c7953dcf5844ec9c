//! History as Server-Sent Events: one run's (the stream ends after the run
//! does) or every run's. Each event's SSE id is its history id; a client
//! resumes with `Last-Event-ID` or `?after=`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiPath, ApiQuery, bad_query, check_id};
use super::params::{LastEventId, RunId};
use super::schemas::SseEvent;
use super::views::EventRow;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;
use crate::scheduler::RunWatch;

/// Rows read from the history at a time.
const BATCH: usize = 500;
/// A stream with nothing new checks again after this long even without a
/// commit signal (submissions are committed outside the scheduler).
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start after this event id (or send `Last-Event-ID`).
    #[param(minimum = 0)]
    after: Option<i64>,
}

fn start_after(headers: &HeaderMap, query: &EventsQuery) -> Result<i64, ApiError> {
    // A malformed header is refused even when `?after=` wins over it.
    let header = last_event_id(headers)?;
    if let Some(after) = query.after {
        if after < 0 {
            return Err(bad_query(
                "after",
                &after.to_string(),
                "not an event id (a whole number from 0)",
            ));
        }
        return Ok(after);
    }
    Ok(header.unwrap_or(0))
}

/// `Last-Event-ID`: absent, or an event id in digits.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|v| (1..=19).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            // Past the last id there is nothing: a larger one waits for
            // nothing, as the largest does.
            .map(|v| Some(i64::try_from(v).unwrap_or(i64::MAX)))
            .ok_or_else(|| ApiError::bad_request("invalid_id", "Last-Event-ID is not an event id")),
    }
}

#[utoipa::path(
    get, path = "/v1/runs/{id}/events", operation_id = "run_events", tag = "runs",
    params(RunId, EventsQuery, LastEventId),
    responses(
        (status = 200, description = "A stream of Server-Sent Events (`text/event-stream`, not JSON): each event's `id` is its history id, `event` its kind (`run`, `job` or `cancel`) and `data` one line of JSON, an `EventRow` (see the components' schemas); comments keep the connection alive. The stream ends after the run does",
         content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "`invalid_id` (a malformed run id or `Last-Event-ID`), or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A run's history, live, from the start or after an event.
pub async fn run_events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_id("run", &id)?;
    let run_id = id.clone();
    let found = state
        .engine
        .database()
        .query(move |conn| reads::run_state(conn, &run_id))
        .await?;
    if found.is_none() {
        return Err(ApiError::not_found(format!("run {id}")));
    }
    let after = start_after(&headers, &query)?;
    Ok(sse(state, Some(id), after))
}

#[utoipa::path(
    get, path = "/v1/events", operation_id = "all_events", tag = "runs", params(EventsQuery, LastEventId),
    responses(
        (status = 200, description = "A stream of Server-Sent Events of every run (`text/event-stream`, not JSON), as for one run's; it does not end",
         content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "`invalid_id` (a malformed `Last-Event-ID`), or `invalid_query`", body = ErrorBody),
    )
)]
/// Every run's history, live.
pub async fn all_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = start_after(&headers, &query)?;
    Ok(sse(state, None, after))
}

struct Follow {
    state: AppState,
    run_id: Option<String>,
    after: i64,
    buffered: VecDeque<EventRow>,
    /// Every run's stream: changes after each commit of the scheduler.
    commits: tokio::sync::watch::Receiver<u64>,
    /// One run's stream: woken only by the commits that touch that run.
    run_changes: Option<RunWatch>,
    /// The run was seen ended after a read that found no event: the next
    /// read, which sees everything committed with the end, is the last.
    ended: bool,
}

fn sse(
    state: AppState,
    run_id: Option<String>,
    after: i64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let commits = state.engine.commits();
    let run_changes = run_id.as_deref().map(|id| state.engine.watch_changes(id));
    let follow = Follow {
        state,
        run_id,
        after,
        buffered: VecDeque::new(),
        commits,
        run_changes,
        ended: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let row = follow.next().await?;
        let event = Event::default()
            .id(row.id.to_string())
            .event(row.kind.clone())
            .json_data(&row)
            .unwrap_or_else(|_| Event::default().comment("unserializable event"));
        Some((Ok(event), follow))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

impl Follow {
    /// The next event, waiting for one if needed; `None` once a run's
    /// stream is over or the database is gone.
    async fn next(&mut self) -> Option<EventRow> {
        loop {
            if let Some(row) = self.buffered.pop_front() {
                self.after = row.id;
                return Some(row);
            }
            // Enabled before the read: news committed after it wakes us.
            let mut news = self.run_changes.as_ref().map(|w| Box::pin(w.notified()));
            if let Some(news) = news.as_mut() {
                news.as_mut().enable();
            }
            let (run_id, after) = (self.run_id.clone(), self.after);
            let rows = self
                .state
                .engine
                .database()
                .query(move |conn| reads::events_after(conn, run_id.as_deref(), after, BATCH))
                .await
                .ok()?;
            if !rows.is_empty() {
                self.buffered.extend(rows.into_iter().map(EventRow::from));
                // A retried run goes on after an end: its state is read again.
                self.ended = false;
                continue;
            }
            if let Some(run_id) = &self.run_id {
                // Every event is out and the run has ended (a retried run
                // may end more than once: only its state now counts). The
                // end may have been committed after the events were read:
                // they are read once more, since the end and its events
                // are committed together.
                if self.ended {
                    return None;
                }
                let run_id = run_id.clone();
                self.ended = self
                    .state
                    .engine
                    .database()
                    .query(move |conn| reads::run_state(conn, &run_id))
                    .await
                    .ok()??
                    .is_terminal();
                if self.ended {
                    continue;
                }
            }
            let engine_stopped = match news {
                Some(_) if self.run_changes.as_ref().is_some_and(RunWatch::is_closed) => true,
                Some(news) => {
                    let _ = tokio::time::timeout(POLL, news).await;
                    false
                }
                None => matches!(
                    tokio::time::timeout(POLL, self.commits.changed()).await,
                    Ok(Err(_))
                ),
            };
            if engine_stopped {
                // The engine has stopped: keep polling, slowly.
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

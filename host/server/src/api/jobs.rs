//! `/v1/jobs/{id}`: a job with its attempts and usage, its whole input and
//! output, its logs, retry.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, check_id, page_limit, shown};
use super::params::{AttemptNumber, JobId};
use super::schemas::SseLogEvent;
use super::views::{AttemptLogView, JobDetail, fit, json_len, json_response};
use super::{AppState, MAX_ATTEMPTS_SHOWN, MAX_INLINE_BYTES, MAX_RESPONSE_BYTES};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads::{self, JobText};
use warren_vocabulary::JobState;

#[utoipa::path(
    get, path = "/v1/jobs/{id}", operation_id = "get_job", tag = "jobs", params(JobId),
    responses(
        (status = 200, description = "The job, its input and output (inline up to 64 KiB each), its latest 100 attempts (with usage) and its artifacts", body = JobDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A job with its latest attempts, their usage, and its artifacts.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, ApiError> {
    check_id("job", &id)?;
    let job_id = id.clone();
    let job = state
        .engine
        .database()
        .query(move |conn| reads::job_detail(conn, &job_id, MAX_INLINE_BYTES, MAX_ATTEMPTS_SHOWN))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(job.into()))
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}/input", operation_id = "get_job_input", tag = "jobs", params(JobId),
    responses(
        (status = 200, description = "The job's whole input, as stored", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A job's whole input, however long.
pub async fn input(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    job_text(&state, id, JobText::Input).await
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}/output", operation_id = "get_job_output", tag = "jobs", params(JobId),
    responses(
        (status = 200, description = "The job's whole output, as the plugin produced it", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job, or it has no output (yet)", body = ErrorBody),
    )
)]
/// A job's whole output, however long (views inline it only up to 64 KiB).
pub async fn output(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    job_text(&state, id, JobText::Output).await
}

async fn job_text(state: &AppState, id: String, which: JobText) -> Result<Response, ApiError> {
    check_id("job", &id)?;
    let job_id = id.clone();
    let text = state
        .engine
        .database()
        .query(move |conn| reads::job_text(conn, &job_id, which))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?
        .ok_or_else(|| ApiError::not_found(format!("an output of job {id}")))?;
    Ok(json_response(text))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Cursor: the `next` of the previous page (an attempt number).
    #[param(minimum = 0, maximum = 4294967295_u64)]
    after: Option<u32>,
    /// Attempts per page, 1 to 500; 100 by default. A page also ends
    /// before the response would pass 1 MiB.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `true`: instead of the stored logs, the lines of its attempts as
    /// they are written, as Server-Sent Events, until the job stops running.
    follow: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobLogs {
    pub job_id: String,
    /// In attempt order; a log is stored when its attempt ends.
    pub attempts: Vec<AttemptLogView>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<u32>,
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}/logs", operation_id = "get_job_logs", tag = "jobs", params(JobId, LogsQuery),
    responses(
        (status = 200, description = "A page of attempts with their logs (inline up to 64 KiB each); at most 1 MiB. With `follow=true`, a stream of Server-Sent Events (`text/event-stream`) instead: `line` events (`{\"attempt\", \"at_ms\", \"source\", \"level\", \"message\"}`), first the latest 64 KiB of lines the running attempt wrote, then as the job's attempts write them, `lagged` (`{\"skipped\"}`) for lines not sent (written before those 64 KiB, or missed by a client that fell behind), and a last `end` (`{\"state\"}`) once the job no longer runs", content((JobLogs = "application/json"), (SseLogEvent = "text/event-stream"))),
        (status = 400, description = "`invalid_id`, or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// Each attempt's captured log (log lines, stdout and stderr), a page at
/// a time.
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    check_id("job", &id)?;
    if query.follow == Some(true) {
        let job_id = id.clone();
        let found = state
            .engine
            .database()
            .query(move |conn| crate::db::runs::job_run(conn, &job_id))
            .await?;
        if found.is_none() {
            return Err(ApiError::not_found(format!("job {id}")));
        }
        return Ok(super::live_logs::follow(state, id));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let after = query.after.unwrap_or(0);
    let job_id = id.clone();
    let page = state
        .engine
        .database()
        .query(move |conn| {
            if crate::db::runs::job_run(conn, &job_id)?.is_none() {
                return Ok(None);
            }
            reads::job_logs(
                conn,
                &job_id,
                after,
                limit,
                MAX_INLINE_BYTES,
                MAX_RESPONSE_BYTES,
            )
            .map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let mut logs = JobLogs {
        attempts: Vec::new(),
        // Measured at its longest.
        next: Some(u32::MAX),
        job_id: id,
    };
    let budget = MAX_RESPONSE_BYTES.saturating_sub(json_len(&logs));
    let mut attempts: Vec<AttemptLogView> = page
        .items
        .into_iter()
        .map(|record| AttemptLogView::new(&logs.job_id, record))
        .collect();
    let cut = fit(&mut attempts, budget);
    logs.next = (page.more || cut)
        .then(|| attempts.last().map(|a| a.attempt))
        .flatten();
    logs.attempts = attempts;
    Ok(Json(logs).into_response())
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}/attempts/{number}/log", operation_id = "get_attempt_log", tag = "jobs", params(AttemptNumber),
    responses(
        (status = 200, description = "The attempt's whole log, `{lines, dropped_bytes}`, as stored", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job or attempt, or the attempt still runs", body = ErrorBody),
    )
)]
/// One attempt's whole log (at most the attempt's `max_log_bytes`, plus
/// a little per line).
pub async fn attempt_log(
    State(state): State<AppState>,
    ApiPath((id, number)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    check_id("job", &id)?;
    let number = number
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| number.parse::<u32>().ok())
        .flatten()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!(
                    "{} is not an attempt number (a whole number from 1)",
                    shown(&number)
                ),
            )
        })?;
    let job_id = id.clone();
    let log = state
        .engine
        .database()
        .query(move |conn| reads::attempt_log(conn, &job_id, number))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("attempt {number} of job {id}")))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "a log of attempt {number} of job {id} (it is stored when the attempt ends)"
            ))
        })?;
    Ok(json_response(log))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub job_id: String,
    pub run_id: String,
    pub state: JobState,
}

#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", operation_id = "retry_job", tag = "jobs", params(JobId),
    responses(
        (status = 200, description = "The job waits to run again", body = Retried),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the job did not fail, or its run was cancelled", body = ErrorBody),
    )
)]
/// Run a failed job (or one that needed input) again, with a fresh retry
/// budget; the dependents it caused to be skipped wait for it again.
pub async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Retried>, ApiError> {
    check_id("job", &id)?;
    let run_id = state.engine.retry_job(&id).await?;
    Ok(Json(Retried {
        job_id: id,
        run_id,
        state: JobState::Pending,
    }))
}

//! `/v1/jobs/{id}`: a job with its attempts and usage, its logs, retry.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiPath, check_id};
use super::views::{AttemptLogView, JobDetail};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;
use warren_vocabulary::JobState;

#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, its input, attempts (with usage) and artifacts", body = JobDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A job with its attempts, their usage, and its artifacts.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, ApiError> {
    check_id("job", &id)?;
    let job_id = id.clone();
    let job = state
        .engine
        .database()
        .query(move |conn| reads::get_job(conn, &job_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(job.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobLogs {
    pub job_id: String,
    /// In attempt order; a log is stored when its attempt ends.
    pub attempts: Vec<AttemptLogView>,
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}/logs", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = JobLogs),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// Each attempt's captured log (log lines, stdout and stderr).
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobLogs>, ApiError> {
    check_id("job", &id)?;
    let job_id = id.clone();
    let attempts = state
        .engine
        .database()
        .query(move |conn| {
            if crate::db::runs::job_run(conn, &job_id)?.is_none() {
                return Ok(None);
            }
            reads::job_logs(conn, &job_id).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(JobLogs {
        job_id: id,
        attempts: attempts.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub job_id: String,
    pub run_id: String,
    pub state: JobState,
}

#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job waits to run again", body = Retried),
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

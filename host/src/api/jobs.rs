//! `/v1/jobs/{id}`: a job with its attempts and usage, its logs, retry.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiPath, check_id};
use crate::api::ApiError;
use crate::db::views;

pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("job", &id)?;
    let job = state
        .engine
        .database()
        .read(|conn| views::get_job(conn, &id))?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(serde_json::to_value(job).map_err(ApiError::internal)?))
}

/// Each attempt's captured log (log lines, stdout and stderr).
pub async fn logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("job", &id)?;
    let db = state.engine.database();
    let exists = db.read(|conn| views::get_job(conn, &id))?.is_some();
    if !exists {
        return Err(ApiError::not_found(format!("job {id}")));
    }
    let attempts = db.read(|conn| views::job_logs(conn, &id))?;
    Ok(Json(json!({ "job_id": id, "attempts": attempts })))
}

/// Runs a job that ended failed, cancelled or needing input again; its
/// skipped dependents wait for it again.
pub async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("job", &id)?;
    let run_id = state.engine.retry_job(&id).await?;
    Ok(Json(
        json!({ "job_id": id, "run_id": run_id, "state": "pending" }),
    ))
}

//! Artifacts: a run's list, and the bytes of one by digest.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiPath, check_digest, check_id};
use crate::api::ApiError;
use crate::db::views;

pub async fn list_for_run(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("run", &id)?;
    if state.engine.run(&id)?.is_none() {
        return Err(ApiError::not_found(format!("run {id}")));
    }
    let artifacts = state
        .engine
        .database()
        .read(|conn| views::run_artifacts(conn, &id))?;
    Ok(Json(json!({ "run_id": id, "artifacts": artifacts })))
}

/// The bytes, if some job recorded an artifact with this digest.
pub async fn download(
    State(state): State<AppState>,
    ApiPath(digest): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_digest(&digest)?;
    let recorded = state
        .engine
        .database()
        .read(|conn| views::artifact_exists(conn, &digest))?;
    if !recorded {
        return Err(ApiError::not_found(format!("artifact {digest}")));
    }
    let bytes = state
        .runtime
        .artifact_store()
        .get(&digest, u64::MAX)
        .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ETAG, format!("\"{digest}\"")),
        ],
        bytes,
    )
        .into_response())
}

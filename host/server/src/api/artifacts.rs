//! Artifacts: a run's list, and the bytes of one by digest.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use serde::Serialize;
use tokio::io::AsyncReadExt as _;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiPath, check_digest, check_id};
use super::views::ArtifactView;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;

#[derive(Debug, Serialize, ToSchema)]
pub struct RunArtifacts {
    pub run_id: String,
    pub artifacts: Vec<ArtifactView>,
}

#[utoipa::path(
    get, path = "/v1/runs/{id}/artifacts", tag = "artifacts", params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunArtifacts),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// Every artifact the run's jobs produced.
pub async fn list_for_run(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunArtifacts>, ApiError> {
    check_id("run", &id)?;
    if state.engine.run(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("run {id}")));
    }
    let run_id = id.clone();
    let artifacts = state
        .engine
        .database()
        .query(move |conn| reads::run_artifacts(conn, &run_id))
        .await?;
    Ok(Json(RunArtifacts {
        run_id: id,
        artifacts: artifacts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get, path = "/v1/artifacts/{sha256}", tag = "artifacts",
    params(("sha256" = String, Path, description = "64 lowercase hex digits")),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no job recorded this digest", body = ErrorBody),
    )
)]
/// An artifact's bytes, if some job recorded an artifact with this digest.
pub async fn download(
    State(state): State<AppState>,
    ApiPath(digest): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_digest(&digest)?;
    let sha256 = digest.clone();
    let recorded = state
        .engine
        .database()
        .query(move |conn| reads::artifact_exists(conn, &sha256))
        .await?;
    if !recorded {
        return Err(ApiError::not_found(format!("artifact {digest}")));
    }
    let (file, size) = state
        .runtime
        .artifact_store()
        .open_blob(&digest)
        .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::ETAG, format!("\"{digest}\"")),
        ],
        Body::from_stream(chunks(tokio::fs::File::from_std(file))),
    )
        .into_response())
}

/// Bytes read per chunk of a download: large artifacts are streamed, never
/// held whole in memory.
const CHUNK: usize = 64 << 10;

fn chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    stream::try_unfold(file, |mut file| async move {
        let mut buffer = BytesMut::with_capacity(CHUNK);
        let read = file.read_buf(&mut buffer).await?;
        Ok((read > 0).then(|| (buffer.freeze(), file)))
    })
}

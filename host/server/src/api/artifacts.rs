//! Artifacts: a run's list, and the bytes of one by digest.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;
use utoipa::{IntoParams, ToSchema};
use warren_sandbox::artifact_store::ArtifactStoreError;
use warren_vocabulary::text;

use super::AppState;
use super::extract::{ApiPath, ApiQuery, bad_query, check_digest, check_id, page_limit};
use super::params::{ArtifactDigest, RunId};
use super::views::{ArtifactView, Binary};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArtifactsQuery {
    /// Cursor: the `next` of the previous page.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunArtifacts {
    pub run_id: String,
    /// In the order they were recorded.
    pub artifacts: Vec<ArtifactView>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/runs/{id}/artifacts", operation_id = "list_run_artifacts", tag = "artifacts", params(RunId, ArtifactsQuery),
    responses(
        (status = 200, description = "A page of the artifacts the run's jobs produced", body = RunArtifacts),
        (status = 400, description = "`invalid_id`, or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// The artifacts the run's jobs produced, a page at a time.
pub async fn list_for_run(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ArtifactsQuery>,
) -> Result<Json<RunArtifacts>, ApiError> {
    check_id("run", &id)?;
    let limit = page_limit("limit", query.limit, 100)?;
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(bad_query(
            "after",
            &after.to_string(),
            "not a cursor (pass the `next` of the previous page)",
        ));
    }
    let run_id = id.clone();
    let page = state
        .engine
        .database()
        .query(move |conn| {
            if reads::run_state(conn, &run_id)?.is_none() {
                return Ok(None);
            }
            reads::run_artifacts(conn, &run_id, after, limit).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
    let next = page
        .more
        .then(|| page.items.last().map(|(position, _)| *position))
        .flatten();
    Ok(Json(RunArtifacts {
        run_id: id,
        artifacts: page.items.into_iter().map(|(_, a)| a.into()).collect(),
        next,
    }))
}

#[utoipa::path(
    get, path = "/v1/artifacts/{sha256}", operation_id = "download_artifact", tag = "artifacts", params(ArtifactDigest),
    responses(
        (status = 200, description = "The bytes: a blob streamed from its file, an agent's document (at most 1 MiB) whole", content_type = "application/octet-stream", body = Binary),
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
    let headers = |size: u64| {
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::ETAG, format!("\"{digest}\"")),
        ]
    };
    let store = state.runtime.artifact_store().clone();
    match store.open_blob(&digest) {
        Ok((file, size)) => Ok((
            headers(size),
            Body::from_stream(chunks(tokio::fs::File::from_std(file))),
        )
            .into_response()),
        // No blob: an agent's document, whose bytes are the document's
        // content (at most a document's size).
        Err(ArtifactStoreError::NotFound(_)) => {
            let sha256 = digest.clone();
            let bytes = tokio::task::spawn_blocking(move || {
                store.get(&sha256, text::MAX_DOCUMENT_BYTES as u64)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            Ok((headers(bytes.len() as u64), bytes).into_response())
        }
        Err(e) => Err(ApiError::internal(e)),
    }
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

//! `/v1/stories/{story}/memory`: what plugins remembered for a story.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, shown};
use super::{AppState, MAX_PAGE};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemoryQuery {
    /// Cursor: the `next` of the previous page.
    start_after: Option<String>,
    /// 1 to 500; 100 by default.
    limit: Option<usize>,
}

/// A key and its value: as text when it is UTF-8, as hex otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryEntry {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryPage {
    pub story_id: String,
    pub entries: Vec<MemoryEntry>,
    pub next: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/stories/{story}/memory", tag = "memory",
    params(("story" = String, Path), MemoryQuery),
    responses((status = 200, body = MemoryPage), (status = 400, description = "`invalid_id`", body = ErrorBody))
)]
/// A story's memory, in key order.
pub async fn list(
    State(state): State<AppState>,
    ApiPath(story): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemoryQuery>,
) -> Result<Json<MemoryPage>, ApiError> {
    if !warren_vocabulary::names::is_valid_story_id(&story) {
        return Err(ApiError::bad_request(
            "invalid_id",
            format!("{} is not a story id", shown(&story)),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let namespace = format!("story:{story}");
    let entries = state
        .engine
        .database()
        .query(move |conn| {
            reads::memory_entries(conn, &namespace, query.start_after.as_deref(), limit)
        })
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|(k, _)| k.clone()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|(key, value)| match String::from_utf8(value) {
            Ok(text) => MemoryEntry {
                key,
                value: Some(text),
                value_hex: None,
            },
            Err(e) => MemoryEntry {
                key,
                value: None,
                value_hex: Some(hex::encode(e.into_bytes())),
            },
        })
        .collect();
    Ok(Json(MemoryPage {
        story_id: story,
        entries,
        next,
    }))
}

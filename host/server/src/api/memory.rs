//! `/v1/stories/{story}/memory`: what plugins remembered for a story.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, bad_query, check_story_id, page_limit};
use super::params::StoryId;
use super::views::fit;
use super::{AppState, MAX_RESPONSE_BYTES};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads;
use warren_sandbox::capabilities::memory::MAX_KEY_BYTES;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemoryQuery {
    /// Cursor: the `next` of the previous page (a key).
    #[param(max_length = 512)]
    start_after: Option<String>,
    /// 1 to 500; 100 by default. A page also ends before its values
    /// would pass 1 MiB of JSON (it holds at least one entry).
    #[param(minimum = 1, maximum = 500)]
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
    get, path = "/v1/stories/{story}/memory", operation_id = "list_story_memory", tag = "memory",
    params(StoryId, MemoryQuery),
    responses(
        (status = 200, description = "A page of entries: at most 1 MiB of JSON, or one entry (a value is at most 1 MiB as stored)", body = MemoryPage),
        (status = 400, description = "`invalid_id`, or `invalid_query`", body = ErrorBody),
    )
)]
/// A story's memory, in key order.
pub async fn list(
    State(state): State<AppState>,
    ApiPath(story): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemoryQuery>,
) -> Result<Json<MemoryPage>, ApiError> {
    check_story_id(&story)?;
    if let Some(key) = &query.start_after
        && key.len() > MAX_KEY_BYTES
    {
        return Err(bad_query(
            "start_after",
            key,
            "not a key (keys are at most 512 bytes)",
        ));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let namespace = format!("story:{story}");
    let page = state
        .engine
        .database()
        .query(move |conn| {
            reads::memory_entries(
                conn,
                &namespace,
                query.start_after.as_deref(),
                limit,
                MAX_RESPONSE_BYTES,
            )
        })
        .await?;
    let mut entries: Vec<MemoryEntry> = page
        .items
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
    // Room for the rest: a story id and a key (512 bytes, escaped).
    let cut = fit(&mut entries, MAX_RESPONSE_BYTES.saturating_sub(4 << 10));
    let next = (page.more || cut)
        .then(|| entries.last().map(|e| e.key.clone()))
        .flatten();
    Ok(Json(MemoryPage {
        story_id: story,
        entries,
        next,
    }))
}

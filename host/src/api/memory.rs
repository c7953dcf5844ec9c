//! `/v1/stories/{story}/memory`: what plugins remembered for a story.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiPath, ApiQuery, shown};
use super::{AppState, MAX_PAGE};
use crate::api::ApiError;
use crate::db::views;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryQuery {
    start_after: Option<String>,
    limit: Option<usize>,
}

/// Values are shown as text when they are UTF-8, as hex otherwise.
pub async fn list(
    State(state): State<AppState>,
    ApiPath(story): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemoryQuery>,
) -> Result<Json<Value>, ApiError> {
    if !crate::scheduler::is_valid_story_id(&story) {
        return Err(ApiError::bad_request(
            "invalid_id",
            format!("{} is not a story id", shown(&story)),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let namespace = format!("story:{story}");
    let entries = state.engine.database().read(|conn| {
        views::memory_entries(conn, &namespace, query.start_after.as_deref(), limit)
    })?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|(k, _)| k.clone()))
        .flatten();
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(key, value)| match String::from_utf8(value) {
            Ok(text) => json!({ "key": key, "value": text }),
            Err(e) => json!({ "key": key, "value_hex": hex::encode(e.into_bytes()) }),
        })
        .collect();
    Ok(Json(
        json!({ "story_id": story, "entries": entries, "next": next }),
    ))
}

//! `/v1/runs`: start runs (from a template or inline), list, get, cancel.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, ApiPath, ApiQuery, check_id, check_name};
use super::{AppState, MAX_PAGE};
use crate::api::ApiError;
use crate::db::views::{self, RunFilter};
use crate::scheduler::model::RunState;
use crate::scheduler::spec::PipelineSpec;
use crate::scheduler::{PipelineSource, Submission};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// A stored template to run...
    template: Option<String>,
    /// ...at this version (default: its latest)...
    version: Option<i64>,
    /// ...or a pipeline given inline.
    pipeline: Option<PipelineSpec>,
    /// The run's input; jobs without their own get it.
    #[serde(default)]
    input: Value,
    story_id: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRun>,
) -> Result<Response, ApiError> {
    let pipeline = match (body.template, body.pipeline) {
        (Some(name), None) => {
            check_name("template", &name)?;
            PipelineSource::Template {
                name,
                version: body.version,
            }
        }
        (None, Some(spec)) if body.version.is_none() => PipelineSource::Inline(spec),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "give either `template` (and optionally `version`) or `pipeline`",
            ));
        }
    };
    let input = if body.input.is_null() {
        json!({})
    } else {
        body.input
    };
    let id = state
        .engine
        .submit(Submission {
            pipeline,
            input,
            story_id: body.story_id,
        })
        .await?;
    let location = format!("/v1/runs/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({ "id": id, "state": RunState::Pending })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<RunState>,
    template: Option<String>,
    story_id: Option<String>,
    /// Cursor: the `next` of the previous page.
    before: Option<String>,
    limit: Option<usize>,
}

/// Newest first, a page at a time; `next` is the cursor for the page after.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(before) = &query.before {
        check_id("run", before)?;
    }
    if let Some(template) = &query.template {
        check_name("template", template)?;
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = RunFilter {
        state: query.state.map(|s| s.as_str().to_owned()),
        template: query.template,
        story_id: query.story_id,
        before: query.before,
        limit,
    };
    let runs = state
        .engine
        .database()
        .read(|conn| views::list_runs(conn, &filter))?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({ "runs": runs, "next": next })))
}

/// The run with its jobs.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("run", &id)?;
    let run = state
        .engine
        .run(&id)?
        .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
    Ok(Json(serde_json::to_value(run).map_err(ApiError::internal)?))
}

/// Stops the run's guests and cancels every job not finished; 409 if the
/// run had already ended.
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("run", &id)?;
    if state.engine.cancel(&id).await? {
        Ok(Json(json!({ "id": id, "cancelled": true })))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_ended",
            format!("run {id} has already ended"),
        ))
    }
}

//! `/v1/templates`: named, versioned pipelines. Creating one needs an admin
//! token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiJson, ApiPath, check_name};
use crate::api::ApiError;
use crate::db::{runs, views};
use crate::scheduler::spec::PipelineSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    name: String,
    pipeline: PipelineSpec,
}

/// Stores a new version (the first is 1).
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTemplate>,
) -> Result<impl IntoResponse, ApiError> {
    check_name("template", &body.name)?;
    let version = state
        .engine
        .create_template(&body.name, &body.pipeline)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": body.name, "version": version })),
    ))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let templates = state.engine.database().read(views::list_templates)?;
    Ok(Json(json!({ "templates": templates })))
}

pub async fn latest(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_name("template", &name)?;
    template(&state, &name, None)
}

pub async fn version(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    check_name("template", &name)?;
    template(&state, &name, Some(version))
}

fn template(state: &AppState, name: &str, version: Option<i64>) -> Result<Json<Value>, ApiError> {
    let (version, spec) = state
        .engine
        .database()
        .read(|conn| runs::get_template(conn, name, version))?
        .ok_or_else(|| match version {
            Some(v) => ApiError::not_found(format!("template {name} version {v}")),
            None => ApiError::not_found(format!("template {name}")),
        })?;
    let pipeline: Value = serde_json::from_str(&spec).map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "name": name, "version": version, "pipeline": pipeline }),
    ))
}

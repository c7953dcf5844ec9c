//! `/v1/templates`: named, versioned pipelines. Creating one needs an admin
//! token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiJson, ApiPath, check_name, check_version};
use super::views::TemplateSummary;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::{reads, runs};
use crate::scheduler::spec::PipelineSpec;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    name: String,
    pipeline: PipelineSpec,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateVersion {
    pub name: String,
    pub version: i64,
    /// Absent in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSpec>,
}

#[utoipa::path(
    post, path = "/v1/templates", tag = "templates", request_body = CreateTemplate,
    responses(
        (status = 201, description = "Stored as the next version (the first is 1)", body = TemplateVersion),
        (status = 403, description = "`forbidden`: needs an admin token", body = ErrorBody),
        (status = 422, description = "`invalid_pipeline`", body = ErrorBody),
    )
)]
/// Store a new version of a template.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTemplate>,
) -> Result<(StatusCode, Json<TemplateVersion>), ApiError> {
    check_name("template", &body.name)?;
    let version = state
        .engine
        .create_template(&body.name, &body.pipeline)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TemplateVersion {
            name: body.name,
            version,
            pipeline: None,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateSummary>,
}

#[utoipa::path(get, path = "/v1/templates", tag = "templates", responses((status = 200, body = TemplateList)))]
/// Template names and their latest versions.
pub async fn list(State(state): State<AppState>) -> Result<Json<TemplateList>, ApiError> {
    let templates = state.engine.database().query(reads::list_templates).await?;
    Ok(Json(TemplateList {
        templates: templates.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get, path = "/v1/templates/{name}", tag = "templates", params(("name" = String, Path)),
    responses((status = 200, body = TemplateVersion), (status = 404, description = "`not_found`", body = ErrorBody))
)]
/// A template's latest version.
pub async fn latest(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TemplateVersion>, ApiError> {
    check_name("template", &name)?;
    template(&state, name, None).await
}

#[utoipa::path(
    get, path = "/v1/templates/{name}/versions/{version}", tag = "templates",
    params(("name" = String, Path), ("version" = i64, Path, minimum = 1, description = "A version number, from 1")),
    responses(
        (status = 200, body = TemplateVersion),
        (status = 400, description = "`invalid_id`: a malformed name, or a version that is not a whole number from 1 to 2^63 - 1", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// One version of a template.
pub async fn version(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<TemplateVersion>, ApiError> {
    check_name("template", &name)?;
    let version = check_version(&version)?;
    template(&state, name, Some(version)).await
}

async fn template(
    state: &AppState,
    name: String,
    version: Option<i64>,
) -> Result<Json<TemplateVersion>, ApiError> {
    let template_name = name.clone();
    let (version, spec) = state
        .engine
        .database()
        .query(move |conn| runs::get_template(conn, &template_name, version))
        .await?
        .ok_or_else(|| match version {
            Some(v) => ApiError::not_found(format!("template {name} version {v}")),
            None => ApiError::not_found(format!("template {name}")),
        })?;
    let pipeline: PipelineSpec = serde_json::from_str(&spec).map_err(ApiError::internal)?;
    Ok(Json(TemplateVersion {
        name,
        version,
        pipeline: Some(pipeline),
    }))
}

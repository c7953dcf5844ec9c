//! `/v1/templates`: named, versioned pipelines. Creating one needs an admin
//! token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warren_vocabulary::names;

use super::AppState;
use super::extract::{
    ApiJson, ApiPath, ApiQuery, bad_query, check_name, check_version, page_limit,
};
use super::idempotency::{self, Idempotent, KeyHeader, Start};
use super::params::{self, TemplateName};
use super::views::TemplateSummary;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::{reads, runs};
use crate::scheduler::spec::PipelineSpec;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// Letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// at most 64.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
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
    post, path = "/v1/templates", operation_id = "create_template", tag = "templates", request_body = CreateTemplate, params(KeyHeader),
    responses(
        (status = 201, description = "Stored as the next version (the first is 1). With an `Idempotency-Key` used before for the same request: the first answer again", body = TemplateVersion,
         headers(("idempotent-replayed" = String, description = "`true` when this is the answer to an earlier request with the same `Idempotency-Key`"))),
        (status = 400, description = "`invalid_json`, `invalid_id` (a malformed name) or `invalid_header` (a malformed `Idempotency-Key`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: needs an admin token", body = ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: a request with this key is still being answered", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `max_body_bytes`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`, `invalid_pipeline` (the message names the job at fault, or says where and why `input_schema` is not a JSON Schema Warren can use) or `idempotency_key_reused` (the key came with another request)", body = ErrorBody),
    )
)]
/// Store a new version of a template.
pub async fn create(
    State(state): State<AppState>,
    request: Idempotent<ApiJson<CreateTemplate>>,
) -> Result<Response, ApiError> {
    let Idempotent {
        key,
        body: ApiJson(body),
    } = request;
    let db = state.engine.database().clone();
    let claim = match state.idempotency.start(&db, key).await? {
        Start::Answered(answer) => return Ok(answer),
        Start::Proceed(claim) => claim,
    };
    check_name("template", &body.name)?;
    // Runs to the end even if the client goes away: the engine's cache of
    // latest versions must learn of a version once it is committed.
    let task = state.clone();
    tokio::spawn(async move {
        let record = claim.as_ref().map(idempotency::Claim::record);
        let name = body.name.clone();
        let created = task
            .engine
            .create_template_with(&body.name, &body.pipeline, move |conn, version| {
                let answer = idempotency::answer(
                    StatusCode::CREATED,
                    &TemplateVersion {
                        name,
                        version,
                        pipeline: None,
                    },
                    None,
                )?;
                if let Some(record) = &record {
                    record.store(conn, &answer)?;
                }
                Ok(answer)
            })
            .await
            .map(|(_, answer)| answer)
            .map_err(ApiError::from);
        task.idempotency.finish(&db, claim, created).await
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TemplatesQuery {
    /// Cursor: the `next` of the previous page (a template name).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    after: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// In name order.
    pub templates: Vec<TemplateSummary>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/templates", operation_id = "list_templates", tag = "templates", params(TemplatesQuery),
    responses(
        (status = 200, body = TemplateList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
    )
)]
/// Template names and their latest versions, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TemplatesQuery>,
) -> Result<Json<TemplateList>, ApiError> {
    if let Some(after) = &query.after
        && !names::is_valid_template_name(after)
    {
        return Err(bad_query("after", after, "not a template name"));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let page = state
        .engine
        .database()
        .query(move |conn| reads::list_templates(conn, query.after.as_deref(), limit))
        .await?;
    let next = page
        .more
        .then(|| page.items.last().map(|t| t.name.clone()))
        .flatten();
    Ok(Json(TemplateList {
        templates: page.items.into_iter().map(Into::into).collect(),
        next,
    }))
}

#[utoipa::path(
    get, path = "/v1/templates/{name}", operation_id = "get_template", tag = "templates", params(TemplateName),
    responses(
        (status = 200, description = "The latest version, its pipeline with every default written out (the request that stored it, plus under 0.5 KiB per job)", body = TemplateVersion),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
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
    get, path = "/v1/templates/{name}/versions/{version}", operation_id = "get_template_version", tag = "templates",
    params(params::TemplateVersion),
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

//! `/v1/runs`: start runs (from a template or inline), list, get, cancel.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::params::RunId;
use super::schemas::CreateRunSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery, bad_query, check_id, check_name, page_limit};
use super::idempotency::{self, Idempotent, KeyHeader, Start};
use super::views::{RunSummary, RunView, json_response};
use super::{AppState, MAX_INLINE_BYTES, MAX_RESPONSE_BYTES};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::graph;
use crate::db::reads::{self, RunFilter};
use crate::scheduler::spec::PipelineSpec;
use crate::scheduler::{PipelineSource, Submission};
use warren_vocabulary::{RunState, names};

/// Give either `template` (and optionally `version`) or `pipeline`; the
/// OpenAPI description says so with [`CreateRunSchema`].
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
    /// Scopes story memory (1 to 128 letters, digits, `-`, `_`, `.`, `:`).
    story_id: Option<String>,
    /// An earlier run whose recorded answers to calls out answer this one's.
    replay: Option<String>,
    /// This run's budget, over its pipeline's.
    budget: Option<warren_vocabulary::RunBudget>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunCreated {
    pub id: String,
    pub state: RunState,
}

#[utoipa::path(
    post, path = "/v1/runs", operation_id = "create_run", tag = "runs", request_body = CreateRunSchema, params(KeyHeader),
    responses(
        (status = 201, description = "Stored; the run starts on its own. With an `Idempotency-Key` used before for the same request: the first answer again", body = RunCreated,
         headers(
            ("location" = String, description = "The run's URL"),
            ("idempotent-replayed" = String, description = "`true` when this is the answer to an earlier request with the same `Idempotency-Key`"),
         )),
        (status = 400, description = "`invalid_json`, `invalid_id` (a malformed template name or story id) or `invalid_header` (a malformed `Idempotency-Key`)", body = ErrorBody),
        (status = 404, description = "`unknown_template`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: a request with this key is still being answered", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `max_body_bytes`, or the run's pipeline and input are over what a run may hold", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`, `invalid_pipeline` (the message names the job), `invalid_input` (the input does not match the pipeline's `input_schema`; the message names where, as JSON pointers, and why), `unknown_replay` (`replay` names no run), `rejected_input` (a guard denied the input or a job's input: `details` has the guard, category, reason and the sha256 of what was refused, of which nothing was stored) or `idempotency_key_reused` (the key came with another request)", body = ErrorBody),
        (status = 503, description = "`guard_unavailable`: a guard could not answer (not loaded, a trap, a limit, an answer that is not a verdict), so the input was not let through; `details.guard` names it", body = ErrorBody),
    )
)]
/// Start a run, from a stored template or an inline pipeline.
pub async fn create(
    State(state): State<AppState>,
    request: Idempotent<ApiJson<CreateRun>>,
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
    let submission = Submission {
        pipeline,
        input,
        story_id: body.story_id,
        in_dir: None,
        replay: body.replay,
        budget: body.budget,
    };
    // Runs to the end even if the client goes away: a committed run must be
    // scheduled, and its key is kept with it.
    let task = state.clone();
    tokio::spawn(async move {
        let record = claim.as_ref().map(idempotency::Claim::record);
        let created = task
            .engine
            .submit_with(submission, move |conn, id| {
                let answer = idempotency::answer(
                    StatusCode::CREATED,
                    &RunCreated {
                        id: id.to_owned(),
                        state: RunState::Pending,
                    },
                    Some(format!("/v1/runs/{id}")),
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
pub struct ListQuery {
    state: Option<RunState>,
    /// Runs of this template.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    template: Option<String>,
    /// Runs of this story.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    story_id: Option<String>,
    /// Cursor: the `next` of the previous page (a run id).
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    before: Option<String>,
    /// 1 to 500; 50 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<String>,
    /// The newest event when this page was read: follow
    /// `/v1/events?after=` from it to see every change since.
    pub last_event_id: i64,
}

#[utoipa::path(
    get, path = "/v1/runs", operation_id = "list_runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, body = RunPage),
        (status = 400, description = "`invalid_query`: an unknown parameter, or a malformed value", body = ErrorBody),
    )
)]
/// Runs, newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    if let Some(before) = &query.before
        && !names::is_valid_id(before)
    {
        return Err(bad_query(
            "before",
            before,
            "not a run id (pass the `next` of the previous page)",
        ));
    }
    if let Some(template) = &query.template
        && !names::is_valid_template_name(template)
    {
        return Err(bad_query("template", template, "not a template name"));
    }
    if let Some(story) = &query.story_id
        && !names::is_valid_story_id(story)
    {
        return Err(bad_query(
            "story_id",
            story,
            "not a story id (1 to 128 letters, digits, `-`, `_`, `.`, `:`)",
        ));
    }
    let limit = page_limit("limit", query.limit, 50)?;
    let filter = RunFilter {
        state: query.state.map(|s| s.as_str().to_owned()),
        template: query.template,
        story_id: query.story_id,
        before: query.before,
        limit,
    };
    let (runs, last_event_id) = state
        .engine
        .database()
        .query(move |conn| {
            // Read first: a change after it is in the events after it.
            let last_event_id = graph::last_event_id(conn)?;
            Ok((reads::list_runs(conn, &filter)?, last_event_id))
        })
        .await?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let runs = runs.into_iter().map(Into::into).collect();
    Ok(Json(RunPage {
        runs,
        next,
        last_event_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Cursor: the `jobs_next` of the previous page (a job id of this run).
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    jobs_after: Option<String>,
    /// Jobs per page, 1 to 500; 100 by default. A page also ends before
    /// the response would pass 1 MiB.
    #[param(minimum = 1, maximum = 500)]
    jobs_limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/v1/runs/{id}", operation_id = "get_run", tag = "runs", params(RunId, RunQuery),
    responses(
        (status = 200, description = "The run with one page of its jobs; at most 1 MiB", body = RunView),
        (status = 400, description = "`invalid_id`, or `invalid_query` (a `jobs_after` that is not a job of this run, a `jobs_limit` out of range)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A run with a page of its jobs. A job's input and output are inline
/// when at most 64 KiB; longer ones are at `input_url` and `output_url`.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Result<Json<RunView>, ApiError> {
    check_id("run", &id)?;
    if let Some(after) = &query.jobs_after
        && !names::is_valid_id(after)
    {
        return Err(bad_query(
            "jobs_after",
            after,
            "not a job id (pass the `jobs_next` of the previous page)",
        ));
    }
    let limit = page_limit("jobs_limit", query.jobs_limit, 100)?;
    let run_id = id.clone();
    let found = state
        .engine
        .database()
        .query(move |conn| {
            let Some(run) = reads::run_head(conn, &run_id, MAX_INLINE_BYTES)? else {
                return Ok(None);
            };
            let after = match &query.jobs_after {
                None => 0,
                Some(job) => match reads::job_position(conn, &run_id, job)? {
                    Some(position) => position,
                    None => return Ok(Some(Err(job.clone()))),
                },
            };
            let page = reads::run_jobs(
                conn,
                &run_id,
                after,
                limit,
                MAX_INLINE_BYTES,
                MAX_RESPONSE_BYTES,
            )?;
            Ok(Some(Ok((run, page))))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
    let (run, page) = found.map_err(|job| {
        bad_query(
            "jobs_after",
            &job,
            "not a job of this run (pass the `jobs_next` of the previous page)",
        )
    })?;
    Ok(Json(RunView::new(run, page.items, page.more)))
}

#[utoipa::path(
    get, path = "/v1/runs/{id}/input", operation_id = "get_run_input", tag = "runs", params(RunId),
    responses(
        (status = 200, description = "The run's whole input, as stored", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A run's whole input, however long (the run view inlines it only up to
/// 64 KiB).
pub async fn input(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("run", &id)?;
    let run_id = id.clone();
    let text = state
        .engine
        .database()
        .query(move |conn| reads::run_input(conn, &run_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
    Ok(json_response(text))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    pub id: String,
    pub cancelled: bool,
}

#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", operation_id = "cancel_run", tag = "runs", params(RunId),
    responses(
        (status = 200, description = "Cancelled (the cancel is recorded)", body = Cancelled),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`run_ended`", body = ErrorBody),
    )
)]
/// Cancel a run: its guests stop at once, every job not finished ends
/// `cancelled`.
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Cancelled>, ApiError> {
    check_id("run", &id)?;
    if state.engine.cancel(&id).await? {
        Ok(Json(Cancelled {
            id,
            cancelled: true,
        }))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_ended",
            format!("run {id} has already ended"),
        ))
    }
}

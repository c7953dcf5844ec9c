//! People in a run: `POST /v1/jobs/{id}/decision` on a job waiting at its
//! gate, `POST /v1/jobs/{id}/input` to a job waiting for input, and
//! `GET /v1/pending`, what waits for either.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery, bad_query, check_id, page_limit};
use super::middleware::Caller;
use super::params::JobId;
use super::views::ReviewView;
use crate::api::ApiError;
use crate::db::reads::{self, PendingJobRecord};
use warren_vocabulary::{
    ApprovalGate, Decision, JobState, MAX_COMMENT_CHARS, MAX_REVIEW_DATA_BYTES, Review, Reviewer,
    names, now_ms,
};

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

/// `POST /v1/jobs/{id}/decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: Verdict,
    /// What the reviewer says; the job's plugin reads it on its rework. At
    /// most 16,384 characters.
    #[schema(max_length = 16384)]
    pub comments: Option<String>,
    /// Any JSON: with an approval, an addition to the job's output its
    /// dependents read; with a rejection, what the rework should use. At
    /// most 64 KiB as JSON.
    #[schema(value_type = Option<Value>)]
    pub data: Option<Box<RawValue>>,
    /// With `reject`: fail the job at once (its `on_failure` dependents
    /// run) instead of sending it back for rework.
    #[serde(rename = "final", default)]
    pub is_final: bool,
    /// The attempt whose output this decides on (the job's `attempts`):
    /// when given, a decision reaching the job at another attempt is a
    /// conflict, so a resent rejection does not reject its rework.
    #[schema(minimum = 1)]
    pub attempt: Option<u32>,
}

/// `POST /v1/jobs/{id}/input`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    /// What the job asked for, as any JSON; its plugin reads it as a
    /// review of decision `input`. At most 64 KiB as JSON.
    #[schema(value_type = Value)]
    pub data: Box<RawValue>,
    #[schema(max_length = 16384)]
    pub comments: Option<String>,
}

/// A recorded decision or input, and where it left the job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reviewed {
    pub job_id: String,
    /// The job's state after it: `completed` (approved), `pending` (sent
    /// back for rework, or given input; it runs again), `failed` (a final
    /// rejection, or rework used up).
    pub state: JobState,
    pub review: ReviewView,
}

#[utoipa::path(
    post, path = "/v1/jobs/{id}/decision", operation_id = "decide_job", tag = "reviews",
    params(JobId), request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decision is recorded and acted on", body = Reviewed),
        (status = 403, description = "`forbidden`: the gate asks for a higher role than this token's", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not waiting for a decision", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: `data` over 64 KiB as JSON", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: malformed JSON, an unknown field, `comments` over 16,384 characters, or `final` with `approve`", body = ErrorBody),
    )
)]
/// Approve or reject the output of a job waiting at its gate: approve
/// completes it; reject sends it back for rework (its plugin sees every
/// review) until the gate's `max_rework` is used up, or fails it at once
/// when `final`.
pub async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<DecisionRequest>,
) -> Result<Json<Reviewed>, ApiError> {
    check_id("job", &id)?;
    if request.is_final && request.decision == Verdict::Approve {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "`final` goes with `reject` only",
        ));
    }
    let decision = match request.decision {
        Verdict::Approve => Decision::Approve,
        Verdict::Reject => Decision::Reject,
    };
    let mut review = review_of(
        &caller,
        decision,
        request.is_final,
        request.comments,
        request.data,
    )?;
    review.attempt = request.attempt.unwrap_or(0);
    record(&state, id, review).await
}

#[utoipa::path(
    post, path = "/v1/jobs/{id}/input", operation_id = "give_job_input", tag = "reviews",
    params(JobId), request_body = InputRequest,
    responses(
        (status = 200, description = "The input is recorded; the job runs again with it", body = Reviewed),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not waiting for input", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: `data` over 64 KiB as JSON", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: malformed JSON, an unknown or missing field, `comments` over 16,384 characters", body = ErrorBody),
    )
)]
/// Give a job waiting in `needs_input` what it asked for: it runs again,
/// and its plugin reads the input as a review of decision `input`.
pub async fn give_input(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<InputRequest>,
) -> Result<Json<Reviewed>, ApiError> {
    check_id("job", &id)?;
    let review = review_of(
        &caller,
        Decision::Input,
        false,
        request.comments,
        Some(request.data),
    )?;
    record(&state, id, review).await
}

/// A review from `caller`, its sizes checked.
fn review_of(
    caller: &Caller,
    decision: Decision,
    is_final: bool,
    comments: Option<String>,
    data: Option<Box<RawValue>>,
) -> Result<Review, ApiError> {
    // The schema's `maxLength` counts characters: so does this check.
    if let Some(comments) = &comments
        && comments.chars().count() > MAX_COMMENT_CHARS
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("`comments` is longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let data = data.map(|d| d.get().to_owned());
    if let Some(data) = &data
        && data.len() > MAX_REVIEW_DATA_BYTES
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "`data` is {} bytes as JSON; at most {MAX_REVIEW_DATA_BYTES}",
                data.len()
            ),
        ));
    }
    Ok(Review {
        decision,
        is_final,
        comments,
        data,
        by: Reviewer {
            name: caller.name.clone(),
            role: Some(caller.role),
        },
        at: now_ms(),
        // Set by the scheduler: the job's latest attempt (0: any).
        attempt: 0,
    })
}

async fn record(state: &AppState, id: String, review: Review) -> Result<Json<Reviewed>, ApiError> {
    let new_state = state.engine.review(&id, review.clone()).await?;
    let stored = state
        .engine
        .database()
        .query({
            let id = id.clone();
            move |conn| crate::db::runs::job_reviews(conn, &id)
        })
        .await?
        .0
        .pop()
        .unwrap_or(review);
    Ok(Json(Reviewed {
        job_id: id,
        state: new_state,
        review: stored.into(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PendingQuery {
    /// `waiting_approval` or `needs_input`; both when absent.
    state: Option<JobState>,
    /// Cursor: the `next` of the previous page.
    #[param(
        pattern = "^[0-9]{1,18}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    after: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A job waiting for a decision or for input.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingJob {
    pub job_id: String,
    pub job: String,
    pub run_id: String,
    pub plugin: String,
    /// `waiting_approval` or `needs_input`.
    pub state: JobState,
    /// Since when it waits, ms since the Unix epoch.
    pub since: i64,
    pub story_id: Option<String>,
    pub template: Option<String>,
    /// The first 240 bytes of its output (held while it waits for a
    /// decision); the whole at `/v1/jobs/{id}/output`.
    pub output_summary: Option<String>,
    /// Documents it waits for (`needs_input`).
    pub pending_docs: Vec<String>,
    /// Its gate, if it has one.
    pub approval: Option<ApprovalGate>,
    /// Rejections sent back for rework so far.
    pub reworks: u32,
    /// Its attempts so far: send it as a decision's `attempt` to decide on
    /// the output shown, not on a rework's.
    pub attempts: u32,
}

impl From<PendingJobRecord> for PendingJob {
    fn from(r: PendingJobRecord) -> Self {
        Self {
            job_id: r.job_id,
            job: r.job,
            run_id: r.run_id,
            plugin: r.plugin,
            state: r.state,
            since: r.since,
            story_id: r.story_id,
            template: r.template,
            output_summary: r.output_summary,
            pending_docs: r.pending_docs,
            approval: r.approval,
            reworks: r.reworks,
            attempts: r.attempts,
        }
    }
}

/// `since.job-id`, as `next` gives it.
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (since, id) = cursor.split_once('.')?;
    let since = since.parse().ok().filter(|s: &i64| *s >= 0)?;
    names::is_valid_id(id).then(|| (since, id.to_owned()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingPage {
    pub jobs: Vec<PendingJob>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/pending", operation_id = "list_pending", tag = "reviews", params(PendingQuery),
    responses(
        (status = 200, body = PendingPage),
        (status = 400, description = "`invalid_query`: an unknown parameter, a state other than `waiting_approval` or `needs_input`, a malformed value", body = ErrorBody),
    )
)]
/// Jobs waiting for a decision or for input, longest waiting first.
pub async fn list_pending(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PendingQuery>,
) -> Result<Json<PendingPage>, ApiError> {
    if let Some(wanted) = query.state
        && !matches!(wanted, JobState::WaitingApproval | JobState::NeedsInput)
    {
        return Err(bad_query(
            "state",
            wanted.as_str(),
            "only `waiting_approval` and `needs_input` jobs wait for people",
        ));
    }
    let after = match &query.after {
        None => None,
        Some(cursor) => Some(parse_cursor(cursor).ok_or_else(|| {
            bad_query(
                "after",
                cursor,
                "not a cursor (pass the `next` of the previous page)",
            )
        })?),
    };
    let limit = page_limit("limit", query.limit, 100)?;
    let wanted = query.state;
    let jobs = state
        .engine
        .database()
        .query(move |conn| {
            let after = after.as_ref().map(|(since, id)| (*since, id.as_str()));
            reads::pending_jobs(conn, wanted, after, limit)
        })
        .await?;
    let next = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| format!("{}.{}", j.since, j.job_id)))
        .flatten();
    Ok(Json(PendingPage {
        jobs: jobs.into_iter().map(Into::into).collect(),
        next,
    }))
}

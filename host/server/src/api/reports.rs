//! `PUT /v1/jobs/{id}/status`: outside systems report the jobs of a run
//! marked `external`, which run nothing in Warren.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiJson, ApiPath, check_id};
use super::middleware::Caller;
use super::params::JobId;
use super::schemas::StatusReportSchema;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::scheduler::{Report, ReportedStatus};
use warren_vocabulary::JobState;

/// Longest summary kept, in characters.
const MAX_SUMMARY_CHARS: usize = 4_096;

/// A report as it is read; [`StatusReportSchema`] says its two shapes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub status: ReportedStatus,
    pub output_summary: Option<String>,
    pub output: Option<Box<RawValue>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reported {
    pub job_id: String,
    pub state: JobState,
}

#[utoipa::path(
    put, path = "/v1/jobs/{id}/status", operation_id = "report_job_status", tag = "jobs",
    params(JobId), request_body = StatusReportSchema,
    responses(
        (status = 200, description = "Recorded, as an event; the job and its dependents moved", body = Reported),
        (status = 400, description = "`invalid_id`, or `invalid_json`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`conflict`: not an external job, its run ended, it waits for its dependencies, or it cannot move so (`completed` then `running`, say)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown status or field, `output` with a status other than `completed`, a summary over 4 KiB", body = ErrorBody),
    )
)]
/// Report an external job: `running`, `completed` (with its `output`),
/// `failed` or `needs_input`, with a summary.
pub async fn report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StatusReport>,
) -> Result<Json<Reported>, ApiError> {
    check_id("job", &id)?;
    let invalid = |message: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            message.to_owned(),
        )
    };
    // The schema's `maxLength` counts characters: so does this check.
    if request
        .output_summary
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SUMMARY_CHARS)
    {
        return Err(invalid("`output_summary` is over 4,096 characters"));
    }
    if request.output.is_some() && request.status != ReportedStatus::Completed {
        return Err(invalid("`output` goes with `completed` only"));
    }
    let report = Report {
        status: request.status,
        summary: request.output_summary,
        output: request.output.map(|o| o.get().to_owned()),
        by: caller.name,
        screenings: Vec::new(),
    };
    let new_state = state.engine.report(&id, report).await?;
    Ok(Json(Reported {
        job_id: id,
        state: new_state,
    }))
}

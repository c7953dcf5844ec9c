//! `/v1/flows/{flow}/run` and `/v1/run`: start a flow (a template, usually
//! of agents) for a story and wait for its answer, as the clients of agent
//! systems expect: the result, the documents it waits for, or how it
//! failed; `202` with the run's id if it is still running.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, check_name};
use super::params::FlowName;
use super::views::raw_json;
use super::{AppState, MAX_RESPONSE_BYTES};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::reads::{self, FlowRecord};
use crate::scheduler::spec::PipelineSpec;
use crate::scheduler::{EngineError, GateFailure, PipelineSource, Submission};
use warren_sandbox::runtime::AttemptFailure;
use warren_vocabulary::{JobState, RunState};

/// How long a request waits for its flow by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// `POST /v1/flows/{flow}/run`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRequest {
    /// The run's input: the input of every job of the flow without its own.
    #[schema(value_type = Object)]
    input: Value,
    /// The story: its documents and memory (1 to 128 letters, digits, `-`,
    /// `_`, `.`, `:`).
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    story_id: Option<String>,
    /// How long to wait for an answer, in milliseconds: 10,000 by default,
    /// at most the request timeout less half a second.
    wait_ms: Option<u64>,
    /// An earlier run to replay: its recorded answers to model calls and
    /// HTTP requests answer this run's jobs (by job name and request), and
    /// nothing is sent out.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    replay: Option<String>,
}

/// `POST /v1/run`: a flow request naming its flow in the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFlowRequest {
    /// The template to run; the server's `default_flow` when absent.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    flow: Option<String>,
    #[schema(value_type = Object)]
    input: Value,
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    story_id: Option<String>,
    wait_ms: Option<u64>,
    /// An earlier run to replay: its recorded answers to model calls and
    /// HTTP requests answer this run's jobs (by job name and request), and
    /// nothing is sent out.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    replay: Option<String>,
}

/// How a failed flow failed: its first failed job.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowFailure {
    pub job: String,
    /// `job_failed`, `limit_exceeded`, `trap`, `host_error`,
    /// `plugin_missing`, `cancelled`, `guard_denied` (a guard denied its
    /// output or a document), `rejected` (a reviewer's final
    /// rejection, or rework used up) or `approval_timeout`.
    pub code: String,
    pub message: String,
}

/// A flow's answer. `result` when it completed; `pending_docs` (and the
/// story to write them to) when it waits for documents; `error` when it
/// failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowAnswer {
    pub run_id: String,
    pub state: RunState,
    /// The output of the flow's result job (its jobs marked `output`, or
    /// those no other job needs); with several, an object by job name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub result: Option<Box<RawValue>>,
    /// When the result is over 1 MiB: where each result job's output is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_urls: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_docs: Option<Vec<String>>,
    /// Where `pending_docs` are written: the run's story, or the run's id
    /// for a run without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents_story: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowFailure>,
    /// When it waits for a decision: the jobs waiting, to decide with
    /// `POST /v1/jobs/{id}/decision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_decision: Option<Vec<AwaitingJob>>,
    /// When it waits for documents or input: the jobs waiting, to give
    /// input to with `POST /v1/jobs/{id}/input` (or write `pending_docs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_input: Option<Vec<AwaitingJob>>,
}

/// A job waiting for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct AwaitingJob {
    pub job: String,
    pub job_id: String,
}

/// The jobs of `record` in `state`.
fn awaiting(record: &FlowRecord, state: JobState) -> Vec<AwaitingJob> {
    record
        .jobs
        .iter()
        .filter(|j| j.state == state)
        .map(|j| AwaitingJob {
            job: j.name.clone(),
            job_id: j.id.clone(),
        })
        .collect()
}

#[utoipa::path(
    post, path = "/v1/flows/{flow}/run", operation_id = "run_flow", tag = "flows",
    params(FlowName), request_body = FlowRequest,
    responses(
        (status = 200, description = "The flow stopped: `completed` with `result`, `needs_input` with `pending_docs` and `awaiting_input`, `waiting_approval` with `awaiting_decision`, `failed` with `error`, or `cancelled`", body = FlowAnswer),
        (status = 202, description = "Still running after `wait_ms`: follow `/v1/runs/{run_id}`", body = FlowAnswer,
         headers(("location" = String, description = "The run's URL"))),
        (status = 400, description = "`invalid_json`, or `invalid_id` (a malformed flow name or story id)", body = ErrorBody),
        (status = 404, description = "`unknown_flow`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: a field missing or of the wrong type; `invalid_input`: the input does not match the flow's `input_schema`; `unknown_replay`: `replay` names no run; `rejected_input`: a guard denied the input", body = ErrorBody),
        (status = 503, description = "`guard_unavailable`: a guard could not answer (not loaded, a trap, a limit, an answer that is not a verdict), so the input was not let through; `details.guard` names it", body = ErrorBody),
    )
)]
/// Start a flow and wait for its answer.
pub async fn run_named(
    State(state): State<AppState>,
    ApiPath(flow): ApiPath<String>,
    ApiJson(request): ApiJson<FlowRequest>,
) -> Result<Response, ApiError> {
    run_flow(
        &state,
        flow,
        request.input,
        request.story_id,
        request.wait_ms,
        request.replay,
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/run", operation_id = "run_default_flow", tag = "flows",
    request_body = RunFlowRequest,
    responses(
        (status = 200, description = "The flow stopped: `completed` with `result`, `needs_input` with `pending_docs` and `awaiting_input`, `waiting_approval` with `awaiting_decision`, `failed` with `error`, or `cancelled`", body = FlowAnswer),
        (status = 202, description = "Still running after `wait_ms`", body = FlowAnswer,
         headers(("location" = String, description = "The run's URL"))),
        (status = 400, description = "`invalid_json`, or `invalid_id` (a malformed flow name or story id)", body = ErrorBody),
        (status = 404, description = "`unknown_flow`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`, `invalid_input`, `unknown_replay` or `rejected_input`", body = ErrorBody),
        (status = 503, description = "`guard_unavailable`: a guard could not answer (not loaded, a trap, a limit, an answer that is not a verdict), so the input was not let through; `details.guard` names it", body = ErrorBody),
    )
)]
/// Start a flow (`flow`, or the server's default) and wait for its answer.
pub async fn run_default(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RunFlowRequest>,
) -> Result<Response, ApiError> {
    let flow = request.flow.unwrap_or_else(|| state.default_flow.clone());
    run_flow(
        &state,
        flow,
        request.input,
        request.story_id,
        request.wait_ms,
        request.replay,
    )
    .await
}

async fn run_flow(
    state: &AppState,
    flow: String,
    input: Value,
    story_id: Option<String>,
    wait_ms: Option<u64>,
    replay: Option<String>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    check_name("flow", &flow)?;
    let submission = Submission {
        pipeline: PipelineSource::Template {
            name: flow.clone(),
            version: None,
        },
        input,
        story_id,
        in_dir: None,
        replay,
        budget: None,
    };
    let run_id = state.engine.submit(submission).await.map_err(|e| match e {
        EngineError::UnknownTemplate(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_flow",
            format!("no flow (template) is named {flow:?}"),
        ),
        other => other.into(),
    })?;
    // The answer must leave before the request's own deadline, however
    // long the submission took (a plugin still loading, say).
    let most = state
        .request_timeout
        .saturating_sub(Duration::from_millis(500))
        .saturating_sub(started.elapsed());
    let wait = wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(most);
    state.engine.wait(&run_id, wait).await?;
    let id = run_id.clone();
    let record = state
        .engine
        .database()
        .query(move |conn| reads::flow(conn, &id, MAX_RESPONSE_BYTES))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id}")))?;
    let answer = answer(run_id, record)?;
    let status = if answer.state.has_stopped() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = format!("/v1/runs/{}", answer.run_id);
    Ok((status, [(header::LOCATION, location)], axum::Json(answer)).into_response())
}

fn answer(run_id: String, record: FlowRecord) -> Result<FlowAnswer, ApiError> {
    let mut answer = FlowAnswer {
        run_id,
        state: record.state,
        result: None,
        result_urls: None,
        pending_docs: None,
        documents_story: None,
        error: None,
        awaiting_decision: None,
        awaiting_input: None,
    };
    match record.state {
        RunState::Completed => {
            let spec: PipelineSpec =
                serde_json::from_str(&record.spec).map_err(ApiError::internal)?;
            let names = spec.result_jobs();
            let results: Vec<_> = record
                .jobs
                .iter()
                .filter(|j| names.contains(&j.name.as_str()) && j.state == JobState::Completed)
                .collect();
            let inline: Option<Vec<&str>> = results
                .iter()
                .map(|j| j.output.as_ref().and_then(|o| o.text.as_deref()))
                .collect();
            let total: usize = inline.iter().flatten().map(|t| t.len()).sum();
            match inline {
                Some(texts) if total <= MAX_RESPONSE_BYTES => {
                    answer.result = Some(match texts.as_slice() {
                        [one] => raw_json((*one).to_owned()),
                        several => {
                            let by_job: serde_json::Map<String, Value> = results
                                .iter()
                                .zip(several)
                                .map(|(job, text)| {
                                    let value = serde_json::from_str(text).unwrap_or(Value::Null);
                                    (job.name.clone(), value)
                                })
                                .collect();
                            raw_json(Value::Object(by_job).to_string())
                        }
                    });
                }
                _ => {
                    answer.result_urls = Some(
                        results
                            .iter()
                            .map(|j| (j.name.clone(), format!("/v1/jobs/{}/output", j.id)))
                            .collect(),
                    );
                }
            }
        }
        RunState::NeedsInput => {
            let pending: BTreeSet<String> = record
                .jobs
                .iter()
                .filter(|j| j.state == JobState::NeedsInput)
                .flat_map(|j| j.pending_docs.iter().cloned())
                .collect();
            answer.pending_docs = Some(pending.into_iter().collect());
            answer.documents_story = Some(
                record
                    .story_id
                    .clone()
                    .unwrap_or_else(|| answer.run_id.clone()),
            );
            answer.awaiting_input = Some(awaiting(&record, JobState::NeedsInput));
        }
        RunState::WaitingApproval => {
            answer.awaiting_decision = Some(awaiting(&record, JobState::WaitingApproval));
        }
        RunState::Failed => {
            answer.error = record
                .jobs
                .iter()
                .find(|j| j.state == JobState::Failed)
                .map(|job| failure(&job.name, job.error.as_deref()));
        }
        RunState::Pending | RunState::Running | RunState::Cancelled => {}
    }
    Ok(answer)
}

/// A failed job's error, as a code and a sentence.
fn failure(job: &str, error: Option<&str>) -> FlowFailure {
    if let Some(gate) = error.and_then(|e| serde_json::from_str::<GateFailure>(e).ok()) {
        let code = match gate {
            GateFailure::Rejected { .. } => "rejected",
            GateFailure::ApprovalTimeout { .. } => "approval_timeout",
        };
        return FlowFailure {
            job: job.to_owned(),
            code: code.to_owned(),
            message: gate.to_string(),
        };
    }
    let parsed = error.and_then(|e| serde_json::from_str::<AttemptFailure>(e).ok());
    let (code, message) = match &parsed {
        Some(f @ AttemptFailure::Job { .. }) => ("job_failed", f.to_string()),
        Some(f @ AttemptFailure::Limit { .. }) => ("limit_exceeded", f.to_string()),
        Some(f @ AttemptFailure::Trap { .. }) => ("trap", f.to_string()),
        Some(f @ AttemptFailure::Host { .. }) => ("host_error", f.to_string()),
        Some(f @ AttemptFailure::Cancelled) => ("cancelled", f.to_string()),
        Some(f @ AttemptFailure::Guard { .. }) => ("guard_denied", f.to_string()),
        None => ("plugin_missing", "its plugin was not loaded".to_owned()),
    };
    FlowFailure {
        job: job.to_owned(),
        code: code.to_owned(),
        message,
    }
}

//! Types that only describe: what the OpenAPI description says of bodies
//! whose Rust type cannot say it itself (a request that is one of two
//! shapes, a Server-Sent Event's framing).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::views::EventRow;
use crate::scheduler::spec::PipelineSpec;

/// `POST /v1/runs`: either a stored template (and optionally a version)
/// or an inline pipeline, with the run's input and story.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = CreateRun, example = json!({"template": "build-and-check", "input": {"goal": "a word counter"}}))]
pub enum CreateRunSchema {
    Template(RunFromTemplate),
    Pipeline(RunFromPipeline),
}

/// A run of a stored template.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFromTemplate {
    /// A stored template to run.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub template: String,
    /// Its version (default: its latest).
    #[schema(minimum = 1)]
    pub version: Option<i64>,
    /// The run's input, any JSON; jobs without their own get it (`{}`
    /// when absent).
    pub input: Option<serde_json::Value>,
    /// Scopes story memory.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub story_id: Option<String>,
    /// An earlier run to replay: its recorded answers to model calls and
    /// HTTP requests answer this run's jobs (by job name and request), and
    /// nothing is sent out.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub replay: Option<String>,
    /// This run's own budget: the tighter of it and its pipeline's holds,
    /// limit by limit, under the operator's cap.
    pub budget: Option<warren_vocabulary::RunBudget>,
}

/// A run of a pipeline given inline.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFromPipeline {
    pub pipeline: PipelineSpec,
    /// The run's input, any JSON; jobs without their own get it (`{}`
    /// when absent).
    pub input: Option<serde_json::Value>,
    /// Scopes story memory.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub story_id: Option<String>,
    /// An earlier run to replay: its recorded answers to model calls and
    /// HTTP requests answer this run's jobs (by job name and request), and
    /// nothing is sent out.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub replay: Option<String>,
    /// This run's own budget: the tighter of it and its pipeline's holds,
    /// limit by limit, under the operator's cap.
    pub budget: Option<warren_vocabulary::RunBudget>,
}

/// `PUT /v1/jobs/{id}/status`: a job done, with its output, or any other
/// status, without one.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = StatusReport)]
pub enum StatusReportSchema {
    Completed(CompletedReport),
    Other(OtherReport),
}

/// The job is done.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedReport {
    /// `completed`
    #[schema(pattern = "^completed$")]
    pub status: String,
    /// Shown as the job's `summary` and in the story's status view.
    #[schema(max_length = 4096)]
    pub output_summary: Option<String>,
    /// Any JSON: the job's output; its dependents get it.
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
}

/// The job runs, failed or waits for input.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtherReport {
    /// `running`, `failed` or `needs_input`.
    #[schema(pattern = "^(running|failed|needs_input)$")]
    pub status: String,
    /// Shown as the job's `summary` and in the story's status view (a
    /// failure's message).
    #[schema(max_length = 4096)]
    pub output_summary: Option<String>,
}

/// One Server-Sent Event of the history (`text/event-stream`, not JSON):
/// `id` is the event's history id, `event` its kind, and `data` one line
/// of JSON, an [`EventRow`].
pub struct SseEvent;

impl PartialSchema for SseEvent {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        // JSON Schema's way to say what a string holds: an EventRow, as JSON.
        let mut holds = Extensions::default();
        holds.insert(
            "contentSchema".to_owned(),
            json!({"$ref": "#/components/schemas/EventRow"}),
        );
        ObjectBuilder::new()
            .description(Some(
                "One Server-Sent Event: its `id`, its `event` name and its `data`, an `EventRow` as one line of JSON",
            ))
            .property(
                "id",
                string()
                    .pattern(Some("^[0-9]+$"))
                    .description(Some("The event's history id: resume after it with `Last-Event-ID` or `?after=`")),
            )
            .required("id")
            .property(
                "event",
                string()
                    .enum_values(Some(["run", "job", "cancel"]))
                    .description(Some("The event's kind")),
            )
            .required("event")
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .extensions(Some(holds))
                    .description(Some("An `EventRow`, as JSON")),
            )
            .required("data")
            .into()
    }
}

impl ToSchema for SseEvent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SseEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventRow::name().into_owned(), EventRow::schema()));
    }
}

/// One Server-Sent Event of a followed job log (`text/event-stream`, not
/// JSON): `event` says what it is, `data` is one line of JSON.
pub struct SseLogEvent;

impl PartialSchema for SseLogEvent {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .description(Some(
                "One Server-Sent Event of a followed log: `line` (data `{\"attempt\", \"at_ms\", \"source\", \"level\", \"message\"}`), `lagged` (`{\"skipped\"}`) or the last, `end` (`{\"state\"}`)",
            ))
            .property(
                "event",
                string()
                    .enum_values(Some(["line", "lagged", "end"]))
                    .description(Some("What the event is")),
            )
            .required("event")
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .description(Some("Its JSON, on one line")),
            )
            .required("data")
            .into()
    }
}

impl ToSchema for SseLogEvent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SseLogEvent")
    }
}

//! The OpenAPI 3 description, generated from the handlers and types
//! (`/openapi.json`), and a page that shows it (`/docs`).

use axum::Json;
use axum::response::Html;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::params::DOCUMENT_NAME_PATTERN;
use super::schemas::SseEvent;
use super::views::EventRow;
use super::{
    artifacts, documents, events, flows, graph, health, jobs, memory, outbound, plugins, reports,
    reviews, runs, stories, templates, whoami,
};
use crate::scheduler::spec::MAX_JOBS;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren",
        description = "Run jobs and agents as sandboxed WebAssembly components: pipelines of jobs, durably, in SQLite. Every error is `{code, message}` (`ErrorBody`); see docs/api.md for the codes. Every response is bounded: lists are paged, a stored value over 64 KiB is left out of views with its size and the URL that serves it whole, and a paged view of a run or of a job's logs is at most 1 MiB. Server-Sent Events carry an `EventRow` as each event's data.",
    ),
    paths(
        runs::create, runs::list, runs::get, runs::input, runs::cancel, events::run_events, events::all_events,
        graph::get,
        jobs::get, jobs::input, jobs::output, jobs::logs, jobs::attempt_log, jobs::retry, reports::report,
        artifacts::list_for_run, artifacts::download,
        templates::create, templates::list, templates::latest, templates::version,
        plugins::list, plugins::get, plugins::approve, plugins::upload, memory::list,
        stories::list, stories::status,
        documents::put, documents::get, documents::list, documents::versions, documents::delete,
        flows::run_named, flows::run_default,
        reviews::decide, reviews::give_input, reviews::list_pending, outbound::get,
        health::health, health::ready, health::metrics, whoami::whoami,
    ),
    components(schemas(EventRow, SseEvent)),
    modifiers(&BearerAuth, &CommonResponses, &PipelineShape, &DocumentNames, &Links),
    security(("bearer" = [])),
    tags(
        (name = "runs", description = "Start, follow and cancel runs"),
        (name = "jobs", description = "Jobs, their attempts, logs and retries"),
        (name = "artifacts", description = "Files jobs left in /out, by sha256"),
        (name = "templates", description = "Named, versioned pipelines (creating one needs an admin token)"),
        (name = "plugins", description = "The plugins folder: versions, grants, usage, quarantined files; approving and uploading need an admin token"),
        (name = "memory", description = "What plugins remembered for a story"),
        (name = "stories", description = "Stories with their latest run, and the latest status of each agent across a story's runs"),
        (name = "documents", description = "Named, versioned documents of a story (text or JSON, at most 1 MiB), written by people and jobs"),
        (name = "flows", description = "Run a flow of agents for a story and wait for its answer"),
        (name = "reviews", description = "People in a run: decisions on approval gates, input to jobs that wait for it, what waits for either (an `approver` token may use these and read, nothing else)"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from the server's configuration; `client`, `approver` or `admin` role",
                    ))
                    .build(),
            ),
        );
    }
}

/// Where an answer leads (OpenAPI links): from what an operation answers
/// to the operations that take it, so a client, or a fuzzer following
/// them, reaches the runs, jobs, templates and plugins that exist.
struct Links;

/// `(from path, method, status, link name, to operation, parameters)`.
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[LinkSpec] = &[
    (
        "/v1/runs",
        "post",
        "201",
        "GetRun",
        "get_run",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/runs",
        "post",
        "201",
        "RunEvents",
        "run_events",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/runs",
        "post",
        "201",
        "RunInput",
        "get_run_input",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/runs",
        "post",
        "201",
        "RunArtifacts",
        "list_run_artifacts",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/runs",
        "post",
        "201",
        "CancelRun",
        "cancel_run",
        &[("id", "$response.body#/id")],
    ),
    (
        "/v1/runs",
        "get",
        "200",
        "GetRun",
        "get_run",
        &[("id", "$response.body#/runs/0/id")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "GetJob",
        "get_job",
        &[("id", "$response.body#/jobs/0/id")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "JobInput",
        "get_job_input",
        &[("id", "$response.body#/jobs/0/id")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "JobOutput",
        "get_job_output",
        &[("id", "$response.body#/jobs/0/id")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "JobLogs",
        "get_job_logs",
        &[("id", "$response.body#/jobs/0/id")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "AttemptLog",
        "get_attempt_log",
        &[("id", "$response.body#/jobs/0/id"), ("number", "1")],
    ),
    (
        "/v1/runs/{id}",
        "get",
        "200",
        "RetryJob",
        "retry_job",
        &[("id", "$response.body#/jobs/0/id")],
    ),
    (
        "/v1/runs/{id}/artifacts",
        "get",
        "200",
        "DownloadArtifact",
        "download_artifact",
        &[("sha256", "$response.body#/artifacts/0/sha256")],
    ),
    (
        "/v1/jobs/{id}",
        "get",
        "200",
        "JobRun",
        "get_run",
        &[("id", "$response.body#/run_id")],
    ),
    (
        "/v1/templates",
        "post",
        "201",
        "GetTemplate",
        "get_template",
        &[("name", "$response.body#/name")],
    ),
    (
        "/v1/templates",
        "post",
        "201",
        "GetTemplateVersion",
        "get_template_version",
        &[
            ("name", "$response.body#/name"),
            ("version", "$response.body#/version"),
        ],
    ),
    (
        "/v1/templates",
        "get",
        "200",
        "GetTemplate",
        "get_template",
        &[("name", "$response.body#/templates/0/name")],
    ),
    (
        "/v1/plugins",
        "get",
        "200",
        "GetPlugin",
        "get_plugin",
        &[("name", "$response.body#/plugins/0/name")],
    ),
    (
        "/v1/stories/{story}/documents/{name}",
        "put",
        "201",
        "GetDocument",
        "get_document",
        &[
            ("story", "$response.body#/story_id"),
            ("name", "$response.body#/name"),
        ],
    ),
    (
        "/v1/stories/{story}/documents/{name}",
        "put",
        "201",
        "DocumentVersions",
        "list_document_versions",
        &[
            ("story", "$response.body#/story_id"),
            ("name", "$response.body#/name"),
        ],
    ),
    (
        "/v1/stories/{story}/documents/{name}",
        "put",
        "201",
        "DeleteDocument",
        "delete_document",
        &[
            ("story", "$response.body#/story_id"),
            ("name", "$response.body#/name"),
        ],
    ),
    (
        "/v1/stories/{story}/documents",
        "get",
        "200",
        "GetDocument",
        "get_document",
        &[
            ("story", "$response.body#/story_id"),
            ("name", "$response.body#/documents/0/name"),
        ],
    ),
    (
        "/v1/plugins",
        "get",
        "200",
        "ApproveVersion",
        "approve_plugin_version",
        &[
            ("name", "$response.body#/plugins/0/name"),
            ("digest", "$response.body#/plugins/0/digest"),
        ],
    ),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, method, status, name, target, parameters) in LINKS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let operation = match *method {
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                _ => item.get.as_mut(),
            };
            let Some(RefOr::T(response)) =
                operation.and_then(|o| o.responses.responses.get_mut(*status))
            else {
                continue;
            };
            // utoipa 5 writes `operation_id` in snake case, which no reader
            // of OpenAPI knows: the field goes in under its name,
            // `operationId`.
            let mut target_id = Extensions::default();
            target_id.insert("operationId".to_owned(), (*target).into());
            let link = parameters
                .iter()
                .fold(
                    LinkBuilder::new().extensions(Some(target_id)),
                    |link, (key, value)| {
                        // A constant in the description is JSON: a number stays one.
                        let value = value.parse::<u64>().map_or_else(
                            |_| serde_json::Value::from(*value),
                            serde_json::Value::from,
                        );
                        link.parameter(*key, value)
                    },
                )
                .build();
            response.links.insert((*name).to_owned(), RefOr::T(link));
        }
    }
}

/// What a pipeline's `jobs` map holds, which field attributes cannot say:
/// 1 to `MAX_JOBS` jobs, named as job names are.
struct PipelineShape;

impl Modify for PipelineShape {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(pipeline))) = components.schemas.get_mut("PipelineSpec")
        else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(jobs))) = pipeline.properties.get_mut("jobs") {
            jobs.min_properties = Some(1);
            jobs.max_properties = Some(MAX_JOBS);
            jobs.property_names = Some(Box::new(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))
                    .into(),
            ));
        }
    }
}

/// The pattern of a document name (one constant, too long to repeat in
/// attributes) on every parameter that takes one: `{name}` in a
/// document's path, and the list's `after` cursor.
struct DocumentNames;

impl Modify for DocumentNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(rest) = path.strip_prefix("/v1/stories/{story}/documents") else {
                continue;
            };
            let takes = if rest.is_empty() { "after" } else { "name" };
            let operations = [&mut item.get, &mut item.put, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if parameter.name == takes
                        && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
                    {
                        schema.pattern = Some(DOCUMENT_NAME_PATTERN.to_owned());
                    }
                }
            }
        }
    }
}

/// The answers every operation of a kind may give, added to each so that
/// no handler has to repeat them: `401` on every operation that needs a
/// token, `400 invalid_id` where a path has parameters, `400
/// invalid_query` where a query does, `408` and `500` everywhere, `503`
/// where the database or the engine answers.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = matches!(path.as_str(), "/health" | "/ready");
            // Approvers may write only decisions and input.
            let reviewing = path.ends_with("/decision") || path.ends_with("/input");
            let operations = [
                (false, &mut item.get),
                (true, &mut item.post),
                (true, &mut item.put),
                (true, &mut item.delete),
                (true, &mut item.patch),
            ];
            for (writes, operation) in operations {
                let Some(operation) = operation else { continue };
                if writes && !reviewing && path.starts_with("/v1/") {
                    add(
                        operation,
                        "403",
                        "`forbidden`: an `approver` token may only read, decide and give input",
                    );
                }
                let takes = |place: ParameterIn| {
                    operation
                        .parameters
                        .iter()
                        .flatten()
                        .any(|p| p.parameter_in == place)
                };
                let (in_path, in_query) = (takes(ParameterIn::Path), takes(ParameterIn::Query));
                if in_path {
                    add(
                        operation,
                        "400",
                        "`invalid_id`: a malformed id, digest or name in the path",
                    );
                }
                if in_query {
                    add(
                        operation,
                        "400",
                        "`invalid_query`: a query parameter that is unknown, repeated, missing or malformed (the message names it)",
                    );
                }
                if !public {
                    add(
                        operation,
                        "401",
                        "`unauthorized`: no token, or an unknown one (only when the server has tokens)",
                    );
                }
                add(
                    operation,
                    "408",
                    "`timeout`: the request took longer than the server allows",
                );
                add(
                    operation,
                    "500",
                    "`internal`: a bug; the details are in the server log",
                );
                if path.starts_with("/v1/") {
                    add(
                        operation,
                        "503",
                        "`unavailable`: the database or the engine has stopped",
                    );
                }
            }
        }
    }
}

/// Adds an `ErrorBody` answer for `status`, or the words of `description`
/// to the one already there when it does not say them.
fn add(operation: &mut Operation, status: &str, description: &str) {
    let responses = &mut operation.responses.responses;
    if let Some(RefOr::T(response)) = responses.get_mut(status) {
        let code = description.split(':').next().unwrap_or_default();
        if !response.description.contains(code) {
            response.description = format!("{}; {description}", response.description);
        }
        return;
    }
    let error = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    responses.insert(
        status.to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", error)
                .build(),
        ),
    );
}

pub async fn json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A self-contained page (no CDN) listing every operation with its
/// parameters, bodies and answers, read from `/openapi.json`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

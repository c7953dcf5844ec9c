//! The OpenAPI 3 description, generated from the handlers and types
//! (`/openapi.json`), and a page that shows it (`/docs`).

use axum::Json;
use axum::response::Html;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::schemas::SseEvent;
use super::views::EventRow;
use crate::scheduler::spec::MAX_JOBS;
use super::{artifacts, events, health, jobs, memory, plugins, runs, templates};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren",
        description = "Run jobs and agents as sandboxed WebAssembly components: pipelines of jobs, durably, in SQLite. Every error is `{code, message}` (`ErrorBody`); see docs/api.md for the codes. Every response is bounded: lists are paged, a stored value over 64 KiB is left out of views with its size and the URL that serves it whole, and a paged view of a run or of a job's logs is at most 1 MiB. Server-Sent Events carry an `EventRow` as each event's data.",
    ),
    paths(
        runs::create, runs::list, runs::get, runs::input, runs::cancel, events::run_events, events::all_events,
        jobs::get, jobs::input, jobs::output, jobs::logs, jobs::attempt_log, jobs::retry,
        artifacts::list_for_run, artifacts::download,
        templates::create, templates::list, templates::latest, templates::version,
        plugins::list, plugins::get, plugins::approve, plugins::upload, memory::list,
        health::health, health::ready, health::metrics,
    ),
    components(schemas(EventRow, SseEvent)),
    modifiers(&BearerAuth, &CommonResponses, &PipelineShape),
    security(("bearer" = [])),
    tags(
        (name = "runs", description = "Start, follow and cancel runs"),
        (name = "jobs", description = "Jobs, their attempts, logs and retries"),
        (name = "artifacts", description = "Files jobs left in /out, by sha256"),
        (name = "templates", description = "Named, versioned pipelines (creating one needs an admin token)"),
        (name = "plugins", description = "The plugins folder: versions, grants, usage, quarantined files; approving and uploading need an admin token"),
        (name = "memory", description = "What plugins remembered for a story"),
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
                        "A token from the server's configuration; `client` or `admin` role",
                    ))
                    .build(),
            ),
        );
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
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes = |place: ParameterIn| {
                    operation
                        .parameters
                        .iter()
                        .flatten()
                        .any(|p| p.parameter_in == place)
                };
                let (in_path, in_query) = (takes(ParameterIn::Path), takes(ParameterIn::Query));
                if in_path {
                    add(operation, "400", "`invalid_id`: a malformed id, digest or name in the path");
                }
                if in_query {
                    add(operation, "400", "`invalid_query`: a query parameter that is unknown, repeated, missing or malformed (the message names it)");
                }
                if !public {
                    add(operation, "401", "`unauthorized`: no token, or an unknown one (only when the server has tokens)");
                }
                add(operation, "408", "`timeout`: the request took longer than the server allows");
                add(operation, "500", "`internal`: a bug; the details are in the server log");
                if path.starts_with("/v1/") {
                    add(operation, "503", "`unavailable`: the database or the engine has stopped");
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

//! The OpenAPI 3 description, generated from the handlers and types
//! (`/openapi.json`), and a page that shows it (`/docs`).

use axum::Json;
use axum::response::Html;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{artifacts, events, health, jobs, memory, plugins, runs, templates};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren",
        description = "Run jobs and agents as sandboxed WebAssembly components: pipelines of jobs, durably, in SQLite. Every error is `{code, message}`; see docs/api.md for the codes.",
    ),
    paths(
        runs::create, runs::list, runs::get, runs::cancel, events::run_events, events::all_events,
        jobs::get, jobs::logs, jobs::retry,
        artifacts::list_for_run, artifacts::download,
        templates::create, templates::list, templates::latest, templates::version,
        plugins::list, plugins::get, plugins::approve, plugins::upload, memory::list,
        health::health, health::ready, health::metrics,
    ),
    modifiers(&BearerAuth),
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

pub async fn json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A self-contained page (no CDN) listing every operation with its
/// parameters, bodies and answers, read from `/openapi.json`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

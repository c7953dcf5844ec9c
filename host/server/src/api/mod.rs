//! The HTTP API (`/v1`, JSON) and `warren serve`. One module per resource;
//! every error is an [`ApiError`].

mod artifacts;
pub mod documents;
pub mod error;
mod events;
mod extract;
mod flows;
mod graph;
mod health;
pub mod idempotency;
mod jobs;
mod live_logs;
mod memory;
mod messages;
mod middleware;
pub mod openapi;
mod outbound;
pub mod params;
mod plugins;
mod reports;
mod reviews;
mod runs;
pub mod schemas;
pub mod server;
mod stories;
mod templates;
pub mod views;
mod whoami;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::ApiError;

use crate::catalogue::directory::PluginDirectory;
use crate::config::Token;
use crate::scheduler::Engine;
use warren_sandbox::plugin::MAX_PLUGIN_BYTES;
use warren_sandbox::runtime::Runtime;
use warren_vocabulary::text::MAX_DOCUMENT_BYTES;

/// What every handler can reach, shared: the state is cloned for every
/// request and layer.
pub type AppState = Arc<AppContext>;

pub struct AppContext {
    pub engine: Engine,
    pub plugins: PluginDirectory,
    pub runtime: Arc<Runtime>,
    pub tokens: Arc<Vec<Token>>,
    pub request_timeout: Duration,
    /// `Idempotency-Key`s: their retention, those being answered.
    pub idempotency: idempotency::Keys,
    /// The template `POST /v1/run` starts when the request names none.
    pub default_flow: String,
    /// When the server started, for `/health`.
    pub started: std::time::Instant,
}

/// Settings of the router itself.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
}

/// The whole API.
pub fn app(state: AppState, options: &RouterOptions) -> Router {
    use middleware::{require_admin, require_client, require_reviewer};
    let admin = || axum::middleware::from_fn_with_state(state.clone(), require_admin);
    let v1 = Router::new()
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/input", get(runs::input))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/events", get(events::run_events))
        .route("/runs/{id}/graph", get(graph::get))
        .route("/runs/{id}/artifacts", get(artifacts::list_for_run))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/input", get(jobs::input))
        .route("/jobs/{id}/output", get(jobs::output))
        .route("/jobs/{id}/logs", get(jobs::logs))
        .route("/jobs/{id}/attempts/{number}/log", get(jobs::attempt_log))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/status", put(reports::report))
        .route("/artifacts/{digest}", get(artifacts::download))
        .route(
            "/templates",
            post(templates::create.layer(admin())).get(templates::list),
        )
        .route("/templates/{name}", get(templates::latest))
        .route(
            "/templates/{name}/versions/{version}",
            get(templates::version),
        )
        .route(
            "/plugins",
            get(plugins::list).post(
                plugins::upload
                    .layer(admin())
                    .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES as usize)),
            ),
        )
        .route("/plugins/{name}", get(plugins::get))
        .route("/outbound", get(outbound::get.layer(admin())))
        .route(
            "/plugins/{name}/versions/{digest}/approve",
            post(plugins::approve.layer(admin())),
        )
        .route("/stories", get(stories::list))
        .route("/stories/{story}/status", get(stories::status))
        .route("/stories/{story}/memory", get(memory::list))
        .route("/stories/{story}/documents", get(documents::list))
        .route(
            "/stories/{story}/documents/{name}",
            get(documents::get)
                .put(documents::put.layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES)))
                .delete(documents::delete),
        )
        .route(
            "/stories/{story}/documents/{name}/versions",
            get(documents::versions),
        )
        .route("/flows/{flow}/run", post(flows::run_named))
        .route("/run", post(flows::run_default))
        .route("/events", get(events::all_events))
        .route("/pending", get(reviews::list_pending))
        .route("/whoami", get(whoami::whoami))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_client,
        ));
    // Approvers write here and nowhere else.
    let people = Router::new()
        .route("/jobs/{id}/decision", post(reviews::decide))
        .route("/jobs/{id}/input", post(reviews::give_input))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_reviewer,
        ));
    let v1 = v1.merge(people);
    let metrics = get(health::metrics).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_client,
    ));
    let mut router = Router::new()
        .nest("/v1", v1)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", metrics)
        .route("/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::page))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::deadline,
        ))
        .with_state(state);
    if !options.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = options
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static(middleware::REQUEST_ID),
                    HeaderName::from_static(idempotency::HEADER),
                ])
                .expose_headers([
                    header::LOCATION,
                    header::ETAG,
                    HeaderName::from_static(middleware::REQUEST_ID),
                    HeaderName::from_static(idempotency::REPLAYED),
                    HeaderName::from_static(documents::VERSION_HEADER),
                ]),
        );
    }
    router.layer(axum::middleware::from_fn(middleware::request_id))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Most items one list response holds.
pub const MAX_PAGE: usize = 500;
/// A stored JSON value (an input, an output, a log) at most this long, in
/// bytes as stored, is shown inline; a longer one is left out of views,
/// with its size and the URL that serves it whole.
pub const MAX_INLINE_BYTES: usize = 64 << 10;
/// The most bytes of JSON one paged response (a run with a page of its
/// jobs, a page of a job's logs) takes; a page ends early to stay within.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The most attempts a job's description lists (its latest).
pub const MAX_ATTEMPTS_SHOWN: usize = 100;

//! `/health` (the process answers), `/ready` (database and engine work),
//! `/metrics` (Prometheus).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::api::ApiError;
use crate::api::error::ErrorBody;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
    /// Warren's version.
    pub version: String,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
}

#[utoipa::path(get, path = "/health", operation_id = "health", tag = "health", security(), responses((status = 200, body = Health)))]
/// The process answers, with its version and how long it has run.
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`
    pub status: String,
    /// Plugins loaded.
    pub plugins: usize,
}

#[utoipa::path(
    get, path = "/ready", operation_id = "ready", tag = "health", security(),
    responses((status = 200, body = Ready), (status = 503, description = "`unavailable`", body = ErrorBody))
)]
/// The database answers and the engine runs.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let unavailable =
        |message: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    state
        .engine
        .database()
        .query(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await
        .map_err(|e| unavailable(format!("database: {e}")))?;
    state.engine.database().health().map_err(unavailable)?;
    if !state.engine.is_running() {
        return Err(unavailable("the engine has stopped".into()));
    }
    Ok(Json(Ready {
        status: "ready".into(),
        plugins: state.engine.plugins().names().len(),
    }))
}

#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
/// Runs, jobs by state, attempts and their durations, fuel, queue depth.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.engine.metrics().render();
    text.push_str(&crate::scheduler::metrics::render_breakers(
        &state.runtime.breakers().report(),
    ));
    text.push_str(&crate::scheduler::metrics::render_plugin_breakers(
        &state.engine.open_plugin_breakers(),
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

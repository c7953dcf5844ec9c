//! `/health` (the process answers), `/ready` (database and engine work),
//! `/metrics` (Prometheus).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use crate::api::ApiError;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let unavailable =
        |message: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    state
        .engine
        .database()
        .read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .map_err(|e| unavailable(format!("database: {e}")))?;
    if !state.engine.is_running() {
        return Err(unavailable("the engine has stopped".into()));
    }
    Ok(Json(json!({
        "status": "ready",
        "plugins": state.engine.plugins().names().len(),
    })))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.engine.metrics().render(),
    )
}

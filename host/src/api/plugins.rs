//! `/v1/plugins`: what is loaded, with digest, kind and imports.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiPath, check_name};
use crate::api::ApiError;
use crate::plugins::Plugin;

fn describe(plugin: &Plugin) -> Value {
    json!({
        "name": plugin.name(),
        "kind": plugin.kind(),
        "digest": plugin.digest(),
        "size": plugin.size(),
        "imports": plugin.imports(),
    })
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let registry = state.engine.plugins();
    let plugins: Vec<Value> = registry
        .names()
        .iter()
        .filter_map(|name| registry.get(name))
        .map(|p| describe(&p))
        .collect();
    Json(json!({ "plugins": plugins }))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_name("plugin", &name)?;
    let plugin = state
        .engine
        .plugins()
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name}")))?;
    Ok(Json(describe(&plugin)))
}

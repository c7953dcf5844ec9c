//! `/v1/plugins`: what is loaded, with digest, kind and imports.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiPath, check_name};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::plugins::{Plugin, PluginKind};

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub kind: PluginKind,
    /// sha256 of the file: the plugin's version.
    pub digest: String,
    pub size: u64,
    /// Interfaces it imports.
    pub imports: Vec<String>,
}

impl From<&Plugin> for PluginInfo {
    fn from(plugin: &Plugin) -> Self {
        Self {
            name: plugin.name().to_owned(),
            kind: plugin.kind(),
            digest: plugin.digest().to_owned(),
            size: plugin.size(),
            imports: plugin.imports().to_vec(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginInfo>,
}

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, body = PluginList)))]
/// The loaded plugins.
pub async fn list(State(state): State<AppState>) -> Json<PluginList> {
    let registry = state.engine.plugins();
    let plugins = registry
        .names()
        .iter()
        .filter_map(|name| registry.get(name))
        .map(|p| PluginInfo::from(&p))
        .collect();
    Json(PluginList { plugins })
}

#[utoipa::path(
    get, path = "/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = PluginInfo), (status = 404, description = "`not_found`", body = ErrorBody))
)]
/// One loaded plugin.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    check_name("plugin", &name)?;
    let plugin = state
        .engine
        .plugins()
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name}")))?;
    Ok(Json(PluginInfo::from(&plugin)))
}

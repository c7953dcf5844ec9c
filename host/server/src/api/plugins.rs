//! `/v1/plugins`: what the plugins folder holds (versions, grants, usage,
//! quarantined files), approving a version, and uploading one (admin).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, bad_query, check_digest, check_name, page_limit};
use super::idempotency::{self, Idempotent, KeyHeader, Start};
use super::params::{PluginName, PluginVersion};
use super::views::Binary;
use super::{AppState, MAX_PAGE};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::catalogue::directory::{self as folder, ApproveError, Version};
use crate::catalogue::grants::{DirectoryGrant, Grants, PluginBreakerSettings};
use crate::db::idempotency::Answer;
use crate::db::plugins::{self as stored, VersionState as StoredState};
use crate::scheduler::plugin_breakers::PluginBreakerReport;
use warren_sandbox::plugin::Plugin;
use warren_vocabulary::{AgentInfo, LimitsSpec, MemoryScope, PluginKind};

/// A plugin: its active version, if any, and how many versions it has.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginSummary {
    pub name: String,
    /// `active`, or `retired` once its file is removed.
    pub status: String,
    pub kind: PluginKind,
    /// sha256 of the active version.
    pub digest: Option<String>,
    /// The active version's label, from its manifest.
    pub label: Option<String>,
    pub description: Option<String>,
    pub versions: usize,
    pub pending_approval: usize,
}

/// What became of a plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// New runs use it.
    Active,
    /// It asks for more than the active version; an admin must approve it.
    PendingApproval,
    /// Replaced by a newer version; runs that started with it keep it.
    Inactive,
    /// Its file was deleted: new runs cannot name the plugin.
    Retired,
}

impl From<StoredState> for VersionState {
    fn from(state: StoredState) -> Self {
        match state {
            StoredState::Active => Self::Active,
            StoredState::PendingApproval => Self::PendingApproval,
            StoredState::Inactive => Self::Inactive,
            StoredState::Retired => Self::Retired,
        }
    }
}

/// What the attempts of one plugin version used, in all.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageTotals {
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub fuel_consumed: u64,
    pub wall_time_us: u64,
    /// The largest peak memory of any attempt.
    pub peak_memory_bytes: u64,
}

impl From<stored::UsageTotals> for UsageTotals {
    fn from(usage: stored::UsageTotals) -> Self {
        Self {
            attempts: usage.attempts,
            succeeded: usage.succeeded,
            failed: usage.failed,
            fuel_consumed: usage.fuel_consumed,
            wall_time_us: usage.wall_time_us,
            peak_memory_bytes: usage.peak_memory_bytes,
        }
    }
}

/// A file of the plugins folder that was not loaded, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quarantined {
    pub file: String,
    /// sha256 of the file, when it could be read.
    pub digest: Option<String>,
    pub reason: String,
    /// Unix milliseconds.
    pub at: i64,
}

impl From<folder::Quarantined> for Quarantined {
    fn from(q: folder::Quarantined) -> Self {
        Self {
            file: q.file,
            digest: q.digest,
            reason: q.reason,
            at: q.at,
        }
    }
}

/// What examining an uploaded file did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Examined {
    pub file: String,
    pub name: Option<String>,
    pub digest: Option<String>,
    pub state: FileState,
    /// Why it is quarantined or waits for approval.
    pub reason: Option<String>,
}

impl From<folder::Examined> for Examined {
    fn from(e: folder::Examined) -> Self {
        Self {
            file: e.file,
            name: e.name,
            digest: e.digest,
            state: e.state.into(),
            reason: e.reason,
        }
    }
}

/// What became of a file: the state of the version it holds, or why it
/// holds none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Active,
    PendingApproval,
    Inactive,
    Retired,
    /// Not loaded until it changes.
    Quarantined,
    /// Warren could not examine it (its own fault); it tries again.
    Error,
    /// A manifest, kept for the component sent after it.
    Stored,
}

impl From<folder::FileState> for FileState {
    fn from(state: folder::FileState) -> Self {
        match state {
            folder::FileState::Active => Self::Active,
            folder::FileState::PendingApproval => Self::PendingApproval,
            folder::FileState::Inactive => Self::Inactive,
            folder::FileState::Retired => Self::Retired,
            folder::FileState::Quarantined => Self::Quarantined,
            folder::FileState::Error => Self::Error,
            folder::FileState::Stored => Self::Stored,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// A page of plugins, in name order.
    pub plugins: Vec<PluginSummary>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
    /// Files of the plugins folder that were not loaded, with the reason:
    /// the first 500 in file name order, on the first page only.
    pub quarantined: Vec<Quarantined>,
    /// How many files are quarantined in all.
    pub quarantined_total: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PluginsQuery {
    /// Cursor: the `next` of the previous page (a plugin name).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    after: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// What a version's attempts may use.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantsView {
    /// The most a job of this plugin may ask for.
    pub limits: LimitsSpec,
    /// What a job gets when its pipeline asks for nothing.
    pub default_limits: LimitsSpec,
    pub memory: Vec<MemoryScope>,
    pub spawn: bool,
    pub directories: Vec<DirectoryView>,
    /// Where its attempts may send HTTP requests.
    pub outbound: Vec<OutboundView>,
    /// Secrets its requests may carry: names and where they may go, never
    /// values.
    pub secrets: Vec<SecretView>,
    /// Models its attempts may call, by name.
    pub models: Vec<String>,
    /// When its circuit breaker opens (`failures` in a row), for how long
    /// (`cooldown_ms`), and whether its jobs then fail at once
    /// (`fail_fast`) or wait.
    #[schema(value_type = Option<Object>)]
    pub breaker: Option<PluginBreakerSettings>,
    /// What the manifest asked for beyond the policy, and what it got.
    pub capped: Vec<String>,
}

/// A secret a version's requests may carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    /// Hosts it may be sent to.
    pub hosts: Vec<String>,
}

/// A destination a version's attempts may send requests to; an empty list
/// allows any.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundView {
    /// A host name, or `*.example.com` for its subdomains.
    pub host: String,
    pub schemes: Vec<String>,
    pub ports: Vec<u16>,
    pub methods: Vec<String>,
}

/// A host directory preopened for a version's attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    /// Canonical host path.
    pub host: String,
    pub guest: String,
    pub writable: bool,
}

impl From<&DirectoryGrant> for DirectoryView {
    fn from(grant: &DirectoryGrant) -> Self {
        Self {
            host: grant.host.display().to_string(),
            guest: grant.guest.clone(),
            writable: grant.writable,
        }
    }
}

impl From<&Grants> for GrantsView {
    fn from(grants: &Grants) -> Self {
        Self {
            limits: LimitsSpec::from(&grants.limits),
            default_limits: LimitsSpec::from(&grants.default_limits),
            memory: grants.memory.clone(),
            spawn: grants.spawn,
            directories: grants.directories.iter().map(DirectoryView::from).collect(),
            outbound: grants
                .outbound
                .iter()
                .map(|g| OutboundView {
                    host: g.host.clone(),
                    schemes: g.schemes.clone(),
                    ports: g.ports.clone(),
                    methods: g.methods.clone(),
                })
                .collect(),
            secrets: grants
                .secrets
                .iter()
                .map(|s| SecretView {
                    name: s.name.clone(),
                    hosts: s.hosts.clone(),
                })
                .collect(),
            models: grants.models.iter().map(|m| m.name.clone()).collect(),
            breaker: grants.breaker,
            capped: grants.capped.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// sha256 of the file: the version's identity.
    pub digest: String,
    pub state: VersionState,
    pub kind: PluginKind,
    pub size: u64,
    pub label: Option<String>,
    pub description: Option<String>,
    /// Why it waits for approval.
    pub note: Option<String>,
    /// Unix milliseconds.
    pub first_seen_at: i64,
    pub activated_at: Option<i64>,
    pub approved_at: Option<i64>,
    /// Effective grants: the manifest's asks under the operator's policy.
    pub grants: GrantsView,
    /// Exports and imports, when the version is loaded.
    pub exports: Option<Vec<String>>,
    pub imports: Option<Vec<String>>,
    /// What its attempts used, in all.
    pub usage: UsageTotals,
    /// What an agent said of itself in `describe()`, called once when the
    /// version was first loaded; `null` for jobs.
    pub agent: Option<AgentInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginDetail {
    pub name: String,
    pub status: String,
    /// sha256 of the active version.
    pub active: Option<String>,
    /// The latest 100 versions, oldest first.
    pub versions: Vec<VersionView>,
    /// How many versions the plugin has in all.
    pub versions_total: usize,
    /// Its circuit breaker, when its attempts failed lately (absent once a
    /// success closed it, or if it has none).
    pub breaker: Option<PluginBreakerReport>,
}

/// The most versions a plugin's description lists (its latest).
const MAX_VERSIONS_SHOWN: usize = 100;

fn status(versions: &[Version]) -> (&'static str, Option<&Version>) {
    match versions
        .iter()
        .find(|v| v.record.state == StoredState::Active)
    {
        Some(active) => ("active", Some(active)),
        None => ("retired", None),
    }
}

fn summary(name: &str, versions: &[Version]) -> PluginSummary {
    let (status, active) = status(versions);
    let shown = active.or(versions.last());
    PluginSummary {
        name: name.to_owned(),
        status: status.into(),
        kind: shown.map_or(PluginKind::Job, |v| v.record.kind),
        digest: active.map(|v| v.record.digest.clone()),
        label: active.and_then(|v| v.manifest.as_ref()?.version.clone()),
        description: active.and_then(|v| v.manifest.as_ref()?.description.clone()),
        versions: versions.len(),
        pending_approval: versions
            .iter()
            .filter(|v| v.record.state == StoredState::PendingApproval)
            .count(),
    }
}

fn version_view(
    version: &Version,
    loaded: Option<Arc<Plugin>>,
    usage: stored::UsageTotals,
) -> VersionView {
    let record = &version.record;
    VersionView {
        digest: record.digest.clone(),
        state: record.state.into(),
        kind: record.kind,
        size: record.size,
        label: version.manifest.as_ref().and_then(|m| m.version.clone()),
        description: version
            .manifest
            .as_ref()
            .and_then(|m| m.description.clone()),
        note: record.note.clone(),
        first_seen_at: record.first_seen_at,
        activated_at: record.activated_at,
        approved_at: record.approved_at,
        grants: GrantsView::from(&version.grants),
        exports: loaded.as_ref().map(|p| p.exports().to_vec()),
        imports: loaded.as_ref().map(|p| p.imports().to_vec()),
        usage: usage.into(),
        agent: record.agent.clone(),
    }
}

#[utoipa::path(
    get, path = "/v1/plugins", operation_id = "list_plugins", tag = "plugins", params(PluginsQuery),
    responses(
        (status = 200, body = PluginList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
    )
)]
/// The plugins the folder produced, a page at a time, and the files it
/// quarantined.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PluginsQuery>,
) -> Result<Json<PluginList>, ApiError> {
    if let Some(after) = &query.after
        && !warren_vocabulary::names::is_valid_plugin_name(after)
    {
        return Err(bad_query("after", after, "not a plugin name"));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let all = state.plugins.plugins();
    let mut page = all
        .iter()
        .filter(|(name, _)| query.after.as_ref().is_none_or(|after| *name > after))
        .take(limit + 1)
        .map(|(name, versions)| summary(name, versions))
        .collect::<Vec<_>>();
    let more = page.len() > limit;
    page.truncate(limit);
    let quarantined = state.plugins.quarantined();
    let quarantined_total = quarantined.len();
    Ok(Json(PluginList {
        next: more.then(|| page.last().map(|p| p.name.clone())).flatten(),
        plugins: page,
        quarantined: if query.after.is_none() {
            quarantined
                .into_iter()
                .take(MAX_PAGE)
                .map(Quarantined::from)
                .collect()
        } else {
            Vec::new()
        },
        quarantined_total,
    }))
}

#[utoipa::path(
    get, path = "/v1/plugins/{name}", operation_id = "get_plugin", tag = "plugins", params(PluginName),
    responses(
        (status = 200, body = PluginDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// One plugin with every version: state, grants, exports, usage totals.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PluginDetail>, ApiError> {
    check_name("plugin", &name)?;
    let versions = state
        .plugins
        .versions_of(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name}")))?;
    Ok(Json(detail(&state, &name, &versions).await?))
}

async fn detail(
    state: &AppState,
    name: &str,
    versions: &[Version],
) -> Result<PluginDetail, ApiError> {
    let (status, active) = status(versions);
    let versions_total = versions.len();
    let versions = &versions[versions_total.saturating_sub(MAX_VERSIONS_SHOWN)..];
    let registry = state.plugins.registry();
    let digests: Vec<String> = versions.iter().map(|v| v.record.digest.clone()).collect();
    let usages = state
        .engine
        .database()
        .query(move |conn| {
            digests
                .iter()
                .map(|digest| stored::usage(conn, digest))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut views = Vec::with_capacity(versions.len());
    for (version, usage) in versions.iter().zip(usages) {
        let digest = &version.record.digest;
        views.push(version_view(version, registry.version(name, digest), usage));
    }
    Ok(PluginDetail {
        name: name.to_owned(),
        status: status.into(),
        active: active.map(|v| v.record.digest.clone()),
        versions: views,
        versions_total,
        breaker: state.engine.plugin_breaker(name),
    })
}

#[utoipa::path(
    post, path = "/v1/plugins/{name}/versions/{digest}/approve", operation_id = "approve_plugin_version", tag = "plugins",
    params(PluginVersion),
    responses(
        (status = 200, description = "The version is active", body = PluginDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden`: needs an admin token", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the version is not pending approval", body = ErrorBody),
    )
)]
/// Makes a version held for approval (it asks for more than the active
/// one) the active version.
pub async fn approve(
    State(state): State<AppState>,
    ApiPath((name, digest)): ApiPath<(String, String)>,
) -> Result<Json<PluginDetail>, ApiError> {
    check_name("plugin", &name)?;
    check_digest(&digest)?;
    // Run to the end even if the client goes away: the database and the
    // catalogue must not part ways halfway.
    let plugins = state.plugins.clone();
    let (approved_name, approved_digest) = (name.clone(), digest.clone());
    let approved =
        tokio::spawn(async move { plugins.approve(&approved_name, &approved_digest).await })
            .await
            .map_err(ApiError::internal)?;
    match approved {
        Ok(_) => {}
        Err(e @ ApproveError::NotFound(..)) => return Err(ApiError::not_found(e)),
        Err(e @ ApproveError::NotPending { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                e.to_string(),
            ));
        }
        Err(ApproveError::Db(e)) => return Err(e.into()),
        Err(e @ ApproveError::Load(_)) => return Err(ApiError::internal(e)),
    }
    let versions = state.plugins.versions_of(&name).unwrap_or_default();
    Ok(Json(detail(&state, &name, &versions).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The plugin name: the file becomes `NAME.wasm` (or `NAME.toml`).
    /// Letters, digits, `-` and `_`, starting with a letter or digit; at
    /// most 64.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub name: String,
}

#[utoipa::path(
    post, path = "/v1/plugins", operation_id = "upload_plugin", tag = "plugins", params(UploadQuery, KeyHeader),
    request_body(
        description = "A component (`application/wasm`, up to 64 MiB), or its manifest (`application/toml`, UTF-8), sent first",
        content((Binary = "application/wasm"), (String = "application/toml")),
    ),
    responses(
        (status = 201, description = "Examined: `active` or `pending_approval` (for a manifest: stored). With an `Idempotency-Key` used before for the same request: the first answer again", body = Examined,
         headers(("idempotent-replayed" = String, description = "`true` when this is the answer to an earlier request with the same `Idempotency-Key`"))),
        (status = 400, description = "`invalid_query` (a malformed plugin name), `invalid_manifest` (not UTF-8) or `invalid_header` (a malformed `Idempotency-Key`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: needs an admin token", body = ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: a request with this key is still being answered", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_plugin`: quarantined, with the reason; `invalid_manifest`; `idempotency_key_reused` (the key came with another request)", body = ErrorBody),
    )
)]
/// Adds a plugin file (or its manifest) to the plugins folder, the same
/// way as dropping it there, and answers with what became of it.
pub async fn upload(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    request: Idempotent<Bytes>,
) -> Result<Response, ApiError> {
    let Idempotent { key, body } = request;
    if !warren_vocabulary::names::is_valid_plugin_name(&query.name) {
        return Err(bad_query(
            "name",
            &query.name,
            "not a plugin name (letters, digits, `-` and `_`, at most 64)",
        ));
    }
    let db = state.engine.database().clone();
    let claim = match state.idempotency.start(&db, key).await? {
        Start::Answered(answer) => return Ok(answer),
        Start::Proceed(claim) => claim,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let manifest = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/wasm" => false,
        "application/toml" => true,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send a component as application/wasm or a manifest as application/toml",
            ));
        }
    };
    if manifest {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("invalid_manifest", "the manifest is not UTF-8"))?;
        crate::catalogue::grants::Manifest::parse(text).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_manifest",
                format!("invalid manifest: {e}"),
            )
        })?;
    }
    // Run to the end even if the client goes away (see `approve`), the key
    // kept included.
    let task = state.clone();
    tokio::spawn(async move {
        let uploaded = upload_file(&task, query.name, body, manifest).await;
        // The file lands in the folder outside any transaction: its key is
        // kept right after. A crash in between leaves the key unknown, and
        // the request sent again lands on the same version (a version is
        // its digest).
        if let (Ok(answer), Some(claim)) = (&uploaded, &claim) {
            let record = claim.record();
            let stored = answer.clone();
            if let Err(e) = db.write(move |conn| record.store(conn, &stored)).await {
                // The upload is done and its answer true; sent again, the
                // request would land on the same version.
                tracing::warn!("the idempotency key of an upload was not kept: {e}");
            }
        }
        task.idempotency.finish(&db, claim, uploaded).await
    })
    .await
    .map_err(ApiError::internal)?
}

/// Writes the file into the folder and says what became of it.
async fn upload_file(
    state: &AppState,
    name: String,
    body: Bytes,
    manifest: bool,
) -> Result<Answer, ApiError> {
    let examined = state
        .plugins
        .upload(&name, &body, manifest)
        .await
        .map_err(ApiError::internal)?;
    let examined = examined.map_or_else(
        || Examined {
            file: format!("{name}.toml"),
            name: Some(name.clone()),
            digest: None,
            state: FileState::Stored,
            reason: None,
        },
        Examined::from,
    );
    match examined.state {
        FileState::Quarantined => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_plugin",
                examined.reason.unwrap_or_default(),
            ));
        }
        FileState::Error => return Err(ApiError::internal(examined.reason.unwrap_or_default())),
        _ => {}
    }
    idempotency::answer(StatusCode::CREATED, &examined, None).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published states say what the stored ones say.
    #[test]
    fn views_of_states_serialize_as_the_stored_text() {
        for &state in StoredState::ALL {
            let json = serde_json::to_value(VersionState::from(state)).expect("json");
            assert_eq!(json, state.as_str());
        }
        for &state in folder::FileState::ALL {
            let json = serde_json::to_value(FileState::from(state)).expect("json");
            assert_eq!(json, state.as_str());
        }
    }
}

//! `GET /v1/whoami`: the caller's token name and role, so a client (the
//! dashboard) can show what the role may do and hide what it may not.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::middleware::Caller;
use crate::config::Role;

/// Who a token says its bearer is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The token's name; `null` when the server has no tokens (everyone
    /// is an admin on such a server, which listens on loopback only).
    pub name: Option<String>,
    pub role: Role,
    /// Whether the server asks for tokens at all.
    pub tokens: bool,
}

#[utoipa::path(
    get, path = "/v1/whoami", operation_id = "whoami", tag = "health",
    responses(
        (status = 200, description = "The caller's token name and role", body = WhoAmI),
    )
)]
/// Who the bearer token says the caller is: what a client (the dashboard)
/// shows or hides by role.
pub async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.name,
        role: caller.role,
        tokens: !state.tokens.is_empty(),
    })
}

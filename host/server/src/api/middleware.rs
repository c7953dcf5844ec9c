//! What every request goes through: a request id, a deadline, and the
//! bearer token check.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::Role;

pub const REQUEST_ID: &str = "x-request-id";

/// Keeps a well-formed `x-request-id` from the client or makes one; it is
/// returned on the response and logged with the request.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(warren_vocabulary::new_id);
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(req).await;
    tracing::info!(
        request_id = %id,
        %method,
        path = %super::extract::shown(&path),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A request that has not produced its response in time (a slow client
/// sending its body included) gets 408.
pub async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took longer than the server allows",
        )
        .into_response(),
    }
}

/// Who sent a request, as its bearer token says; the auth middleware puts
/// it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` when the server has no tokens.
    pub name: Option<String>,
    pub role: Role,
}

/// Who the request's bearer token says sent it. Without configured tokens
/// (only allowed on loopback) every request is an anonymous admin.
pub fn caller_of(state: &AppState, req: &Request) -> Result<Caller, ApiError> {
    if state.tokens.is_empty() {
        return Ok(Caller {
            name: None,
            role: Role::Admin,
        });
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `authorization: Bearer <token>`",
            )
        })?;
    state
        .tokens
        .iter()
        // Compared without stopping at the first difference, so timing
        // does not tell how much of a guess was right.
        .find(|t| bool::from(t.token.as_bytes().ct_eq(presented.as_bytes())))
        .map(|t| Caller {
            name: Some(t.name.clone()),
            role: t.role,
        })
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"))
}

/// The token of an `authorization` value: the scheme is case-insensitive
/// (RFC 9110, 11.1), so `bearer` and `BEARER` work as `Bearer` does.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An admin token.
pub async fn require_admin(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &req)?;
    match caller.role {
        Role::Admin => {
            req.extensions_mut().insert(caller);
            Ok(next.run(req).await)
        }
        Role::Client | Role::Approver => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs an admin token",
        )),
    }
}

/// Any valid token; an `approver` token only reads (`GET`, `HEAD`): the
/// routes it may write to (decisions, input) use [`require_reviewer`].
pub async fn require_client(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &req)?;
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if caller.role == Role::Approver && !reads {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an approver token may decide, give input and read, not submit or change",
        ));
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Any valid token, approvers included: decisions and input (the gate
/// itself says which roles may decide it).
pub async fn require_reviewer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &req)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        for value in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Bearer\tabc",
            "abc",
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}

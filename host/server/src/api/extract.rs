//! Request parts checked before any lookup: JSON bodies, ids in paths,
//! query strings. Each rejection is an [`ApiError`].

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use warren_vocabulary::names;

use super::error::ApiError;

/// A JSON body; malformed JSON, wrong types and bodies over the limit get
/// their own codes.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("invalid_json", message),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `content-type: application/json`",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the server accepts",
        ),
        _ => ApiError::new(rejection.status(), "invalid_body", message),
    }
}

/// A query string; unknown parameters and wrong types are refused.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

/// Path parameters as strings, each then checked by its handler with the
/// functions below.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_id", rejection.body_text())),
        }
    }
}

/// Run, job and attempt ids are lowercase hyphenated UUIDs.
pub fn check_id(kind: &str, id: &str) -> Result<(), ApiError> {
    if names::is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!("{} is not a {kind} id (a lowercase UUID)", shown(id)),
        ))
    }
}

/// Artifact digests are 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), ApiError> {
    if names::is_valid_digest(digest) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!(
                "{} is not an artifact digest (64 lowercase hex digits)",
                shown(digest)
            ),
        ))
    }
}

/// Template and plugin names: letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit (a plugin name with `.` is found nowhere).
pub fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    if names::is_valid_template_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!("{} is not a valid {kind} name", shown(name)),
        ))
    }
}

/// A client-supplied value in a message: quoted, escaped and cut short.
pub fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

//! Every error the API returns: JSON `{ "code", "message" }` with a stable
//! code, and the status that goes with it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;
use crate::scheduler::EngineError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable; documented in docs/api.md.
    pub code: &'static str,
    pub message: String,
    /// Machine-readable specifics of some errors (see [`ErrorBody`]).
    pub details: Option<serde_json::Value>,
}

/// Every error response.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "not_found", "message": "run 0191c0de-0000-7000-8000-000000000000 not found"}))]
pub struct ErrorBody {
    /// Stable, machine-readable: `invalid_json`, `invalid_text`,
    /// `invalid_body`, `invalid_id`, `invalid_query`, `invalid_header`,
    /// `invalid_pipeline`, `invalid_plugin`, `invalid_manifest`,
    /// `unauthorized`, `forbidden`, `not_found`, `unknown_template`,
    /// `method_not_allowed`, `timeout`, `run_ended`, `conflict`,
    /// `idempotency_key_in_use`, `idempotency_key_reused`,
    /// `invalid_input`, `payload_too_large`, `unsupported_media_type`,
    /// `internal`, `unavailable`, `insufficient_storage`,
    /// `unknown_replay`, `rejected_input`, `guard_unavailable`.
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// `rejected_input`: `{"guard", "category", "reason", "sha256"}` (the
    /// sha256 of the input refused, which was not stored);
    /// `guard_unavailable`: `{"guard"}`. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The error with machine-readable specifics.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        // The details go to the log; the client gets no internals.
        tracing::error!("internal error: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            details: self.details,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound(what) => Self::not_found(what),
            DbError::WriterGone => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database writer has stopped",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Spec(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_pipeline",
                e.to_string(),
            ),
            EngineError::UnknownTemplate(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_template", error.to_string())
            }
            EngineError::UnknownRun(_) => Self::not_found(format!("run {}", run_name(&error))),
            EngineError::UnknownReplay(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_replay",
                error.to_string(),
            ),
            EngineError::RejectedInput {
                ref guard,
                ref category,
                ref reason,
                ref sha256,
            } => {
                let details = serde_json::json!({
                    "guard": guard, "category": category, "reason": reason, "sha256": sha256,
                });
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "rejected_input",
                    error.to_string(),
                )
                .with_details(details)
            }
            EngineError::GuardUnavailable { ref guard, .. } => {
                let details = serde_json::json!({ "guard": guard });
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "guard_unavailable",
                    format!("the input was not let through: {error}"),
                )
                .with_details(details)
            }
            EngineError::UnknownJob(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            EngineError::TooLarge(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                error.to_string(),
            ),
            EngineError::BadStoryId(_) => Self::bad_request("invalid_id", error.to_string()),
            EngineError::InvalidInput(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                error.to_string(),
            ),
            EngineError::NotRetryable(_) | EngineError::NotWaiting(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            EngineError::Forbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
            }
            EngineError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
            EngineError::InsufficientStorage(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "insufficient_storage",
                error.to_string(),
            ),
            EngineError::Db(e) => e.into(),
        }
    }
}

fn run_name(error: &EngineError) -> String {
    match error {
        EngineError::UnknownRun(id) => id.clone(),
        _ => String::new(),
    }
}

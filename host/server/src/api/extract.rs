//! Request parts checked before any lookup: bodies, ids in paths, query
//! strings. Each rejection is an [`ApiError`] in Warren's words: no text of
//! axum's or serde's reaches a client (see [`super::messages`]).

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use warren_vocabulary::{names, text};

use super::MAX_PAGE;
use super::error::ApiError;
use super::messages;

/// A body, parsed once the whole of it is read (see [`read_body`]).
pub trait FromBody: Sized {
    fn from_body(parts: &Parts, body: Bytes) -> Result<Self, ApiError>;
}

/// The raw bytes (plugin uploads).
impl FromBody for Bytes {
    fn from_body(_: &Parts, body: Bytes) -> Result<Self, ApiError> {
        Ok(body)
    }
}

/// A JSON body: sent as `application/json`; malformed JSON and values of
/// the wrong shape get their own codes, with the field at fault.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromBody for ApiJson<T> {
    fn from_body(parts: &Parts, body: Bytes) -> Result<Self, ApiError> {
        if !is_json(parts) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `content-type: application/json`",
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| json_error(&e.path().to_string(), e.inner()))?;
        deserializer.end().map_err(|e| json_error(".", &e))?;
        Ok(Self(value))
    }
}

/// Alone (without an `Idempotency-Key`), a JSON body is an extractor.
impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = read_body(req, state).await?;
        Self::from_body(&parts, body)
    }
}

/// `application/json`, or a `+json` type, parameters aside.
fn is_json(parts: &Parts) -> bool {
    let Some(value) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// A body that must be one JSON value (a JSON document's content): UTF-8,
/// nested no deeper than API bodies may be, and well-formed.
pub fn check_json(body: &[u8]) -> Result<(), ApiError> {
    let json = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not UTF-8 (from byte {})", e.valid_up_to()),
        )
    })?;
    text::check_json_depth(json).map_err(|e| ApiError::bad_request("invalid_json", e))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    IgnoredAny::deserialize(&mut deserializer).map_err(|e| json_error(".", &e))?;
    deserializer.end().map_err(|e| json_error(".", &e))
}

/// `path` is serde_path_to_error's: `.` for the whole body, else the
/// dotted path of the field at fault.
fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    let position = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Data => {
            let suffix = format!(" at line {} column {}", error.line(), error.column());
            let message = error.to_string();
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            let reason = messages::reason(message);
            // An unknown field is said of the object that holds it.
            let path = match message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((field, _)) if path == field => ".",
                Some((field, _)) => path
                    .strip_suffix(field)
                    .and_then(|parent| parent.strip_suffix('.'))
                    .unwrap_or(path),
                None => path,
            };
            let place = if path == "." {
                "the body".to_owned()
            } else {
                format!("`{path}`")
            };
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("{place}: {reason} ({position})"),
            )
        }
        serde_json::error::Category::Eof => ApiError::bad_request(
            "invalid_json",
            format!("the body ends inside its JSON ({position})"),
        ),
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON ({position})"),
            )
        }
    }
}

/// Reads the whole body, within the route's limit (`DefaultBodyLimit`);
/// returns it with the rest of the request.
pub async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let limited = Request::from_parts(parts.clone(), body);
    match Bytes::from_request(limited, state).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            ))
        }
        Err(rejection) => Err(ApiError::new(
            rejection.status(),
            "invalid_body",
            "the request body could not be read to its end",
        )),
    }
}

/// A query string; unknown parameters, repeated ones and wrong types are
/// refused with the parameter at fault.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|e| query_error(query, &e.path().to_string(), &e.inner().to_string()))
    }
}

fn query_error(query: &str, parameter: &str, message: &str) -> ApiError {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // serde lists the known names as "`a`", "`a` or `b`" or "one of
        // `a`, `b`, `c`".
        let (name, known) = rest.split_once(", ").unwrap_or((rest, ""));
        let known = known.strip_prefix("expected ").unwrap_or(known);
        let known = known.strip_prefix("one of ").unwrap_or(known);
        return ApiError::bad_request(
            "invalid_query",
            if known.is_empty() || known == "there are no fields" {
                format!("unknown query parameter {name}: this endpoint takes none")
            } else {
                format!(
                    "unknown query parameter {name}; this endpoint takes {}",
                    known.replace(" or ", ", ")
                )
            },
        );
    }
    if let Some(name) = message.strip_prefix("missing field ") {
        return ApiError::bad_request(
            "invalid_query",
            format!("query parameter {name} is required"),
        );
    }
    let reason = messages::reason(message);
    if parameter == "." {
        return ApiError::bad_request("invalid_query", format!("the query string: {reason}"));
    }
    let given = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == parameter)
        .map(|(_, value)| format!(" = {}", shown(&value)))
        .unwrap_or_default();
    ApiError::bad_request(
        "invalid_query",
        format!("query parameter `{parameter}`{given}: {reason}"),
    )
}

/// A query parameter whose value has the right type but not the right form.
pub fn bad_query(parameter: &str, value: &str, what: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("query parameter `{parameter}` = {}: {what}", shown(value)),
    )
}

/// A page size from the query: `default` when absent, else 1 to
/// [`MAX_PAGE`].
pub fn page_limit(
    parameter: &str,
    given: Option<usize>,
    default: usize,
) -> Result<usize, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(bad_query(
            parameter,
            &n.to_string(),
            &format!("not from 1 to {MAX_PAGE}"),
        )),
    }
}

/// Path parameters as strings, each then checked by its handler with the
/// functions below.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    // Parameters are taken as strings: what fails is their decoding, or
    // (a bug) a handler asking for what its route does not have.
    if rejection.status().is_server_error() {
        return ApiError::internal(rejection.body_text());
    }
    let message = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("the `{key}` in the path is not UTF-8 text once percent-decoded")
            }
            ErrorKind::ParseErrorAtKey { key, value, .. }
            | ErrorKind::DeserializeError { key, value, .. } => {
                format!("{} is not a valid `{key}`", shown(value))
            }
            ErrorKind::ParseErrorAtIndex { value, .. } | ErrorKind::ParseError { value, .. } => {
                format!("{} in the path is not valid", shown(value))
            }
            _ => "the path holds a malformed parameter".to_owned(),
        },
        _ => "the path holds a malformed parameter".to_owned(),
    };
    ApiError::bad_request("invalid_id", message)
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

/// Story ids: 1 to 128 letters, digits, `-`, `_`, `.` and `:`.
pub fn check_story_id(story: &str) -> Result<(), ApiError> {
    if names::is_valid_story_id(story) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!("{} is not a story id", shown(story)),
        ))
    }
}

/// Document names: printable text of 1 to 128 bytes that reads as no path
/// (see `names::check_document_name`); the message says what is wrong.
pub fn check_document_name(name: &str) -> Result<(), ApiError> {
    names::check_document_name(name).map_err(|why| {
        ApiError::bad_request(
            "invalid_id",
            format!("{} is not a document name: {why}", shown(name)),
        )
    })
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

/// A template version in a path: a whole number from 1, written in
/// digits, that fits a stored version (at most 2^63 - 1).
pub fn check_version(version: &str) -> Result<i64, ApiError> {
    version
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| version.parse::<i64>().ok())
        .flatten()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!(
                    "{} is not a template version (a whole number from 1 to {})",
                    shown(version),
                    i64::MAX
                ),
            )
        })
}

/// A client-supplied value in a message: quoted, escaped and cut short.
pub fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_whole_numbers_from_one_that_fit_64_bits() {
        assert_eq!(check_version("1"), Ok(1));
        assert_eq!(check_version("9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "0",
            "-1",
            "+1",
            "",
            " 1",
            "1.0",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            let error = check_version(bad).expect_err(bad);
            assert_eq!(error.code, "invalid_id", "{bad}");
            assert!(
                error.message.contains("not a template version"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        let parts = |content_type: &str| {
            let (parts, ()) = Request::builder()
                .header(header::CONTENT_TYPE, content_type)
                .body(())
                .expect("request")
                .into_parts();
            parts
        };
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ] {
            assert!(is_json(&parts(json)), "{json}");
        }
        for other in [
            "text/plain",
            "application/jsonx",
            "json",
            "application/wasm",
        ] {
            assert!(!is_json(&parts(other)), "{other}");
        }
    }
}

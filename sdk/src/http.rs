//! A small HTTP client over `wasi:http`. Requests leave only to the
//! destinations the operator granted the plugin (its manifest's
//! `[[outbound]]`, capped by the server's policy); any other fails with
//! [`HttpError::Denied`] and is never sent.
//!
//! ```no_run
//! let answer = warren_sdk::http::get("https://api.example.com/items")?;
//! let items: serde_json::Value = answer.json()?;
//! # Ok::<(), warren_sdk::Error>(())
//! ```

use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

use crate::Error;

/// Largest response body read, in bytes.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// `(name, value)`, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body, deserialized from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(Error::from)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The plugin may not send requests there: it was not sent.
    Denied,
    /// The destination did not answer in time (or the job's time ran out).
    Timeout,
    /// A malformed URL, method or header.
    Invalid(String),
    /// Any other failure, as `wasi:http` names it.
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied => {
                f.write_str("HTTP request denied: not among the plugin's outbound grants")
            }
            Self::Timeout => f.write_str("HTTP request timed out"),
            Self::Invalid(why) => write!(f, "invalid HTTP request: {why}"),
            Self::Failed(why) => write!(f, "HTTP request failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for Error {
    /// A denial or a bad request cannot succeed on a retry; a timeout or a
    /// failure may.
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Denied | HttpError::Invalid(_) => Error::permanent(error.to_string()),
            HttpError::Timeout | HttpError::Failed(_) => Error::retryable(error.to_string()),
        }
    }
}

fn from_code(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => HttpError::Timeout,
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None)
}

/// `POST url` with a JSON body.
pub fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<Response, HttpError> {
    let body = serde_json::to_vec(body).map_err(|e| HttpError::Invalid(e.to_string()))?;
    request(
        "POST",
        url,
        &[("content-type", "application/json")],
        Some(&body),
    )
}

/// Sends `method url` with `headers` and `body`, and reads the response
/// whole (at most [`MAX_BODY_BYTES`]).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split_url(url)?;
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
    // A body of known length goes with it, not chunked (some servers
    // refuse chunked requests).
    if let Some(bytes) = body
        && !fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        fields.push((
            "content-length".to_owned(),
            bytes.len().to_string().into_bytes(),
        ));
    }
    let fields =
        Fields::from_list(&fields).map_err(|e| HttpError::Invalid(format!("headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| HttpError::Invalid(what.to_owned());
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;
    let outgoing_body = outgoing.body().map_err(|()| invalid("body"))?;
    // Sent first: the body streams to the destination as it is written.
    let pending = outgoing_handler::handle(outgoing, None).map_err(from_code)?;
    // A body the host stops taking (a denied request, say) says why in the
    // response, which is read before the write's own error.
    let mut unwritten = None;
    if let Some(bytes) = body {
        let stream = outgoing_body.write().map_err(|()| invalid("body"))?;
        for chunk in bytes.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                unwritten = Some(HttpError::Failed(format!("writing the body: {e:?}")));
                break;
            }
        }
    }
    let finished = OutgoingBody::finish(outgoing_body, None);
    pending.subscribe().block();
    let incoming = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(from_code(code)),
        Some(Err(())) | None => return Err(HttpError::Failed("no response".into())),
    };
    if let Some(error) = unwritten {
        return Err(error);
    }
    finished.map_err(from_code)?;
    let status = incoming.status();
    let headers = incoming.headers().entries();
    let body = incoming
        .consume()
        .map_err(|()| HttpError::Failed("the body was taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| HttpError::Failed("the body stream was taken".into()))?;
    let mut read = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => {
                read.extend_from_slice(&chunk);
                if read.len() > MAX_BODY_BYTES {
                    return Err(HttpError::Failed(format!(
                        "the response body is over {MAX_BODY_BYTES} bytes"
                    )));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Failed(format!(
                    "reading the body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: read,
    })
}

/// `https://host:port/path?query` as scheme, authority and path (with
/// its query).
fn split_url(url: &str) -> Result<(Scheme, &str, String), HttpError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(HttpError::Invalid(format!("{url:?} is not an http(s) URL")));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(HttpError::Invalid(format!("{url:?} names no host")));
    }
    Ok((scheme, authority, path))
}

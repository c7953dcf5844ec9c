//! `Idempotency-Key` on the POSTs that create something (runs, template
//! versions, plugin uploads), after Stripe's: the first request with a key
//! is answered and its answer kept (with what it created, in one SQLite
//! transaction); a later request with the same key and the same method,
//! path and body gets that answer again, marked `idempotent-replayed:
//! true`; the same key with another request gets `422
//! idempotency_key_reused`. Keys belong to the token that sent them and are
//! kept for the server's retention window. A request arriving while the
//! first with its key is still being answered waits for that answer (`409
//! idempotency_key_in_use` if it takes too long). Only answers that created
//! something are kept: a refused request changed nothing and may be sent
//! again with its key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::extract::{FromBody, read_body};
use super::middleware::Caller;
use crate::db::idempotency::{self as stored, Answer, KeyId};
use crate::db::{Database, DbError};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header on an answer given again.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// `Idempotency-Key`, as the OpenAPI description shows it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct KeyHeader {
    /// Makes the request safe to send again: up to 255 printable ASCII
    /// characters, e.g. a UUID. A request with a key already used by the
    /// same token (within the retention window, 24 h by default) is not
    /// done again: the same method, path and body get the first answer
    /// again with `idempotent-replayed: true`, another request gets `422
    /// idempotency_key_reused`.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]{1,255}$"
    )]
    pub idempotency_key: Option<String>,
}

/// A request's key: whose, which, and the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub id: KeyId,
    /// sha256 (hex) of the method, the path with its query, and the body.
    pub fingerprint: String,
}

/// A body with the `Idempotency-Key` it came with, if any.
pub struct Idempotent<T> {
    pub key: Option<RequestKey>,
    pub body: T,
}

impl<S: Send + Sync, T: FromBody> FromRequest<S> for Idempotent<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = key_of(req.headers())?;
        let scope = req
            .extensions()
            .get::<Caller>()
            .and_then(|caller| caller.name.clone())
            .unwrap_or_default();
        let method = req.method().clone();
        // Routes are nested under `/v1`: the client's own path is the one
        // to compare.
        let uri = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().clone(), |original| original.0.clone());
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
        let (parts, bytes) = read_body(req, state).await?;
        let key = key.map(|key| RequestKey {
            fingerprint: fingerprint(method.as_str(), &target, &bytes),
            id: KeyId { scope, key },
        });
        let body = T::from_body(&parts, bytes)?;
        Ok(Self { key, body })
    }
}

/// The `Idempotency-Key` header: absent, or one value of 1 to 255
/// printable ASCII characters.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::bad_request("invalid_header", format!("Idempotency-Key {why}"));
    if values.next().is_some() {
        return Err(bad("is given more than once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(bad("is empty"));
    }
    if bytes.len() > MAX_KEY_BYTES {
        return Err(bad(&format!(
            "is {} bytes long; the most is {MAX_KEY_BYTES}",
            bytes.len()
        )));
    }
    if !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(bad(
            "may only hold printable ASCII characters (no control characters)",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// sha256 of what makes two requests the same: method, path with query
/// (a plugin upload names its plugin there), body.
fn fingerprint(method: &str, target: &str, body: &Bytes) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b"\n");
    hash.update(target.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

type Lock = Arc<tokio::sync::Mutex<()>>;

/// The server's keys: how long they are kept, and those whose first
/// request is still being answered.
#[derive(Debug)]
pub struct Keys {
    retention: Duration,
    /// How long a request waits for the first one with its key.
    wait: Duration,
    in_flight: Arc<Mutex<HashMap<KeyId, Lock>>>,
}

/// What to do with a request.
pub enum Start {
    /// Its key was used before: the answer to give.
    Answered(Response),
    /// Go ahead; with a key, the claim holds it until the answer is kept.
    Proceed(Option<Claim>),
}

/// A key held while its first request is answered.
pub struct Claim {
    key: RequestKey,
    record: KeyRecord,
    _held: Held,
}

/// What stores a key with its answer, in the writer's transaction.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    id: KeyId,
    fingerprint: String,
    retention_ms: i64,
}

impl KeyRecord {
    /// Stores `answer` under the key, in the transaction that creates what
    /// the answer names; a key taken meanwhile fails both.
    pub fn store(&self, conn: &Connection, answer: &Answer) -> Result<(), DbError> {
        let now = warren_vocabulary::now_ms();
        stored::insert(
            conn,
            &self.id,
            &self.fingerprint,
            answer,
            now,
            now.saturating_sub(self.retention_ms),
        )
    }
}

impl Claim {
    pub fn record(&self) -> KeyRecord {
        self.record.clone()
    }
}

impl Keys {
    /// Keys kept for `retention`; a request waits up to `wait` for the
    /// first one with its key.
    pub fn new(retention: Duration, wait: Duration) -> Self {
        Self {
            retention,
            wait,
            in_flight: Arc::default(),
        }
    }

    fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX)
    }

    /// Holds the request's key, if it has one, and answers from it if it
    /// was used before.
    pub async fn start(
        &self,
        db: &Arc<Database>,
        key: Option<RequestKey>,
    ) -> Result<Start, ApiError> {
        let Some(key) = key else {
            return Ok(Start::Proceed(None));
        };
        let held = self.hold(&key.id).await?;
        if let Some(answer) = self.answer_kept(db, &key).await? {
            return Ok(Start::Answered(answer));
        }
        let record = KeyRecord {
            id: key.id.clone(),
            fingerprint: key.fingerprint.clone(),
            retention_ms: self.retention_ms(),
        };
        Ok(Start::Proceed(Some(Claim {
            key,
            record,
            _held: held,
        })))
    }

    /// The response to a request that went ahead. A request with a key
    /// that failed may have lost to a request with the same key (another
    /// process, or one whose client left): what that one kept is the answer.
    pub async fn finish(
        &self,
        db: &Arc<Database>,
        claim: Option<Claim>,
        outcome: Result<Answer, ApiError>,
    ) -> Result<Response, ApiError> {
        match (outcome, claim) {
            (Ok(answer), claim) => {
                if let Some(claim) = &claim {
                    faults::after_commit(&claim.key.id.key);
                }
                Ok(respond(&answer, false))
            }
            (Err(error), Some(claim)) => match self.answer_kept(db, &claim.key).await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => Err(error),
                Err(kept_error) => Err(kept_error),
            },
            (Err(error), None) => Err(error),
        }
    }

    /// The kept answer to `key`'s request, if the key was used within the
    /// window; `422` if it was used for another request.
    async fn answer_kept(
        &self,
        db: &Arc<Database>,
        key: &RequestKey,
    ) -> Result<Option<Response>, ApiError> {
        let not_before = warren_vocabulary::now_ms().saturating_sub(self.retention_ms());
        let id = key.id.clone();
        let kept = db
            .query(move |conn| stored::find(conn, &id, not_before))
            .await?;
        match kept {
            None => Ok(None),
            Some(kept) if kept.fingerprint == key.fingerprint => {
                Ok(Some(respond(&kept.answer, true)))
            }
            Some(_) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request (method, path or body differ); use a new key",
            )),
        }
    }

    /// Waits until no other request holds `id`, then holds it.
    async fn hold(&self, id: &KeyId) -> Result<Held, ApiError> {
        let lock = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.entry(id.clone()).or_default().clone()
        };
        let mut held = Held {
            in_flight: self.in_flight.clone(),
            id: id.clone(),
            lock: Some(lock.clone()),
            guard: None,
        };
        let acquired = tokio::time::timeout(self.wait, lock.lock_owned()).await;
        match acquired {
            Ok(guard) => {
                held.guard = Some(guard);
                Ok(held)
            }
            Err(_) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being answered; send it again later",
            )),
        }
    }
}

/// A key held (or waited for); forgotten by the in-flight table once no
/// request holds or waits for it.
struct Held {
    in_flight: Arc<Mutex<HashMap<KeyId, Lock>>>,
    id: KeyId,
    lock: Option<Lock>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guard = None;
        self.lock = None;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // The table's own reference is the last: nobody holds or waits.
        if in_flight
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            in_flight.remove(&self.id);
        }
    }
}

/// An answer as JSON, with its `location`; marked when given again.
pub fn respond(answer: &Answer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body.clone(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(location) = answer
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// An answer to keep: `status` and `body` as JSON.
pub fn answer(
    status: StatusCode,
    body: &impl serde::Serialize,
    location: Option<String>,
) -> Result<Answer, DbError> {
    Ok(Answer {
        status: status.as_u16(),
        body: serde_json::to_string(body).map_err(|e| DbError::Corrupt(e.to_string()))?,
        location,
    })
}

/// Fault injection for the tests, compiled into debug builds only.
mod faults {
    /// `WARREN_FAULT_KILL_AFTER_COMMIT=KEY` makes a debug build kill itself
    /// (SIGKILL) right after committing what a request with idempotency key
    /// KEY created, before answering: the reply a crash would lose.
    #[cfg(debug_assertions)]
    pub fn after_commit(key: &str) {
        static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let armed = FAULT.get_or_init(|| std::env::var("WARREN_FAULT_KILL_AFTER_COMMIT").ok());
        if armed.as_deref() == Some(key) {
            tracing::warn!("fault injection: killing the process after the commit for key {key:?}");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::process::abort();
        }
    }

    #[cfg(not(debug_assertions))]
    pub fn after_commit(_key: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_bytes(value).expect("value"));
        }
        headers
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert_eq!(key_of(&headers(&[])), Ok(None));
        assert_eq!(
            key_of(&headers(&[b"run-42 / retry"])),
            Ok(Some("run-42 / retry".into()))
        );
        let longest = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(
            key_of(&headers(&[longest.as_bytes()])),
            Ok(Some(longest.clone()))
        );
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in [
            &[too_long.as_bytes()][..],
            // The only control character a header value can carry.
            &[b"tab\there"],
            &[b"caf\xc3\xa9"],
            &[b"a", b"b"],
        ] {
            let error = key_of(&headers(bad)).expect_err("refused");
            assert_eq!(
                (error.status, error.code),
                (StatusCode::BAD_REQUEST, "invalid_header"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_fingerprint_covers_method_path_query_and_body() {
        let base = fingerprint("POST", "/v1/runs", &Bytes::from_static(b"{}"));
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            fingerprint("POST", "/v1/runs", &Bytes::from_static(b"{}"))
        );
        for other in [
            fingerprint("PUT", "/v1/runs", &Bytes::from_static(b"{}")),
            fingerprint("POST", "/v1/templates", &Bytes::from_static(b"{}")),
            fingerprint("POST", "/v1/runs?x=1", &Bytes::from_static(b"{}")),
            fingerprint("POST", "/v1/runs", &Bytes::from_static(b"{ }")),
        ] {
            assert_ne!(base, other);
        }
    }

    fn id(key: &str) -> KeyId {
        KeyId {
            scope: String::new(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn a_second_request_waits_for_the_first_with_its_key_or_gets_409() {
        let keys = Arc::new(Keys::new(
            Duration::from_secs(60),
            Duration::from_millis(200),
        ));
        let first = keys.hold(&id("k")).await.expect("free");
        // Another key is not held up.
        drop(keys.hold(&id("other")).await.expect("free"));
        let error = keys.hold(&id("k")).await.err().expect("in use");
        assert_eq!(
            (error.status, error.code),
            (StatusCode::CONFLICT, "idempotency_key_in_use")
        );
        // A waiter gets the key once the first lets go.
        let waiter = tokio::spawn({
            let keys = keys.clone();
            async move { keys.hold(&id("k")).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(waiter.await.expect("joined"));
        // Nothing is left behind once nobody holds or waits.
        let left = keys.in_flight.lock().expect("table").len();
        assert_eq!(left, 0);
    }
}

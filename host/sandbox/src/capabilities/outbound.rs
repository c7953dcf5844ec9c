//! `wasi:http/outgoing-handler`, through the operator's door: a request
//! leaves only to a destination its plugin's grants name (scheme, host,
//! port, method); any other fails in the guest with `HTTP-request-denied`,
//! is written to the attempt's log and counted, and is never sent. A
//! request that leaves is bounded by the attempt's deadline and stopped by
//! its cancel, and its response body by a size limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::breaker::Breakers;
use super::log::{AttemptLog, LogLevel, LogSource};
use super::replay::{CallKind, Tape, decode_http, encode_http, http_request_hash};
use crate::plugin::grants::{OutboundGrant, SecretGrant};

/// Requests over all attempts, for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboundCounters {
    /// Requests sent (a response, or an error after leaving).
    pub sent: AtomicU64,
    /// Requests refused because no grant names their destination.
    pub denied: AtomicU64,
    /// Requests cut by their attempt's deadline or cancel.
    pub cut: AtomicU64,
    /// Requests failed at once because their destination's breaker was open.
    pub refused: AtomicU64,
}

/// Every attempt's outbound requests, counted.
pub static OUTBOUND: OutboundCounters = OutboundCounters {
    sent: AtomicU64::new(0),
    denied: AtomicU64::new(0),
    cut: AtomicU64::new(0),
    refused: AtomicU64::new(0),
};

/// How often an in-flight request looks at its attempt's cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// Largest response body an attempt may read, by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Largest request body an attempt may send.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Requests (and model calls) out at once, over every plugin.
pub const MAX_IN_FLIGHT: usize = 256;
/// Requests (and model calls) out at once for one plugin.
pub const MAX_IN_FLIGHT_PER_PLUGIN: usize = 32;

/// How many requests may be out at once: over all plugins, and for each.
/// A request over either waits for a place (within its job's deadline).
#[derive(Debug)]
pub struct InFlight {
    global: Arc<Semaphore>,
    per_plugin: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            global: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            per_plugin: std::sync::Mutex::default(),
        }
    }
}

/// A place for one request: held until it is answered.
pub struct Places(
    #[allow(dead_code)] OwnedSemaphorePermit,
    #[allow(dead_code)] OwnedSemaphorePermit,
);

impl InFlight {
    /// Waits for a place for a request of `plugin`.
    pub async fn enter(&self, plugin: &str) -> Option<Places> {
        let mine = self
            .per_plugin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(plugin.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_PLUGIN)))
            .clone();
        let own = mine.acquire_owned().await.ok()?;
        let all = self.global.clone().acquire_owned().await.ok()?;
        Some(Places(own, all))
    }
}

/// What one attempt's requests may do, and what they share.
pub struct OutboundCtx {
    pub grants: Arc<[OutboundGrant]>,
    /// `(placeholder, secret)` of the secrets granted.
    pub secrets: Vec<(String, SecretGrant)>,
    pub breakers: Arc<Breakers>,
    pub in_flight: Arc<InFlight>,
    pub plugin: String,
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
    pub log: AttemptLog,
    /// Records the answers, or gives the recorded ones in a replay.
    pub tape: Arc<Tape>,
}

/// Per-attempt state: what the plugin may reach, and until when.
pub struct OutboundHooks {
    grants: Arc<[OutboundGrant]>,
    /// `(placeholder, secret)` of the secrets granted.
    secrets: Vec<(String, SecretGrant)>,
    breakers: Arc<Breakers>,
    in_flight: Arc<InFlight>,
    plugin: String,
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
    log: AttemptLog,
    tape: Arc<Tape>,
    max_response_bytes: u64,
}

impl OutboundHooks {
    pub fn new(ctx: OutboundCtx) -> Self {
        Self {
            grants: ctx.grants,
            secrets: ctx.secrets,
            breakers: ctx.breakers,
            in_flight: ctx.in_flight,
            plugin: ctx.plugin,
            deadline: ctx.deadline,
            cancel: ctx.cancel,
            log: ctx.log,
            tape: ctx.tape,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Whether a request to `uri` with `method` is granted; the refusal's
    /// reason when not.
    fn check(&self, uri: &http::Uri, method: &http::Method) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return Err("the request names no host".into());
        };
        // What is checked must be what is connected to: no user part
        // (`a@host`), and at most the one trailing dot of a full name.
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("an authority with a user part (`user@host`) is refused".into());
        }
        if host.ends_with("..") {
            return Err(format!("{host:?} is not a host name"));
        }
        let port = uri.port_u16().unwrap_or(match scheme {
            "http" => 80,
            _ => 443,
        });
        if self
            .grants
            .iter()
            .any(|g| g.allows(scheme, host, port, method.as_str()))
        {
            Ok(())
        } else if self.grants.is_empty() {
            Err("the plugin has no outbound grant".into())
        } else {
            Err(format!(
                "{method} {scheme}://{host}:{port} is not among its outbound grants"
            ))
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        if let Err(reason) = self.check(request.uri(), request.method()) {
            OUTBOUND.denied.fetch_add(1, Ordering::Relaxed);
            let message = format!("warren: outbound request denied, not sent: {reason}");
            // The attempt's log (bounded) and the counter say it; the
            // server's log only at debug, so a guest looping on denied
            // requests cannot flood it.
            tracing::debug!(plugin = %self.plugin, "{message}");
            self.log.push(LogSource::Log, LogLevel::Warn, &message);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        // A replay sends nothing: the answer is the one recorded.
        if self.tape.replaying() {
            return Box::new(replay_http(self.tape.clone(), request));
        }
        // A destination that keeps failing is not called for a while.
        let destination = destination_of(request.uri());
        let admission = match self.breakers.admit(&destination) {
            Ok(admission) => admission,
            Err(open_for) => {
                OUTBOUND.refused.fetch_add(1, Ordering::Relaxed);
                let message = format!(
                    "warren: circuit open for {destination}, not sent (for {} ms more)",
                    open_for.as_millis()
                );
                self.log.push(LogSource::Log, LogLevel::Warn, &message);
                return Box::new(async { Err(Error::DestinationUnavailable) });
            }
        };
        let carries_secret = self.swap_secrets(&mut request);
        let left = self.deadline.saturating_duration_since(Instant::now());
        // No wait of the request outlives the attempt.
        let bounded = |asked: Option<Duration>| Some(asked.map_or(left, |a| a.min(left)));
        let options = RequestOptions {
            connect_timeout: bounded(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: bounded(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: bounded(options.and_then(|o| o.between_bytes_timeout)),
        };
        let cancel = self.cancel.clone();
        let max = self.max_response_bytes;
        let (in_flight, plugin, tape) = (
            self.in_flight.clone(),
            self.plugin.clone(),
            self.tape.clone(),
        );
        Box::new(async move {
            let wait_and_send = async {
                // A place first: what is buffered below is bounded by the
                // requests out at once.
                let places = in_flight.enter(&plugin).await;
                // Read whole, for the recording's hash and so a body past
                // the limit is refused before anything leaves.
                let (parts, body) = request.into_parts();
                let body = read_whole(body, MAX_REQUEST_BYTES, || {
                    Error::HttpRequestBodySize(Some(MAX_REQUEST_BYTES as u64))
                })
                .await?;
                let hash = http_request_hash(&parts.method, &parts.uri, &body);
                let request = http::Request::from_parts(parts, full(body));
                OUTBOUND.sent.fetch_add(1, Ordering::Relaxed);
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                // The connection is driven while the answer is read whole,
                // to be recorded.
                let connection = tokio::spawn(async move {
                    let _ = io.await;
                });
                let (head, body) = response.into_parts();
                let read = read_whole(body, max as usize, || {
                    Error::HttpResponseBodySize(Some(max))
                })
                .await;
                connection.abort();
                drop(places);
                let body = read?;
                // An answer to a request that carried a secret is not kept:
                // it may echo it, and a replay must not hand it to a plugin
                // without the secret.
                if carries_secret {
                    tape.skip();
                } else {
                    tape.record(
                        CallKind::Http,
                        &hash,
                        encode_http(head.status, &head.headers, &body),
                    );
                }
                Ok(http::Response::from_parts(head, full(body)))
            };
            // A cancel, a deadline or a timeout the guest chose says
            // nothing of the destination: the admission is dropped untold.
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(left, wait_and_send) => outcome,
                () = cancelled(cancel) => {
                    OUTBOUND.cut.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::HttpResponseTimeout);
                }
            };
            let response = match outcome {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    if destination_failed(&e) {
                        admission.record(false);
                    }
                    return Err(e);
                }
                Err(_) => {
                    OUTBOUND.cut.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::HttpResponseTimeout);
                }
            };
            admission.record(!response.status().is_server_error());
            Ok((response, done()))
        })
    }
}

/// The connection future handed back with a response read whole: there
/// is nothing left to drive.
fn done() -> Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> {
    Box::new(async { Ok(()) })
}

/// A body of bytes already read.
fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads `body` whole; past `limit` bytes, fails with `too_large()`. Any
/// other error of the body passes as it was.
async fn read_whole<B>(body: B, limit: usize, too_large: impl Fn() -> Error) -> Result<Bytes, Error>
where
    B: http_body::Body<Data = Bytes, Error = Error>,
{
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(match e.downcast::<Error>() {
            Ok(error) => *error,
            Err(_) => too_large(),
        }),
    }
}

/// Answers a request from the recordings of the run replayed: nothing is
/// sent. The body is read for the request's hash.
async fn replay_http(tape: Arc<Tape>, request: http::Request<WasiBody>) -> SendResult {
    let (parts, body) = request.into_parts();
    let body = read_whole(body, MAX_REQUEST_BYTES, || {
        Error::HttpRequestBodySize(Some(MAX_REQUEST_BYTES as u64))
    })
    .await?;
    let hash = http_request_hash(&parts.method, &parts.uri, &body);
    let recording = tape
        .replayed(CallKind::Http, &hash)
        .await
        .map_err(|why| Error::InternalError(Some(why)))?;
    // Recorded again, so a replay can itself be replayed.
    tape.record(CallKind::Http, &hash, recording.clone());
    let (head, body) = decode_http(recording).map_err(|why| Error::InternalError(Some(why)))?;
    let mut response = http::Response::builder().status(head.status);
    for (name, value) in &head.headers {
        response = response.header(name, value);
    }
    let response = response
        .body(full(body))
        .map_err(|e| Error::InternalError(Some(format!("a recorded response: {e}"))))?;
    Ok((response, done()))
}

impl OutboundHooks {
    /// Puts each granted secret's value in place of its placeholder in the
    /// request's headers, when the request goes to a host the secret may
    /// go to; anywhere else the placeholder goes as it is. Says whether a
    /// value went in.
    fn swap_secrets(&self, request: &mut http::Request<WasiBody>) -> bool {
        if self.secrets.is_empty() {
            return false;
        }
        let mut carries = false;
        let host = request.uri().host().unwrap_or_default().to_owned();
        let scheme = request.uri().scheme_str().unwrap_or("https").to_owned();
        for value in request.headers_mut().values_mut() {
            let Ok(text) = value.to_str() else { continue };
            let mut swapped = None::<String>;
            for (placeholder, secret) in &self.secrets {
                let current = swapped.as_deref().unwrap_or(text);
                if current.contains(placeholder.as_str()) && secret.may_go_to(&scheme, &host) {
                    swapped = Some(current.replace(placeholder.as_str(), secret.value.expose()));
                }
            }
            if let Some(swapped) = swapped
                && let Ok(mut new) = http::HeaderValue::from_str(&swapped)
            {
                new.set_sensitive(true);
                *value = new;
                carries = true;
            }
        }
        carries
    }
}

/// `host:port` of a request, its breaker's key: the host in lower case,
/// without its trailing dot.
fn destination_of(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    format!("{}:{port}", host.strip_suffix('.').unwrap_or(&host))
}

/// Whether `error` is the destination's doing (it refused, reset, could
/// not be found or spoke nonsense), rather than a limit of this request's.
fn destination_failed(error: &Error) -> bool {
    matches!(
        error,
        Error::Hyper(_)
            | Error::Connect(_)
            | Error::Tls(_)
            | Error::DnsError { .. }
            | Error::DestinationNotFound
            | Error::DestinationUnavailable
            | Error::DestinationIpUnroutable
            | Error::ConnectionRefused
            | Error::ConnectionTerminated
            | Error::TlsProtocolError
            | Error::TlsCertificateError
            | Error::TlsAlertReceived { .. }
            | Error::HttpResponseIncomplete
            | Error::HttpProtocolError
    )
}

/// Completes once `flag` is raised; never without one.
pub(crate) async fn cancelled(flag: Option<Arc<AtomicBool>>) {
    let Some(flag) = flag else {
        return std::future::pending().await;
    };
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

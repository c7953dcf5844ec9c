//! `warren:plugin/models`: chat completions from the endpoints the
//! operator configured, through the host. The guest names a model; the
//! host holds the endpoint, its key and its breaker, speaks the
//! OpenAI-compatible `POST {base_url}/chat/completions`, and counts the
//! tokens against the job's `max_tokens` and its run's budget, refusing a
//! call that could pass either before anything is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use wasmtime::component::{HasSelf, Linker};

use super::breaker::Breakers;
use super::outbound::{InFlight, cancelled};
use super::replay::{CallKind, Tape};
use crate::bindings::models::{self, Completion, CompletionRequest};
use crate::bindings::types::HostError;
use crate::plugin::grants::ModelEndpoint;

/// Answer tokens a call is taken to ask for when it names no `max-tokens`.
pub const DEFAULT_ANSWER_TOKENS: u64 = 1_024;
/// Largest answer read from an endpoint.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Tokens over all attempts, for `/metrics`.
pub static TOKENS: ModelTokens = ModelTokens {
    input: AtomicU64::new(0),
    output: AtomicU64::new(0),
    calls: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    refused: AtomicU64::new(0),
};

#[derive(Debug)]
pub struct ModelTokens {
    pub input: AtomicU64,
    pub output: AtomicU64,
    /// Calls answered.
    pub calls: AtomicU64,
    /// Calls sent that got no answer (an error, a timeout, a refusal).
    pub failed: AtomicU64,
    /// Calls refused before sending: a budget, or an open breaker.
    pub refused: AtomicU64,
}

/// What one attempt's model calls may use.
pub struct ModelsCtx {
    /// The models granted, by name.
    pub endpoints: Arc<HashMap<String, ModelEndpoint>>,
    /// The job's `max_tokens`.
    pub max_tokens: u64,
    /// Tokens the run may still use, shared by its attempts; no run budget
    /// without it.
    pub run_budget: Option<Arc<AtomicU64>>,
    pub breakers: Arc<Breakers>,
    /// Calls out at once, shared with the HTTP requests.
    pub in_flight: Arc<InFlight>,
    pub plugin: String,
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
    /// Records the answers, or gives the recorded ones in a replay.
    pub tape: Arc<Tape>,
}

/// Per-attempt state: the grant, and the tokens used so far.
pub struct ModelsState {
    ctx: ModelsCtx,
    tokens_in: u64,
    tokens_out: u64,
}

impl ModelsState {
    pub fn new(ctx: ModelsCtx) -> Self {
        Self {
            ctx,
            tokens_in: 0,
            tokens_out: 0,
        }
    }

    /// `(in, out)` tokens the attempt used.
    pub fn used(&self) -> (u64, u64) {
        (self.tokens_in, self.tokens_out)
    }

    /// Takes `estimate` tokens from the job's and the run's budgets, or
    /// says which would be passed.
    fn reserve(&mut self, estimate: u64) -> Result<Reservation, String> {
        let used = self.tokens_in + self.tokens_out;
        if used.saturating_add(estimate) > self.ctx.max_tokens {
            return Err(format!(
                "the call could use {estimate} tokens; the job has used {used} of its max_tokens {}",
                self.ctx.max_tokens
            ));
        }
        if let Some(budget) = &self.ctx.run_budget {
            let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(estimate)
            });
            if let Err(left) = taken {
                return Err(format!(
                    "the call could use {estimate} tokens; the run's budget has {left} left"
                ));
            }
        }
        Ok(Reservation {
            budget: self.ctx.run_budget.clone(),
            estimate,
            used: 0,
        })
    }

    async fn call(&mut self, request: CompletionRequest) -> Result<Completion, HostError> {
        let Some(endpoint) = self.ctx.endpoints.get(&request.model).cloned() else {
            return Err(HostError::AccessDenied(format!(
                "model {:?} is not granted to this plugin",
                request.model
            )));
        };
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let answer = request.max_tokens.map_or(DEFAULT_ANSWER_TOKENS, u64::from);
        // About four characters a token, rounded up: a bound to refuse on,
        // settled against the endpoint's count once it answers.
        let estimate = (prompt_chars as u64).div_ceil(4) + answer;
        let mut reservation = match self.reserve(estimate) {
            Ok(reservation) => reservation,
            Err(why) => {
                TOKENS.refused.fetch_add(1, Ordering::Relaxed);
                return Err(HostError::LimitExceeded(why));
            }
        };
        let hash = request_hash(&request);
        if self.ctx.tape.replaying() {
            return self.replay(&hash, &mut reservation).await;
        }
        let key = format!("model:{}", endpoint.name);
        let admission = match self.ctx.breakers.admit(&key) {
            Ok(admission) => admission,
            Err(open_for) => {
                TOKENS.refused.fetch_add(1, Ordering::Relaxed);
                return Err(HostError::Unavailable(format!(
                    "circuit open: model {} failed repeatedly; try again in {} ms",
                    endpoint.name,
                    open_for.as_millis()
                )));
            }
        };
        let left = self.ctx.deadline.saturating_duration_since(Instant::now());
        let timeout = endpoint.timeout.min(left);
        let in_flight = self.ctx.in_flight.clone();
        let plugin = self.ctx.plugin.clone();
        // The answer's length is always asked for: the endpoint's default
        // could pass what was reserved.
        let asked = u32::try_from(answer).unwrap_or(u32::MAX);
        let wait_and_send = async {
            let _places = in_flight.enter(&plugin).await;
            send(&endpoint, &request, asked).await
        };
        // A cancel (or the call's task dropped) leaves the breaker and the
        // reservation to their guards: nothing is charged, nothing told.
        let sent = tokio::select! {
            sent = tokio::time::timeout(timeout, wait_and_send) => sent,
            () = cancelled(self.ctx.cancel.clone()) => {
                return Err(HostError::Unavailable("the job was cancelled".into()));
            }
        };
        let redact = |text: String| match &endpoint.api_key {
            Some(key) => text.replace(key.expose(), "<secret>"),
            None => text,
        };
        let answer = match sent {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                // A refusal of this request (a 4xx but 429) says nothing
                // of the endpoint's health: the breaker counts the rest.
                admission.record(failure.endpoint_ok);
                TOKENS.failed.fetch_add(1, Ordering::Relaxed);
                let message = redact(format!("model {}: {}", endpoint.name, failure.message));
                return Err(if failure.endpoint_ok {
                    HostError::Invalid(message)
                } else {
                    HostError::Unavailable(message)
                });
            }
            Err(_) => {
                TOKENS.failed.fetch_add(1, Ordering::Relaxed);
                admission.record(false);
                return Err(HostError::Unavailable(format!(
                    "model {} did not answer within {} ms",
                    endpoint.name,
                    timeout.as_millis()
                )));
            }
        };
        admission.record(true);
        // An answer without `usage` is charged what was reserved.
        let (tokens_in, tokens_out) = answer
            .usage
            .unwrap_or(((prompt_chars as u64).div_ceil(4), u64::from(asked)));
        self.tokens_in += tokens_in;
        self.tokens_out += tokens_out;
        reservation.used = tokens_in + tokens_out;
        TOKENS.input.fetch_add(tokens_in, Ordering::Relaxed);
        TOKENS.output.fetch_add(tokens_out, Ordering::Relaxed);
        let Some(text) = answer.text else {
            // Charged (the endpoint counted it), but nothing to hand over.
            TOKENS.failed.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::Unavailable(format!(
                "model {} answered without choices[0].message.content",
                endpoint.name
            )));
        };
        TOKENS.calls.fetch_add(1, Ordering::Relaxed);
        let completion = Completion {
            text,
            finish_reason: answer.finish_reason,
            tokens_in: u32::try_from(tokens_in).unwrap_or(u32::MAX),
            tokens_out: u32::try_from(tokens_out).unwrap_or(u32::MAX),
        };
        self.ctx
            .tape
            .record(CallKind::Model, &hash, Recorded::of(&completion).to_bytes());
        Ok(completion)
    }

    /// The completion the replayed run recorded for this call: counted as
    /// it was (so limits and budgets act the same), but nothing is sent
    /// and `/metrics` counts nothing.
    async fn replay(
        &mut self,
        hash: &str,
        reservation: &mut Reservation,
    ) -> Result<Completion, HostError> {
        let recording = self
            .ctx
            .tape
            .replayed(CallKind::Model, hash)
            .await
            .map_err(HostError::Unavailable)?;
        let recorded: Recorded = serde_json::from_slice(&recording)
            .map_err(|e| HostError::Unavailable(format!("a recorded completion: {e}")))?;
        // Recorded again, so a replay can itself be replayed.
        self.ctx.tape.record(CallKind::Model, hash, recording);
        self.tokens_in += u64::from(recorded.tokens_in);
        self.tokens_out += u64::from(recorded.tokens_out);
        reservation.used = u64::from(recorded.tokens_in) + u64::from(recorded.tokens_out);
        Ok(Completion {
            text: recorded.text,
            finish_reason: recorded.finish_reason,
            tokens_in: recorded.tokens_in,
            tokens_out: recorded.tokens_out,
        })
    }
}

/// A completion as recorded for replay.
#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    text: String,
    finish_reason: String,
    tokens_in: u32,
    tokens_out: u32,
}

impl Recorded {
    fn of(completion: &Completion) -> Self {
        Self {
            text: completion.text.clone(),
            finish_reason: completion.finish_reason.clone(),
            tokens_in: completion.tokens_in,
            tokens_out: completion.tokens_out,
        }
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Hash of a call: what picks its answer (the model's name as the plugin
/// gives it, the messages, the answer's length and the temperature).
fn request_hash(request: &CompletionRequest) -> String {
    let picked = json!({
        "model": request.model,
        "messages": request.messages.iter()
            .map(|m| json!([m.role, m.content]))
            .collect::<Vec<_>>(),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    });
    crate::artifact_store::sha256_hex(picked.to_string().as_bytes())
}

/// Why a call got no completion.
struct Failure {
    message: String,
    /// The endpoint answered, refusing this request (a 4xx but 429).
    endpoint_ok: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            message,
            endpoint_ok: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// What an endpoint answered.
struct Answer {
    text: Option<String>,
    finish_reason: String,
    /// `(prompt, completion)` tokens, when the answer says.
    usage: Option<(u64, u64)>,
}

/// Tokens taken from a run's budget for a call: what it did not use goes
/// back when the reservation ends, whether the call answered, failed or
/// was dropped.
struct Reservation {
    budget: Option<Arc<AtomicU64>>,
    estimate: u64,
    used: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            let (estimate, used) = (self.estimate, self.used);
            let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_add(estimate).saturating_sub(used))
            });
        }
    }
}

/// Sends the request to the endpoint and reads its answer.
async fn send(
    endpoint: &ModelEndpoint,
    request: &CompletionRequest,
    max_tokens: u32,
) -> Result<Answer, Failure> {
    let mut body = json!({
        "model": endpoint.model,
        "messages": request.messages.iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect::<Vec<_>>(),
    });
    body["max_tokens"] = json!(max_tokens);
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    let url = format!(
        "{}/chat/completions",
        endpoint.base_url.trim_end_matches('/')
    );
    let mut builder = http::Request::post(&url).header("content-type", "application/json");
    if let Some(key) = &endpoint.api_key {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| "the key is not a valid header value".to_owned())?;
        value.set_sensitive(true);
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    let request = builder
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .map_err(|e| format!("a bad endpoint URL {url:?}: {e}"))?;
    let (response, io) = wasmtime_wasi_http::default_send_request(request, None)
        .await
        .map_err(|e| format!("{e:?}"))?;
    // The connection's task runs while the answer is read.
    let connection = tokio::spawn(async move {
        let _ = io.await;
    });
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    connection.abort();
    if !status.is_success() {
        return Err(Failure {
            message: format!(
                "the endpoint answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
            endpoint_ok: status.is_client_error() && status.as_u16() != 429,
        });
    }
    let answer: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let choice = &answer["choices"][0];
    let usage = &answer["usage"];
    Ok(Answer {
        text: choice["message"]["content"].as_str().map(str::to_owned),
        finish_reason: choice["finish_reason"].as_str().unwrap_or("").to_owned(),
        usage: usage["prompt_tokens"]
            .as_u64()
            .zip(usage["completion_tokens"].as_u64()),
    })
}

impl models::Host for ModelsState {
    async fn complete(
        &mut self,
        request: CompletionRequest,
    ) -> wasmtime::Result<Result<Completion, HostError>> {
        Ok(self.call(request).await)
    }
}

/// Adds `warren:plugin/models`; `get` finds this capability's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ModelsState,
) -> anyhow::Result<()> {
    models::add_to_linker::<T, HasSelf<ModelsState>>(linker, get)?;
    Ok(())
}

//! A test job that sends the HTTP requests its input lists, in order, and
//! reports each answer or error, to check what the host lets leave.
//!
//! Input: `{"requests": [{"method": M, "url": U, "headers": [[N, V]],
//! "body": B}]}` (method `GET`, no headers and no body when left out). In
//! a header value, `{env:VAR}` is the environment variable `VAR` (where a
//! granted secret's placeholder is).
//! Output: one entry a request, `{"status": S, "body": B}` or
//! `{"error": "denied" | "timeout" | "invalid: ..." | "failed: ..."}`.
//!
//! Model calls too: `{"completions": [{"model": M, "prompt": P,
//! "max_tokens": N}]}`, each answered `{"text", "tokens_in",
//! "tokens_out"}` or `{"error": "<host-error case>: ..."}`, after the
//! requests.

use serde::Deserialize;
use serde_json::{Value, json};
use warren_sdk::http::{self, HttpError};
use warren_sdk::{Context, Error, HostError, Job, models};

#[derive(Deserialize)]
struct Request {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Deserialize)]
struct Completion {
    model: String,
    prompt: String,
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    requests: Vec<Request>,
    #[serde(default)]
    completions: Vec<Completion>,
}

struct HttpClient;

impl Job for HttpClient {
    type Input = Input;
    type Output = Vec<Value>;

    fn run(_ctx: &Context, input: Input) -> Result<Vec<Value>, Error> {
        let completions = input.completions.iter().map(|c| {
            let messages = [models::Message::user(c.prompt.clone())];
            match models::complete(&c.model, &messages, c.max_tokens) {
                Ok(answer) => json!({
                    "text": answer.text,
                    "tokens_in": answer.tokens_in,
                    "tokens_out": answer.tokens_out,
                }),
                Err(e) => json!({"error": match e {
                    HostError::AccessDenied(m) => format!("access-denied: {m}"),
                    HostError::NotFound(m) => format!("not-found: {m}"),
                    HostError::Invalid(m) => format!("invalid: {m}"),
                    HostError::LimitExceeded(m) => format!("limit-exceeded: {m}"),
                    HostError::Unavailable(m) => format!("unavailable: {m}"),
                }}),
            }
        });
        Ok(input
            .requests
            .iter()
            .map(|r| {
                let values: Vec<String> = r.headers.iter().map(|(_, v)| expand(v)).collect();
                let headers: Vec<(&str, &str)> = r
                    .headers
                    .iter()
                    .zip(&values)
                    .map(|((n, _), v)| (n.as_str(), v.as_str()))
                    .collect();
                match http::request(
                    &r.method,
                    &r.url,
                    &headers,
                    r.body.as_deref().map(str::as_bytes),
                ) {
                    Ok(response) => json!({"status": response.status, "body": response.text()}),
                    Err(HttpError::Denied) => json!({"error": "denied"}),
                    Err(HttpError::Timeout) => json!({"error": "timeout"}),
                    Err(HttpError::Invalid(why)) => json!({"error": format!("invalid: {why}")}),
                    Err(HttpError::Failed(why)) => json!({"error": format!("failed: {why}")}),
                }
            })
            .collect::<Vec<_>>()
            .into_iter()
            .chain(completions)
            .collect())
    }
}

/// `value` with each `{env:VAR}` replaced by the variable's value.
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("{env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(&std::env::var(&after[..end]).unwrap_or_default());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

warren_sdk::export_job!(HttpClient);

//! A test job that sends the HTTP requests its input lists, in order, and
//! reports each answer or error, to check what the host lets leave.
//!
//! Input: `{"requests": [{"method": M, "url": U, "headers": [[N, V]],
//! "body": B}]}` (method `GET`, no headers and no body when left out). In
//! a header value, `{env:VAR}` is the environment variable `VAR` (where a
//! granted secret's placeholder is).
//! Output: one entry a request, `{"status": S, "body": B}` or
//! `{"error": "denied" | "timeout" | "invalid: ..." | "failed: ..."}`.

use serde::Deserialize;
use serde_json::{Value, json};
use warren_sdk::http::{self, HttpError};
use warren_sdk::{Context, Error, Job};

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
struct Input {
    requests: Vec<Request>,
}

struct HttpClient;

impl Job for HttpClient {
    type Input = Input;
    type Output = Vec<Value>;

    fn run(_ctx: &Context, input: Input) -> Result<Vec<Value>, Error> {
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

//! `warren pending`, `approve`, `reject` and `input`: people taking part in
//! runs on a running `warren serve`.

use serde_json::{Value, json};

use super::client::{ClientError, Server, check_id};

/// Jobs waiting for a decision or for input, longest waiting first (every
/// page).
pub async fn pending(server: &Server) -> Result<Vec<Value>, ClientError> {
    let mut jobs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/pending?limit=500&after={after}"),
            None => "/v1/pending?limit=500".to_owned(),
        };
        let page = server.get(&path).await?;
        jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(jobs),
        }
    }
}

/// One line per waiting job: run, job, state, for how long, and what it
/// holds or waits for.
pub fn print_pending(jobs: &[Value], now_ms: i64) {
    if jobs.is_empty() {
        println!("nothing waits for a decision or input");
        return;
    }
    for job in jobs {
        let since = job["since"].as_i64().unwrap_or(now_ms);
        let waited = (now_ms - since).max(0) / 1000;
        let what = match job["state"].as_str() {
            Some("waiting_approval") => job["output_summary"]
                .as_str()
                .map(|s| format!("output: {}", one_line(s)))
                .unwrap_or_default(),
            _ => {
                let docs: Vec<&str> = job["pending_docs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if docs.is_empty() {
                    "waits for input".to_owned()
                } else {
                    format!("waits for documents or input: {}", docs.join(", "))
                }
            }
        };
        println!(
            "{}  run {}  job {:<16} {:<16} {:>6}s  {what}",
            job["job_id"].as_str().unwrap_or("?"),
            job["run_id"].as_str().unwrap_or("?"),
            job["job"].as_str().unwrap_or("?"),
            job["state"].as_str().unwrap_or("?"),
            waited,
        );
    }
}

/// At most 80 characters of `text`, on one line.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// Approves or rejects a job's output; returns the server's answer.
pub async fn decide(
    server: &Server,
    job_id: &str,
    approve: bool,
    comment: Option<String>,
    data: Option<Value>,
    is_final: bool,
) -> Result<Value, ClientError> {
    check_id(job_id)?;
    let mut body = json!({ "decision": if approve { "approve" } else { "reject" } });
    if let Some(comment) = comment {
        body["comments"] = json!(comment);
    }
    if let Some(data) = data {
        body["data"] = data;
    }
    if is_final {
        body["final"] = json!(true);
    }
    let path = format!("/v1/jobs/{job_id}/decision");
    server
        .send(server.request(reqwest::Method::POST, &path).json(&body))
        .await
}

/// Gives a job waiting for input what it asked for.
pub async fn give_input(
    server: &Server,
    job_id: &str,
    data: Value,
    comment: Option<String>,
) -> Result<Value, ClientError> {
    check_id(job_id)?;
    let mut body = json!({ "data": data });
    if let Some(comment) = comment {
        body["comments"] = json!(comment);
    }
    let path = format!("/v1/jobs/{job_id}/input");
    server
        .send(server.request(reqwest::Method::POST, &path).json(&body))
        .await
}

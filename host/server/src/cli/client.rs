//! `warren submit`, `status`, `logs` and `watch`: a client of a running
//! `warren serve`, over its HTTP API.

use std::collections::HashMap;

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::exit;

/// Where the server is and who is asking.
#[derive(Debug, Clone)]
pub struct Server {
    /// e.g. `http://127.0.0.1:8080`
    pub url: String,
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {error}")]
    Unreachable { url: String, error: String },
    /// The server's JSON error.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Api { status, .. } if *status < 500 => exit::INVALID,
            Self::Usage(_) => exit::INVALID,
            _ => exit::LIMIT_OR_TRAP,
        }
    }
}

impl Server {
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            return Err(ClientError::Api {
                status,
                code: body["code"].as_str().unwrap_or("error").to_owned(),
                message: body["message"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            });
        }
        Ok(body)
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.url.clone(),
            error: error.to_string(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }
}

pub(crate) fn check_id(id: &str) -> Result<(), ClientError> {
    if uuid::Uuid::try_parse(id).is_ok() {
        Ok(())
    } else {
        Err(ClientError::Usage(format!("{id:?} is not a run or job id")))
    }
}

/// Starts a run of `template`; returns its id.
pub async fn submit(
    server: &Server,
    template: &str,
    input: Value,
    story: Option<String>,
) -> Result<String, ClientError> {
    let mut body = json!({ "template": template, "input": input });
    if let Some(story) = story {
        body["story_id"] = json!(story);
    }
    let created = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/runs")
                .json(&body),
        )
        .await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("unexpected answer: {created}")))
}

/// The run with every one of its jobs: the server answers a page of jobs
/// at a time; the pages are joined.
pub async fn status(server: &Server, run_id: &str) -> Result<Value, ClientError> {
    check_id(run_id)?;
    let mut run = server
        .get(&format!("/v1/runs/{run_id}?jobs_limit=500"))
        .await?;
    let mut next = run["jobs_next"].as_str().map(str::to_owned);
    while let Some(after) = next.take() {
        let page = server
            .get(&format!(
                "/v1/runs/{run_id}?jobs_limit=500&jobs_after={after}"
            ))
            .await?;
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if let Some(all) = run["jobs"].as_array_mut() {
            all.extend(jobs);
        }
        next = page["jobs_next"].as_str().map(str::to_owned);
    }
    run["jobs_next"] = Value::Null;
    Ok(run)
}

/// One line per job, like `warren pipeline run`.
pub fn print_status(run: &Value) {
    println!(
        "run {}: {}",
        run["id"].as_str().unwrap_or("?"),
        run["state"].as_str().unwrap_or("?")
    );
    for job in run["jobs"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} {:<16} attempts {}",
            job["name"].as_str().unwrap_or("?"),
            job["state"].as_str().unwrap_or("?"),
            job["attempts"]
        );
    }
}

/// Exit code for a run's state: 0 completed, 1 failed, 2 otherwise.
pub fn run_exit_code(run: &Value) -> i32 {
    match run["state"].as_str() {
        Some("completed") => exit::SUCCESS,
        Some("failed") => exit::JOB_ERROR,
        _ => exit::LIMIT_OR_TRAP,
    }
}

fn print_attempt_log(attempt: &Value) {
    println!(
        "--- attempt {} ({})",
        attempt["attempt"],
        attempt["state"].as_str().unwrap_or("?")
    );
    for line in attempt["log"]["lines"].as_array().into_iter().flatten() {
        println!(
            "[{:>5}] {}",
            line["level"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        );
    }
    if let Some(dropped) = attempt["log"]["dropped_bytes"].as_u64().filter(|&d| d > 0) {
        println!("({dropped} bytes over the log limit were dropped)");
    }
}

/// States a job stays in until someone acts (or for good).
const TERMINAL_JOB_STATES: [&str; 6] = [
    "completed",
    "failed",
    "skipped",
    "cancelled",
    "needs_input",
    "waiting_approval",
];

/// Prints each attempt's log; with `follow`, prints the lines of running
/// attempts (the latest written before, then the new ones as they are
/// written), until the job stops running. (A log is
/// stored when its attempt ends; the server lists stored ones a page at a
/// time, a long one by its URL, and streams running ones.)
pub async fn logs(server: &Server, job_id: &str, follow: bool) -> Result<(), ClientError> {
    check_id(job_id)?;
    // The number of the last attempt printed (stored, or live).
    let mut printed = 0u64;
    loop {
        let running = print_stored_logs(server, job_id, &mut printed).await?;
        if !follow {
            return Ok(());
        }
        let job = server.get(&format!("/v1/jobs/{job_id}")).await?;
        let ended = job["state"]
            .as_str()
            .is_some_and(|s| TERMINAL_JOB_STATES.contains(&s));
        if ended && !running && job["attempts_total"].as_u64() <= Some(printed) {
            return Ok(());
        }
        if let Some(live) = print_live_logs(server, job_id).await? {
            printed = printed.max(live);
        }
    }
}

/// Prints the stored logs of attempts after `printed`, up to one still
/// running; says whether one is.
async fn print_stored_logs(
    server: &Server,
    job_id: &str,
    printed: &mut u64,
) -> Result<bool, ClientError> {
    loop {
        let logs = server
            .get(&format!("/v1/jobs/{job_id}/logs?after={printed}"))
            .await?;
        let attempts = logs["attempts"].as_array().cloned().unwrap_or_default();
        for mut attempt in attempts {
            if attempt["state"] == "running" {
                return Ok(true);
            }
            if let Some(url) = attempt["log_url"].as_str() {
                attempt["log"] = server.get(url).await?;
            }
            print_attempt_log(&attempt);
            *printed = attempt["attempt"].as_u64().unwrap_or(*printed + 1);
        }
        if logs["next"].is_null() {
            return Ok(false);
        }
    }
}

/// Prints the job's lines as its attempts write them, until it stops
/// running; returns the last attempt it printed lines of.
async fn print_live_logs(server: &Server, job_id: &str) -> Result<Option<u64>, ClientError> {
    let response = server
        .request(
            reqwest::Method::GET,
            &format!("/v1/jobs/{job_id}/logs?follow=true"),
        )
        .send()
        .await
        .map_err(|e| server.unreachable(&e))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return Err(ClientError::Api {
            status: status.as_u16(),
            code: body["code"].as_str().unwrap_or("error").to_owned(),
            message: body["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    let mut events = response.bytes_stream().eventsource();
    let mut current = None;
    while let Some(message) = events.next().await {
        let message = message.map_err(|e| ClientError::Unreachable {
            url: server.url.clone(),
            error: e.to_string(),
        })?;
        let Ok(data) = serde_json::from_str::<Value>(&message.data) else {
            continue;
        };
        match message.event.as_str() {
            "line" => {
                let attempt = data["attempt"].as_u64();
                if attempt != current {
                    current = attempt;
                    println!("--- attempt {} (live)", data["attempt"]);
                }
                println!(
                    "[{:>5}] {}",
                    data["level"].as_str().unwrap_or(""),
                    data["message"].as_str().unwrap_or("")
                );
            }
            "lagged" => println!("({} lines were missed)", data["skipped"]),
            "end" => break,
            _ => {}
        }
    }
    Ok(current)
}

pub async fn watch(server: &Server, run_id: &str) -> Result<Value, ClientError> {
    let run = status(server, run_id).await?;
    let mut states: HashMap<String, (String, String)> = run["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            (
                j["id"].as_str().unwrap_or_default().to_owned(),
                (
                    j["name"].as_str().unwrap_or_default().to_owned(),
                    j["state"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    let response = server
        .request(reqwest::Method::GET, &format!("/v1/runs/{run_id}/events"))
        .send()
        .await
        .map_err(|e| server.unreachable(&e))?;
    // Hidden (and every line printed plainly) when stderr is not a terminal.
    let bar = ProgressBar::new(states.len() as u64).with_style(
        ProgressStyle::with_template("[{bar:20}] {pos}/{len} jobs done")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#."),
    );
    let mut events = response.bytes_stream().eventsource();
    while let Some(message) = events.next().await {
        let message = message.map_err(|e| ClientError::Unreachable {
            url: server.url.clone(),
            error: e.to_string(),
        })?;
        let Ok(event) = serde_json::from_str::<Value>(&message.data) else {
            continue;
        };
        // Spawned jobs appear during the run: ask for their names.
        if let Some(job_id) = event["job_id"].as_str()
            && !states.contains_key(job_id)
            && let Ok(job) = server.get(&format!("/v1/jobs/{job_id}")).await
        {
            let name = job["name"].as_str().unwrap_or(job_id).to_owned();
            states.insert(job_id.to_owned(), (name, String::new()));
        }
        show_event(&event, &mut states, &bar);
        // A run waiting for people goes nowhere until they act: stop
        // following (`warren pending` lists what waits). The stream replays
        // the history first, so an earlier wait is told apart from one now.
        if event["job_id"].is_null()
            && matches!(
                event["to_state"].as_str(),
                Some("needs_input" | "waiting_approval")
            )
            && let Ok(run) = server.get(&format!("/v1/runs/{run_id}?jobs_limit=1")).await
            && matches!(
                run["state"].as_str(),
                Some("needs_input" | "waiting_approval")
            )
        {
            break;
        }
    }
    bar.finish();
    status(server, run_id).await
}

fn show_event(event: &Value, states: &mut HashMap<String, (String, String)>, bar: &ProgressBar) {
    let to = event["to_state"].as_str().unwrap_or("?");
    let reason = event["reason"]
        .as_str()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let line = match event["job_id"].as_str() {
        Some(job_id) => {
            let entry = states
                .entry(job_id.to_owned())
                .or_insert_with(|| (job_id.to_owned(), String::new()));
            entry.1 = to.to_owned();
            format!("job {} {to}{reason}", entry.0)
        }
        None => format!("run {to}{reason}"),
    };
    let done = states
        .values()
        .filter(|(_, s)| TERMINAL_JOB_STATES.contains(&s.as_str()))
        .count();
    // State changes scroll above the bar, which is redrawn on stderr.
    bar.suspend(|| println!("{line}"));
    bar.set_length(states.len() as u64);
    bar.set_position(done as u64);
}

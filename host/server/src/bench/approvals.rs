//! `warren bench approvals`: what people waiting costs. A decision's way
//! to the work it lets go on (approve -> the gated job's dependent starts)
//! against a submission's way to its first job's start, the baseline; and
//! the price of 10,000 runs waiting at a gate: the server's memory, its
//! start after a restart against the same start with none waiting, and
//! other runs' submission-to-start beside them against the same without.
//!
//! Starts are read from the attempts' `started_at` (ms since the epoch,
//! when the start was recorded): each latency is that less the wall-clock
//! time the request was sent, to the millisecond, so a figure may be up to
//! 1 ms low (a negative difference counts as 0).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::api::{Load, request};
use super::serve_child::ServeChild;
use super::{Measurement, Samples, millis};

#[derive(Debug, Clone)]
pub struct ApprovalsBenchOptions {
    /// Folder holding `speckit` and `echo`.
    pub plugins_dir: PathBuf,
    /// Decisions timed (and as many submissions for the baseline).
    pub decisions: usize,
    /// Runs left waiting for the memory and restart figures.
    pub waiting: usize,
}

impl Default for ApprovalsBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            decisions: 300,
            waiting: 10_000,
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch, with a fraction.
fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// A client of the server under test for what the bench reads back.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {answer}");
        Ok(answer)
    }

    async fn submit(&self, template: &str) -> anyhow::Result<String> {
        let body = json!({"template": template, "input": {"feature": "bench"}});
        let run = self
            .send(reqwest::Method::POST, "/v1/runs", Some(body))
            .await?;
        run["id"].as_str().map(str::to_owned).context("a run id")
    }

    /// Approves the job waiting at its gate.
    async fn approve(&self, job: &str) -> anyhow::Result<Value> {
        let body = json!({"decision": "approve"});
        let path = format!("/v1/jobs/{job}/decision");
        self.send(reqwest::Method::POST, &path, Some(body)).await
    }

    /// Waits until the run is in `state`; returns it.
    async fn run_in(&self, run_id: &str, state: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let run = self
                .send(reqwest::Method::GET, &format!("/v1/runs/{run_id}"), None)
                .await?;
            if run["state"] == state {
                return Ok(run);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "run {run_id} never got {state}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// When the first attempt of job `name` of `run` started (ms).
    async fn started_at(&self, run: &Value, name: &str) -> anyhow::Result<f64> {
        let job = run["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
            .with_context(|| format!("job {name} in {run}"))?;
        let id = job["id"].as_str().context("job id")?;
        let detail = self
            .send(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
            .await?;
        detail["attempts"][0]["started_at"]
            .as_f64()
            .with_context(|| format!("an attempt of {name}: {detail}"))
    }

    /// The value of the `/metrics` line starting with `series`.
    async fn gauge(&self, series: &str) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("{series} in /metrics"))
    }

    /// Waits until the server answers `/ready`.
    async fn ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self.http.get(format!("{}/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server never got ready");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The server's resident memory in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// A server on `data` with `plugins`, ready; and how long that took.
async fn start(
    data: &std::path::Path,
    plugins: &std::path::Path,
) -> anyhow::Result<(ServeChild, Client, Duration)> {
    let started = Instant::now();
    let server = ServeChild::start(data, plugins).await?;
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.addr),
    };
    client.ready().await?;
    Ok((server, client, started.elapsed()))
}

pub async fn run(options: &ApprovalsBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    anyhow::ensure!(options.decisions > 0, "time at least one decision");
    let root = super::tempdir()?;
    let plugins = super::plugins_folder(&root, &options.plugins_dir, &["speckit", "echo"])?;
    let data = root.join("data");
    let (server, client, _) = start(&data, &plugins).await?;
    for (name, pipeline) in [
        ("plain", json!({"jobs": {"a": {"plugin": "echo"}}})),
        (
            "gated",
            json!({"jobs": {
                "specify": {"plugin": "speckit", "approval": {"required": true}},
                "after": {"plugin": "echo", "needs": ["specify"]},
            }}),
        ),
    ] {
        let body = json!({"name": name, "pipeline": pipeline});
        client
            .send(reqwest::Method::POST, "/v1/templates", Some(body))
            .await?;
    }
    // Warm every path once.
    for template in ["plain", "gated"] {
        let id = client.submit(template).await?;
        if template == "gated" {
            let run = client.run_in(&id, "waiting_approval").await?;
            client.approve(&job_id(&run, "specify")?).await?;
        }
        client.run_in(&id, "completed").await?;
    }

    // The baseline: a submission to its first job's start.
    let to_start = submission_to_start(&client, options.decisions).await?;

    // A decision to the dependent's start.
    let mut gated = Vec::with_capacity(options.decisions);
    for _ in 0..options.decisions {
        gated.push(client.submit("gated").await?);
    }
    let mut waiting_jobs = Vec::with_capacity(gated.len());
    for id in &gated {
        let run = client.run_in(id, "waiting_approval").await?;
        waiting_jobs.push(job_id(&run, "specify")?);
    }
    let mut decided = Vec::with_capacity(gated.len());
    let mut answers = Vec::with_capacity(gated.len());
    for job in &waiting_jobs {
        let (sent, clock) = (wall_ms(), Instant::now());
        client.approve(job).await?;
        answers.push(clock.elapsed());
        decided.push(sent);
    }
    let mut to_dependent = Vec::with_capacity(gated.len());
    for (id, sent) in gated.iter().zip(&decided) {
        let run = client.run_in(id, "completed").await?;
        to_dependent.push(ms(client.started_at(&run, "after").await? - sent));
    }
    let (to_dependent, answers) = (Samples::new(to_dependent), Samples::new(answers));

    // Restarting with nothing waiting, the baseline for the restart below
    // (and for the memory of the runs waiting).
    server.stop().await?;
    let (server, client, empty_restart) = start(&data, &plugins).await?;
    let before = rss_bytes(server.pid())?;

    // Many runs waiting at their gate.
    let load = Load {
        addr: server.addr,
        requests: vec![request(
            server.addr,
            "POST",
            "/v1/runs",
            Some(&json!({"template": "gated", "input": {"feature": "bench"}}).to_string()),
        )],
        expect: 201,
    };
    load.closed_loop(50, options.waiting).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let series = "warren_runs_waiting{state=\"waiting_approval\"}";
    while client.gauge(series).await? < options.waiting as f64 {
        anyhow::ensure!(Instant::now() < deadline, "the runs never all waited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the process that took them in holds (its allocator keeps what
    // the submissions used), then what a process holding them from the
    // start does.
    let submitted_rss = rss_bytes(server.pid())?;
    server.stop().await?;
    let (server, client, waiting_restart) = start(&data, &plugins).await?;
    let waiting_rss = rss_bytes(server.pid())?;
    let still = client.gauge(series).await?;
    anyhow::ensure!(
        still >= options.waiting as f64,
        "after the restart {still} runs wait, not {}",
        options.waiting
    );
    // Other runs while they wait.
    let beside_waiting = submission_to_start(&client, options.decisions).await?;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&root);

    let waiting = options.waiting;
    Ok(vec![
        Measurement::new(
            "decision_to_dependent_start_p50",
            millis(to_dependent.percentile(0.5)),
            "ms",
        )
        .against(millis(to_start.percentile(0.5))),
        Measurement::new(
            "decision_to_dependent_start_p99",
            millis(to_dependent.percentile(0.99)),
            "ms",
        )
        .against(millis(to_start.percentile(0.99))),
        Measurement::new("decision_answer_p50", millis(answers.percentile(0.5)), "ms"),
        Measurement::new(
            "decision_answer_p99",
            millis(answers.percentile(0.99)),
            "ms",
        ),
        Measurement::new(
            &format!("submission_to_start_p50_{waiting}_waiting"),
            millis(beside_waiting.percentile(0.5)),
            "ms",
        )
        .against(millis(to_start.percentile(0.5))),
        Measurement::new(
            &format!("submission_to_start_p99_{waiting}_waiting"),
            millis(beside_waiting.percentile(0.99)),
            "ms",
        )
        .against(millis(to_start.percentile(0.99))),
        Measurement::new(
            &format!("rss_mb_after_submitting_{waiting}_waiting"),
            mib(submitted_rss),
            "MiB",
        )
        .against(mib(before)),
        Measurement::new(
            &format!("rss_mb_restarted_with_{waiting}_waiting"),
            mib(waiting_rss),
            "MiB",
        )
        .against(mib(before)),
        Measurement::new(
            &format!("restart_s_{waiting}_waiting"),
            waiting_restart.as_secs_f64(),
            "s",
        )
        .against(empty_restart.as_secs_f64()),
    ])
}

/// `count` one-job runs, submitted one after the other: the time from
/// each submission to its job's start.
async fn submission_to_start(client: &Client, count: usize) -> anyhow::Result<Samples> {
    let mut submitted = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = wall_ms();
        submitted.push((client.submit("plain").await?, sent));
    }
    let mut latencies = Vec::with_capacity(count);
    for (id, sent) in &submitted {
        let run = client.run_in(id, "completed").await?;
        latencies.push(ms(client.started_at(&run, "a").await? - sent));
    }
    Ok(Samples::new(latencies))
}

/// The id of job `name` of `run`.
fn job_id(run: &Value, name: &str) -> anyhow::Result<String> {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .and_then(|j| j["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("job {name} in {run}"))
}

/// A difference of wall-clock milliseconds as a duration (never negative).
fn ms(difference: f64) -> Duration {
    Duration::from_secs_f64(difference.max(0.0) / 1e3)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

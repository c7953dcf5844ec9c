//! `warren bench api`: run submissions over HTTP from many concurrent
//! clients on loopback, against `GET /health` from the same clients (the
//! HTTP floor), server and load generator in one process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::{Measurement, Samples, millis};
use crate::cli::serve;
use crate::config::ServeConfig;

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// Folder holding `echo.wasm`, the job of each submitted run.
    pub plugins_dir: PathBuf,
    /// Clients sending at once, each on its own connection.
    pub clients: usize,
    pub requests: usize,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(crate::BUILTIN_PLUGINS_DIR),
            clients: 100,
            requests: 20_000,
        }
    }
}

pub async fn run(options: &ApiBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let data = super::tempdir()?;
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(
        options.plugins_dir.join("echo.wasm"),
        plugins.join("echo.wasm"),
    )
    .with_context(|| format!("copying echo.wasm from {}", options.plugins_dir.display()))?;
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data.join("data"),
        plugins_dir: Some(plugins),
        ..ServeConfig::default()
    };
    let server = serve::start(&config).await?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients)
        .build()?;
    let template = json!({"name": "noop", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}});
    let created = client
        .post(format!("{base}/v1/templates"))
        .json(&template)
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "creating the template: {}",
        created.status()
    );

    let health = Load {
        client: client.clone(),
        url: format!("{base}/health").parse()?,
        body: None,
        expect: 200,
    };
    health.drive(options.clients, options.clients * 10).await?;
    let (health_elapsed, health_samples) = health.drive(options.clients, options.requests).await?;

    let submit = Load {
        client,
        url: format!("{base}/v1/runs").parse()?,
        body: Some(json!({"template": "noop", "input": {}}).to_string()),
        expect: 201,
    };
    let (elapsed, samples) = submit.drive(options.clients, options.requests).await?;
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data);

    let per_second = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let health_rate = per_second(options.requests, health_elapsed);
    let clients = options.clients;
    Ok(vec![
        Measurement::new(
            &format!("health_requests_per_s_{clients}_clients"),
            health_rate,
            "1/s",
        ),
        Measurement::new(
            &format!("run_submissions_per_s_{clients}_clients"),
            per_second(options.requests, elapsed),
            "1/s",
        )
        .against(health_rate),
        Measurement::new(
            "run_submission_latency_p50",
            millis(samples.percentile(0.5)),
            "ms",
        )
        .against(millis(health_samples.percentile(0.5))),
        Measurement::new(
            "run_submission_latency_p99",
            millis(samples.percentile(0.99)),
            "ms",
        )
        .against(millis(health_samples.percentile(0.99))),
    ])
}

/// One kind of request, sent by many clients until a count is reached.
struct Load {
    client: reqwest::Client,
    /// Parsed once, so the load generator spends its time on requests.
    url: reqwest::Url,
    /// JSON to POST; `None` sends GET.
    body: Option<String>,
    expect: u16,
}

impl Load {
    /// Sends `requests` requests from `clients` concurrent tasks; returns
    /// the total time and each request's latency.
    async fn drive(&self, clients: usize, requests: usize) -> anyhow::Result<(Duration, Samples)> {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let next = next.clone();
            let client = self.client.clone();
            let url = self.url.clone();
            let body = self.body.clone();
            let expect = self.expect;
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let sent = Instant::now();
                    let request = match &body {
                        Some(body) => client
                            .post(url.clone())
                            .header("content-type", "application/json")
                            .body(body.clone()),
                        None => client.get(url.clone()),
                    };
                    let response = request.send().await?;
                    let status = response.status().as_u16();
                    response.bytes().await?;
                    latencies.push(sent.elapsed());
                    anyhow::ensure!(status == expect, "{url} answered {status}");
                }
                Ok(latencies)
            });
        }
        let mut all = Vec::with_capacity(requests);
        while let Some(joined) = tasks.join_next().await {
            all.extend(joined??);
        }
        Ok((started.elapsed(), Samples::new(all)))
    }
}

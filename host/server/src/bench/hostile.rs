//! `warren bench hostile`: how `GET /health` answers while hostile plugins
//! run at their default limits, against the same server idle, and how much
//! memory the server takes meanwhile. The hostile runs, `hostile` of them
//! at once, take turns among:
//! - a log flood (the `log_flood` guest, a million long lines);
//! - an `artifacts.put` loop of 32 MiB contents (two fit the default
//!   artifact budget, the rest are refused after being copied out);
//! - a spawner of 16 children with 1 MiB inputs each (`echo` children).
//!
//! Health is probed on one keep-alive connection every `interval`, each
//! latency counted from when its probe was due (no coordinated omission).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::serve_child::ServeChild;
use super::{Measurement, Samples, millis};

#[derive(Debug, Clone)]
pub struct HostileBenchOptions {
    /// Folder with `echo.wasm`.
    pub plugins_dir: PathBuf,
    /// Folder with the test guests `toolbox.wasm` and `log_flood.wasm`.
    pub guests_dir: PathBuf,
    /// Hostile runs at once.
    pub hostile: usize,
    /// How long health is probed, idle and under load.
    pub duration: Duration,
    /// Time between two probes.
    pub interval: Duration,
}

impl Default for HostileBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            guests_dir: PathBuf::from(env!("WARREN_TEST_GUESTS_DIR")),
            hostile: 8,
            duration: Duration::from_secs(10),
            interval: Duration::from_millis(5),
        }
    }
}

pub async fn run(options: &HostileBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let root = super::tempdir()?;
    let folder = root.join("plugins");
    std::fs::create_dir_all(&folder)?;
    for (from, name) in [
        (&options.plugins_dir, "echo"),
        (&options.guests_dir, "toolbox"),
        (&options.guests_dir, "log_flood"),
    ] {
        let source = from.join(format!("{name}.wasm"));
        std::fs::copy(&source, folder.join(format!("{name}.wasm")))
            .with_context(|| format!("copying {}", source.display()))?;
    }
    // Without manifests the plugins get the default policy's grants,
    // spawning included.

    let server = ServeChild::start(&root.join("data"), &folder).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    wait_until_loaded(&http, &base, &["echo", "toolbox", "log_flood"]).await?;

    let idle = probe(server.addr, options.duration, options.interval).await?;
    let mut runs = Vec::with_capacity(options.hostile);
    for i in 0..options.hostile {
        runs.push(submit(&http, &base, hostile_job(i)).await?);
    }
    let loaded = probe(server.addr, options.duration, options.interval).await?;
    let peak_rss = peak_rss_bytes(server.pid())?;
    let still_running = count_unfinished(&http, &base, &runs).await;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&root);

    let figure = |name: &str, hostile: Duration, idle: Duration| {
        Measurement::new(name, millis(hostile), "ms").against(millis(idle))
    };
    Ok(vec![
        figure(
            "health_p50_hostile_vs_idle",
            loaded.percentile(0.5),
            idle.percentile(0.5),
        ),
        figure(
            "health_p99_hostile_vs_idle",
            loaded.percentile(0.99),
            idle.percentile(0.99),
        ),
        figure(
            "health_max_hostile_vs_idle",
            loaded.percentile(1.0),
            idle.percentile(1.0),
        ),
        Measurement::new(
            "server_peak_rss",
            peak_rss as f64 / f64::from(1 << 20),
            "MiB",
        ),
        Measurement::new(
            "hostile_runs_still_running_at_the_end",
            still_running as f64,
            "runs",
        ),
    ])
}

/// The `i`th hostile pipeline.
fn hostile_job(i: usize) -> Value {
    let job = match i % 3 {
        0 => json!({"plugin": "log_flood", "input": {"lines": 1_000_000}}),
        1 => json!({"plugin": "toolbox", "input": [
            {"op": "put_loop", "name": "big.bin", "bytes": 32 << 20, "times": 200}
        ]}),
        _ => json!({"plugin": "toolbox", "input": [
            {"op": "spawn_big", "plugin": "echo", "count": 16, "bytes": 1 << 20}
        ]}),
    };
    json!({"pipeline": {"jobs": {"hostile": job}}})
}

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> anyhow::Result<String> {
    let answer = http
        .post(format!("{base}/v1/runs"))
        .json(&body)
        .send()
        .await?;
    let status = answer.status();
    let created: Value = answer.json().await?;
    anyhow::ensure!(status.is_success(), "submission refused: {created}");
    Ok(created["id"].as_str().unwrap_or_default().to_owned())
}

async fn wait_until_loaded(
    http: &reqwest::Client,
    base: &str,
    names: &[&str],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list: Value = http
            .get(format!("{base}/v1/plugins"))
            .send()
            .await?
            .json()
            .await?;
        let active = |name: &str| {
            list["plugins"].as_array().is_some_and(|plugins| {
                plugins
                    .iter()
                    .any(|p| p["name"] == name && p["status"] == "active")
            })
        };
        if names.iter().all(|name| active(name)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the plugins never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_unfinished(http: &reqwest::Client, base: &str, runs: &[String]) -> usize {
    let mut unfinished = 0;
    for id in runs {
        let Ok(answer) = http.get(format!("{base}/v1/runs/{id}")).send().await else {
            continue;
        };
        let run: Value = answer.json().await.unwrap_or_default();
        if matches!(run["state"].as_str(), Some("pending" | "running")) {
            unfinished += 1;
        }
    }
    unfinished
}

/// `GET /health` every `interval` for `duration` on one keep-alive
/// connection; each latency from when the probe was due.
async fn probe(
    addr: SocketAddr,
    duration: Duration,
    interval: Duration,
) -> anyhow::Result<Samples> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buffer = vec![0u8; 4096];
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut due = start;
    while due.duration_since(start) < duration {
        tokio::time::sleep_until(due.into()).await;
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream, &mut buffer).await?;
        samples.push(due.elapsed());
        due += interval;
        // A probe answered late does not queue the ones it held back.
        let now = Instant::now();
        while due + interval < now {
            samples.push(now.duration_since(due));
            due += interval;
        }
    }
    Ok(Samples::new(samples))
}

/// Reads one HTTP response with a `content-length` body.
async fn read_response(stream: &mut TcpStream, buffer: &mut [u8]) -> anyhow::Result<()> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buffer[filled..]).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(&buffer[..filled])? {
            anyhow::ensure!(
                response.code == Some(200),
                "health answered {:?}",
                response.code
            );
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            if filled >= head + length {
                return Ok(());
            }
        }
        anyhow::ensure!(filled < buffer.len(), "health answer too long");
    }
}

/// The most resident memory the process `pid` has used (`VmHWM`).
fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kib * 1024)
}

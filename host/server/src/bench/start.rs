//! `warren bench start`: how soon a `warren serve` child process answers
//! and runs, from its spawn, against a process that only prints its version
//! (the floor of starting this binary). Three starts:
//! - the first-party plugins on an empty data directory and an empty
//!   compile cache (cold), then again with the cache filled (warm);
//! - a folder of `plugins` uncached copies of `echo`: how soon a run naming
//!   one of them finishes, and how soon all are active, against the CPU
//!   time their compiles take spread over the machine's cores.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::serve_child::ServeChild;
use super::{Measurement, Samples, millis};
use warren_sandbox::runtime::{Runtime, RuntimeConfig};

#[derive(Debug, Clone)]
pub struct StartBenchOptions {
    /// Folder with the first-party plugins (`echo.wasm` among them).
    pub plugins_dir: PathBuf,
    /// Uncached plugins in the folder of the last start.
    pub plugins: usize,
}

impl Default for StartBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            plugins: 50,
        }
    }
}

/// How long a poll waits before it gives up on the server.
const PATIENCE: Duration = Duration::from_secs(120);

pub async fn run(options: &StartBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let root = super::tempdir()?;
    let floor = process_floor()?;
    let http = reqwest::Client::new();

    let cache = root.join("cache");
    let cold = start(
        &http,
        &root.join("cold"),
        &options.plugins_dir,
        &cache,
        "echo",
    )
    .await?;
    let warm = start(
        &http,
        &root.join("warm"),
        &options.plugins_dir,
        &cache,
        "echo",
    )
    .await?;

    let folder = root.join("many");
    std::fs::create_dir_all(&folder)?;
    let echo = std::fs::read(options.plugins_dir.join("echo.wasm"))
        .with_context(|| format!("reading echo.wasm from {}", options.plugins_dir.display()))?;
    for i in 0..options.plugins {
        let bytes = warren_sandbox::plugin::with_marker(&echo, i);
        std::fs::write(folder.join(format!("plugin-{i}.wasm")), bytes)?;
    }
    let named = format!("plugin-{}", options.plugins * 3 / 4);
    let many = start(
        &http,
        &root.join("many-data"),
        &folder,
        &root.join("many-cache"),
        &named,
    )
    .await?;
    let compile_cpu = compile_cpu_time(&root.join("compile"), &folder)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let _ = std::fs::remove_dir_all(&root);

    let n = options.plugins;
    Ok(vec![
        Measurement::new("process_floor_warren_version", millis(floor), "ms"),
        Measurement::new("spawn_to_health_cold_cache", millis(cold.health), "ms")
            .against(millis(floor)),
        Measurement::new(
            "spawn_to_first_run_done_cold_cache",
            millis(cold.run_done),
            "ms",
        )
        .against(millis(floor)),
        Measurement::new("spawn_to_health_warm_cache", millis(warm.health), "ms")
            .against(millis(floor)),
        Measurement::new(
            "spawn_to_first_run_done_warm_cache",
            millis(warm.run_done),
            "ms",
        )
        .against(millis(floor)),
        Measurement::new(
            &format!("spawn_to_health_{n}_uncached_plugins"),
            millis(many.health),
            "ms",
        )
        .against(millis(floor)),
        Measurement::new(
            &format!("spawn_to_run_of_one_of_{n}_uncached_done"),
            millis(many.run_done),
            "ms",
        )
        .against(millis(floor)),
        Measurement::new(
            &format!("spawn_to_all_{n}_uncached_active"),
            millis(many.all_active),
            "ms",
        )
        .against(millis(compile_cpu) / cores as f64),
        Measurement::new(
            &format!("compile_cpu_time_of_{n}_plugins"),
            millis(compile_cpu),
            "ms",
        ),
    ])
}

/// Times of one start, from the spawn.
struct Start {
    health: Duration,
    run_done: Duration,
    all_active: Duration,
}

async fn start(
    http: &reqwest::Client,
    data_dir: &Path,
    plugins_dir: &Path,
    cache_dir: &Path,
    plugin: &str,
) -> anyhow::Result<Start> {
    let listen = free_port()?;
    let base = format!("http://{listen}");
    let spawned = Instant::now();
    let server = ServeChild::spawn_on(data_dir, plugins_dir, listen, Some(cache_dir))?;
    let health = until(spawned, || async {
        let answer = http.get(format!("{base}/health")).send().await;
        answer.is_ok_and(|r| r.status().is_success())
    })
    .await?;
    // Submitted until accepted: a server may refuse a plugin it has not
    // loaded yet.
    let body = json!({"pipeline": {"jobs": {"a": {"plugin": plugin}}}});
    let run_id = loop {
        let answer = http
            .post(format!("{base}/v1/runs"))
            .json(&body)
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status().is_success()
        {
            let created: Value = answer.json().await?;
            break created["id"].as_str().unwrap_or_default().to_owned();
        }
        anyhow::ensure!(spawned.elapsed() < PATIENCE, "the run was never accepted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let run_done = until(spawned, || async {
        let Ok(answer) = http.get(format!("{base}/v1/runs/{run_id}")).send().await else {
            return false;
        };
        let run: Value = answer.json().await.unwrap_or_default();
        run["state"] == "completed"
    })
    .await?;
    let files = std::fs::read_dir(plugins_dir)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .count();
    // Every 10 ms: a list of 50 plugins asked for every millisecond took
    // the server and this client about 5% of the cores the compiles need.
    let all_active = until_every(POLL_SLOWLY, spawned, || async {
        let Ok(answer) = http.get(format!("{base}/v1/plugins")).send().await else {
            return false;
        };
        let list: Value = answer.json().await.unwrap_or_default();
        let active = list["plugins"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["status"] == "active").count());
        active >= files
    })
    .await?;
    server.stop().await?;
    Ok(Start {
        health,
        run_done,
        all_active,
    })
}

/// Polls `check` every millisecond until it holds; the time since `since`.
async fn until<F, Fut>(since: Instant, check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_every(Duration::from_millis(1), since, check).await
}

/// How often a costly question is asked (its answer is late by half of
/// this on average).
const POLL_SLOWLY: Duration = Duration::from_millis(10);

/// Polls `check` every `interval` until it holds; the time since `since`.
async fn until_every<F, Fut>(
    interval: Duration,
    since: Instant,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if check().await {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(since.elapsed() < PATIENCE, "the server did not get there");
        tokio::time::sleep(interval).await;
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?)
}

/// Median wall time of `warren --version`, spawn to exit.
fn process_floor() -> anyhow::Result<Duration> {
    let exe = std::env::current_exe()?;
    let mut samples = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let status = Command::new(&exe).arg("--version").output()?.status;
        anyhow::ensure!(status.success(), "warren --version failed");
        samples.push(started.elapsed());
    }
    Ok(Samples::new(samples).median())
}

/// CPU time (every thread of this process) spent compiling each plugin of
/// `folder` once, without a cache.
fn compile_cpu_time(data_dir: &Path, folder: &Path) -> anyhow::Result<Duration> {
    let mut config = RuntimeConfig::new(data_dir);
    config.cache_dir = None;
    let runtime = Runtime::new(config)?;
    let before = process_cpu_time()?;
    for entry in std::fs::read_dir(folder)? {
        runtime.load_file(&entry?.path())?;
    }
    Ok(process_cpu_time()? - before)
}

/// User and system CPU time of this process so far.
fn process_cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which ends with the last `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse()?)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 here).
    let total = ticks(11)? + ticks(12)?;
    let per_second = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
}

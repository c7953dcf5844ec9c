//! `warren bench ui`: how soon a run's page shows its graph, for runs of
//! 10, 100 and 1,000 jobs, read from the browser's own performance
//! timings (Debian's chromium, headless, driven over WebDriver by
//! chromedriver). For each size: first contentful paint, the frame after
//! the graph is drawn (both from navigation start) and the layout and
//! drawing alone, each the median of several loads; the larger runs
//! against the 10-job run as the baseline.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Measurement;
use super::serve_child::ServeChild;

#[derive(Debug, Clone)]
pub struct UiBenchOptions {
    /// Folder holding `echo`.
    pub plugins_dir: PathBuf,
    /// Sizes of the runs drawn, in jobs; the first is the baseline.
    pub sizes: Vec<usize>,
    /// Page loads measured for each size (after one that warms the cache).
    pub loads: usize,
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

impl Default for UiBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            sizes: vec![10, 100, 1_000],
            loads: 5,
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            chromium: PathBuf::from("/usr/bin/chromium"),
        }
    }
}

/// Jobs in layers of ten, each needing two of the layer before: a graph
/// with as many edges as a fan-out pipeline has.
fn layered_pipeline(jobs: usize) -> Value {
    let mut spec = serde_json::Map::new();
    for i in 0..jobs {
        let (layer, slot) = (i / 10, i % 10);
        let needs: Vec<String> = if layer == 0 {
            Vec::new()
        } else {
            let mut needs = vec![format!("j{}", (layer - 1) * 10 + slot)];
            let next = (layer - 1) * 10 + (slot + 1) % 10;
            if next < i && next != (layer - 1) * 10 + slot {
                needs.push(format!("j{next}"));
            }
            needs
        };
        spec.insert(format!("j{i}"), json!({"plugin": "echo", "needs": needs}));
    }
    json!({"pipeline": {"jobs": spec}, "input": {}})
}

pub async fn run(options: &UiBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    anyhow::ensure!(
        !options.sizes.is_empty() && options.loads > 0,
        "nothing to measure"
    );
    for tool in [&options.chromedriver, &options.chromium] {
        anyhow::ensure!(
            tool.exists(),
            "{} is missing: apt-get install chromium chromium-driver",
            tool.display()
        );
    }
    let data = super::tempdir()?;
    let plugins = super::plugins_folder(&data, &options.plugins_dir, &["echo"])?;
    let server = ServeChild::start(&data.join("data"), &plugins).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let mut runs = Vec::new();
    for &size in &options.sizes {
        let created: Value = http
            .post(format!("{base}/v1/runs"))
            .json(&layered_pipeline(size))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().context("run id")?.to_owned();
        wait_until_ended(&http, &base, &id).await?;
        runs.push((size, id));
    }

    let browser = WebDriver::start(options).await?;
    let mut measured = Vec::new();
    let mut baseline: Option<[f64; 3]> = None;
    for (size, id) in &runs {
        let url = format!("{base}/runs/{id}");
        // One load warms the cache: the figures are a returning visitor's.
        browser.page_timings(&url).await?;
        let mut samples = Vec::new();
        for _ in 0..options.loads {
            samples.push(browser.page_timings(&url).await?);
        }
        let figures = [0, 1, 2].map(|i| median(samples.iter().map(|s| s[i]).collect()));
        let names = [
            "first contentful paint",
            "graph painted",
            "graph layout and drawing",
        ];
        for (i, name) in names.iter().enumerate() {
            let m = Measurement::new(
                &format!("ui run page {size} jobs: {name}"),
                figures[i],
                "ms",
            );
            measured.push(match baseline {
                Some(base) => m.against(base[i]),
                None => m,
            });
        }
        baseline.get_or_insert(figures);
    }
    browser.close().await;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(measured)
}

async fn wait_until_ended(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let run: Value = http
            .get(format!("{base}/v1/runs/{id}?jobs_limit=1"))
            .send()
            .await?
            .json()
            .await?;
        match run["state"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => anyhow::bail!("run {id} ended {}", run["state"]),
            _ => {}
        }
        anyhow::ensure!(Instant::now() < deadline, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The few WebDriver commands the bench needs, over plain HTTP.
struct WebDriver {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

impl WebDriver {
    async fn start(options: &UiBenchOptions) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(&options.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, with the chromium it starts: see Drop.
            .process_group(0)
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::Client::new();
        let endpoint = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {
                "binary": options.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--window-size=1280,900"],
            },
        }}});
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut driver = driver;
        let session = loop {
            let answer = http
                .post(format!("{endpoint}/session"))
                .json(&capabilities)
                .send()
                .await;
            if let Ok(answer) = answer {
                let body: Value = answer.json().await?;
                match body["value"]["sessionId"].as_str() {
                    Some(id) => break format!("{endpoint}/session/{id}"),
                    None => {
                        stop(&mut driver);
                        anyhow::bail!("chromedriver gave no session: {body}");
                    }
                }
            }
            if Instant::now() > deadline {
                stop(&mut driver);
                anyhow::bail!("chromedriver did not answer on {endpoint}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Self {
            http,
            session,
            driver,
        })
    }

    async fn command(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let answer: Value = self
            .http
            .post(format!("{}/{path}", self.session))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(
            answer["value"]["error"].is_null(),
            "webdriver {path}: {}",
            answer["value"]
        );
        Ok(answer["value"].clone())
    }

    /// Loads `url` and returns, in ms: first contentful paint and the frame
    /// after the graph was drawn (from navigation start), and the layout
    /// and drawing alone.
    async fn page_timings(&self, url: &str) -> anyhow::Result<[f64; 3]> {
        self.command("url", json!({"url": url})).await?;
        let script = "const painted = performance.getEntriesByName('warren:graph-painted')[0];
            if (!painted) return null;
            const fcp = performance.getEntriesByName('first-contentful-paint')[0];
            const start = performance.getEntriesByName('warren:graph-start')[0];
            const drawn = performance.getEntriesByName('warren:graph-drawn')[0];
            return [fcp ? fcp.startTime : null, painted.startTime, drawn.startTime - start.startTime];";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self
                .command("execute/sync", json!({"script": script, "args": []}))
                .await?;
            if let Some(figures) = value.as_array() {
                let read = |i: usize| figures.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
                return Ok([read(0), read(1), read(2)]);
            }
            anyhow::ensure!(Instant::now() < deadline, "{url} never drew its graph");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the session (chromedriver closes chromium); Drop does the rest.
    async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}

/// Kills chromedriver's process group: the driver and its chromium.
fn stop(driver: &mut Child) {
    let group = rustix::process::Pid::from_child(driver);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = driver.wait();
}

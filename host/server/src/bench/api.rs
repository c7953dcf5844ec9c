//! `warren bench api`: run submissions over HTTP from many concurrent
//! clients on loopback to a `warren serve` child process, each against
//! `GET /health` sent the same way (the HTTP floor).
//!
//! Two kinds of load, both from `clients` keep-alive connections:
//! - **closed loop**: each client sends its next request as soon as the
//!   last one is answered. This finds the most the server does (throughput);
//!   its latencies are then only queueing (100 clients over the throughput).
//! - **open loop**: the clients together offer `rate` requests a second on
//!   a fixed schedule, and a latency counts from when its request was due,
//!   so a stall counts in full for every request it holds back (no
//!   coordinated omission). This is the latency of a server under that load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::serve_child::ServeChild;
use super::{Measurement, Samples, millis};

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// Folder holding `echo.wasm`, the job of each submitted run.
    pub plugins_dir: PathBuf,
    /// Clients sending at once, each on its own connection.
    pub clients: usize,
    /// Requests of each kind and loop.
    pub requests: usize,
    /// Requests a second all clients together offer in the open loop.
    pub rate: f64,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            clients: 100,
            requests: 20_000,
            rate: 3_000.0,
        }
    }
}

pub async fn run(options: &ApiBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    anyhow::ensure!(
        options.rate.is_finite() && options.rate > 0.0,
        "the rate must be a positive number of requests a second"
    );
    // The open loop's schedule must fit in a Duration (and in patience).
    let span = Duration::try_from_secs_f64(options.requests as f64 / options.rate);
    anyhow::ensure!(
        span.is_ok_and(|span| span <= Duration::from_secs(86_400)),
        "{} requests at {:?} a second would take more than a day",
        options.requests,
        options.rate
    );
    let data = super::tempdir()?;
    let plugins = super::plugins_folder(&data, &options.plugins_dir, &["echo"])?;
    let server = ServeChild::start(&data.join("data"), &plugins).await?;
    let addr = server.addr;
    let template = json!({"name": "noop", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}});
    let mut setup = Connection::open(addr).await?;
    let created = setup
        .exchange(&request(
            addr,
            "POST",
            "/v1/templates",
            Some(&template.to_string()),
        ))
        .await?;
    anyhow::ensure!(created == 201, "creating the template: {created}");

    let health = Load {
        addr,
        requests: vec![request(addr, "GET", "/health", None)],
        expect: 200,
    };
    let submit = Load {
        addr,
        requests: vec![request(
            addr,
            "POST",
            "/v1/runs",
            Some(&json!({"template": "noop", "input": {}}).to_string()),
        )],
        expect: 201,
    };
    let clients = options.clients;
    let requests = options.requests;
    // The open loop first, on a server with no backlog of runs to execute.
    health.closed_loop(clients, clients * 10).await?;
    let health_at_rate = health.open_loop(clients, options.rate, requests).await?;
    let submit_at_rate = submit.open_loop(clients, options.rate, requests).await?;
    let health_saturated = health.closed_loop(clients, requests).await?;
    let submit_saturated = submit.closed_loop(clients, requests).await?;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&data);

    let rate = options.rate;
    let latency = |name: &str, p: f64, value: &Outcome, baseline: &Outcome| {
        Measurement::new(name, millis(value.latencies.percentile(p)), "ms")
            .against(millis(baseline.latencies.percentile(p)))
    };
    Ok(vec![
        Measurement::new(
            &format!("submissions_per_s_offered_{rate}_per_s"),
            submit_at_rate.per_second(),
            "1/s",
        )
        .against(rate),
        latency(
            &format!("submission_latency_p50_at_{rate}_per_s"),
            0.5,
            &submit_at_rate,
            &health_at_rate,
        ),
        latency(
            &format!("submission_latency_p99_at_{rate}_per_s"),
            0.99,
            &submit_at_rate,
            &health_at_rate,
        ),
        latency(
            &format!("submission_latency_max_at_{rate}_per_s"),
            1.0,
            &submit_at_rate,
            &health_at_rate,
        ),
        Measurement::new(
            &format!("health_requests_per_s_{clients}_clients"),
            health_saturated.per_second(),
            "1/s",
        ),
        Measurement::new(
            &format!("run_submissions_per_s_{clients}_clients"),
            submit_saturated.per_second(),
            "1/s",
        )
        .against(health_saturated.per_second()),
        latency(
            "saturated_submission_latency_p50",
            0.5,
            &submit_saturated,
            &health_saturated,
        ),
        latency(
            "saturated_submission_latency_p99",
            0.99,
            &submit_saturated,
            &health_saturated,
        ),
    ])
}

/// The bytes of one HTTP/1.1 request, prepared once and sent many times.
pub(super) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> Arc<[u8]> {
    let text = match json_body {
        Some(body) => format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n"),
    };
    text.into_bytes().into()
}

/// One keep-alive HTTP/1.1 connection. It sends prepared bytes and reads an
/// answer with a `content-length` body (all Warren sends to these
/// requests), so the load generator spends little of the machine that the
/// server under test shares with it.
pub(super) struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(super) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads its whole answer; returns the status.
    pub(super) async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let (status, answer_len) = loop {
            self.read_more().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut answer = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head_len) = answer.parse(&self.buffer)? else {
                continue;
            };
            let status = answer.code.context("an answer without a status")?;
            let mut body_len = 0;
            for header in answer.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    body_len = std::str::from_utf8(header.value)?.trim().parse()?;
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    anyhow::bail!("the bench reads only answers with a content-length");
                }
            }
            break (status, head_len + body_len);
        };
        while self.buffer.len() < answer_len {
            self.read_more().await?;
        }
        Ok(status)
    }

    /// The start of the last answer read, for an error message.
    fn last_answer(&self) -> String {
        String::from_utf8_lossy(&self.buffer[..self.buffer.len().min(600)]).into_owned()
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 4096];
        let read = self.stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// One kind of request, sent by many clients: client `c` sends
/// `requests[c % requests.len()]`.
pub(super) struct Load {
    pub addr: SocketAddr,
    pub requests: Vec<Arc<[u8]>>,
    pub expect: u16,
}

/// What one load did: its span and each request's latency.
pub(super) struct Outcome {
    pub elapsed: Duration,
    pub latencies: Samples,
    pub requests: usize,
}

impl Outcome {
    pub(super) fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

impl Load {
    /// `requests` requests from `clients` connections, each client sending
    /// its next as soon as the last is answered.
    pub(super) async fn closed_loop(
        &self,
        clients: usize,
        requests: usize,
    ) -> anyhow::Result<Outcome> {
        let next = Arc::new(AtomicUsize::new(0));
        self.spread(clients, requests, move |_client, _started| {
            let next = next.clone();
            move || (next.fetch_add(1, Ordering::Relaxed) < requests).then(Instant::now)
        })
        .await
    }

    /// `requests` requests due at `rate` a second, evenly spaced; client `c`
    /// sends requests `c`, `c + clients`, ... A latency counts from when its
    /// request was due, even if the client was still waiting on the last.
    pub(super) async fn open_loop(
        &self,
        clients: usize,
        rate: f64,
        requests: usize,
    ) -> anyhow::Result<Outcome> {
        let spacing = Duration::from_secs_f64(1.0 / rate);
        self.spread(clients, requests, move |client, started| {
            let mut index = client;
            move || {
                (index < requests).then(|| {
                    let due = started + spacing.mul_f64(index as f64);
                    index += clients;
                    due
                })
            }
        })
        .await
    }

    /// Runs `clients` connections; each asks its `schedule` for when its
    /// next request is due (`None`: done), waits until then and sends it.
    async fn spread<S, N>(
        &self,
        clients: usize,
        requests: usize,
        schedule: S,
    ) -> anyhow::Result<Outcome>
    where
        S: Fn(usize, Instant) -> N,
        N: FnMut() -> Option<Instant> + Send + 'static,
    {
        let mut connections = Vec::with_capacity(clients);
        for _ in 0..clients {
            connections.push(Connection::open(self.addr).await?);
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (client, mut connection) in connections.into_iter().enumerate() {
            let mut next_due = schedule(client, started);
            let request = self.requests[client % self.requests.len()].clone();
            let expect = self.expect;
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while let Some(due) = next_due() {
                    // Only a wait that is due later: a timer rounds up to
                    // the next millisecond.
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let status = connection.exchange(&request).await?;
                    latencies.push(due.elapsed());
                    anyhow::ensure!(
                        status == expect,
                        "answered {status}, not {expect}: {}",
                        connection.last_answer()
                    );
                }
                Ok(latencies)
            });
        }
        let mut all = Vec::with_capacity(requests);
        while let Some(joined) = tasks.join_next().await {
            all.extend(joined??);
        }
        Ok(Outcome {
            elapsed: started.elapsed(),
            requests: all.len(),
            latencies: Samples::new(all),
        })
    }
}

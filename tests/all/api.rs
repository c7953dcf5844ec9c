//! The HTTP API end to end: a real server on a free local port, real
//! plugins, a real SQLite file, spoken to over HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use warren::config::{Role, ServeConfig, Token};
use warren::serve::{self, RunningServer};

use crate::support::{TEST_GUESTS_DIR, plugin_path};

pub(crate) const ADMIN: &str = "admin-token-0123456789";
pub(crate) const CLIENT: &str = "client-token-0123456789";

/// An `admin` token ([`ADMIN`]) and a `client` one ([`CLIENT`]).
pub(crate) fn admin_and_client() -> Vec<Token> {
    vec![
        Token {
            name: "ops".into(),
            token: ADMIN.into(),
            role: Role::Admin,
        },
        Token {
            name: "app".into(),
            token: CLIENT.into(),
            role: Role::Client,
        },
    ]
}

pub(crate) struct TestServer {
    _data: tempfile::TempDir,
    pub(crate) config: ServeConfig,
    pub(crate) server: Option<RunningServer>,
    pub(crate) base: String,
    http: reqwest::Client,
    pub(crate) token: Option<&'static str>,
}

/// A plugins folder with the first-party plugins and the test guests the
/// API tests use.
pub(crate) fn plugins_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).expect("plugins dir");
    for name in ["echo", "planner", "dev", "tester", "report", "wordcount"] {
        std::fs::copy(plugin_path(name), dir.join(format!("{name}.wasm"))).expect("copy plugin");
    }
    for name in ["toolbox", "spin_forever"] {
        let from = Path::new(TEST_GUESTS_DIR).join(format!("{name}.wasm"));
        std::fs::copy(from, dir.join(format!("{}.wasm", name.replace('_', "-"))))
            .expect("copy guest");
    }
    dir
}

impl TestServer {
    async fn start(tokens: Vec<Token>) -> Self {
        Self::start_with(tokens, |_| {}).await
    }

    /// A server whose settings `adjust` changes first.
    pub(crate) async fn start_with(
        tokens: Vec<Token>,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = ServeConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data.path().join("data"),
            plugins_dir: Some(plugins_dir(data.path())),
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")),
            max_body_bytes: 64 << 10,
            request_timeout: Duration::from_secs(2),
            tokens: tokens.clone(),
            ..ServeConfig::default()
        };
        adjust(&mut config);
        let mut server = serve::start(&config).await.expect("server starts");
        // Tests look at the folder as examined; the background is tested apart.
        server.ready().await;
        let base = format!("http://{}", server.addr);
        Self {
            _data: data,
            config,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            token: tokens.first().map(|_| ADMIN),
        }
    }

    pub(crate) async fn open() -> Self {
        Self::start(Vec::new()).await
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends `raw` as is (paths no client library would send) and returns
    /// the status and the JSON body.
    pub(crate) async fn raw(&self, raw: &str) -> (u16, Value) {
        let addr = self.server.as_ref().expect("running").addr;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(raw.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// The events of `GET /v1/jobs/{job_id}/logs?follow=true`, `(event,
    /// data)`, up to the `end` or the first line whose message is `until`;
    /// panics if they do not come within 10 s each.
    pub(crate) async fn followed_log(
        &self,
        job_id: &str,
        until: Option<&str>,
    ) -> Vec<(String, Value)> {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;

        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/jobs/{job_id}/logs?follow=true"),
            )
            .send()
            .await
            .expect("follow");
        assert_eq!(response.status(), 200);
        let mut events = response.bytes_stream().eventsource();
        let mut got = Vec::new();
        loop {
            let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("an event in time")
            else {
                break;
            };
            let event = event.expect("an event");
            let data: Value = serde_json::from_str(&event.data).expect("json");
            let last = event.event == "end" || until.is_some_and(|m| data["message"] == m);
            got.push((event.event.clone(), data));
            if last {
                return got;
            }
        }
        got
    }

    /// Polls the run until it ends (up to 30 s); panics if it does not.
    pub(crate) async fn ended(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, run) = self.get(&format!("/v1/runs/{run_id}")).await;
            if ["completed", "failed", "cancelled"].contains(&run["state"].as_str().unwrap_or("")) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {run_id} never ended: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn wait_for_state(&self, run_id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, run) = self.get(&format!("/v1/runs/{run_id}")).await;
            assert_eq!(status, 200, "{run}");
            if run["state"] == state || Instant::now() > deadline {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn assert_healthy(&self) {
        let (status, body) = self.get("/ready").await;
        assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    }

    pub(crate) async fn metrics(&self) -> String {
        let response = self
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .expect("metrics");
        assert_eq!(response.status(), 200);
        response.text().await.expect("text")
    }

    /// Waits (up to 5 s) until `/metrics` has `line`; returns the last text.
    pub(crate) async fn wait_for_metric(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let metrics = self.metrics().await;
            if metrics.lines().any(|l| l == line) || Instant::now() > deadline {
                return metrics;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and starts it again on the same data.
    pub(crate) async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        let mut server = serve::start(&self.config).await.expect("server restarts");
        server.ready().await;
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub(crate) async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

/// Reads an SSE stream to its end; returns each event's JSON data.
pub(crate) async fn follow_events(server: &TestServer, run_id: &str) -> Vec<Value> {
    let mut response = server
        .request(reqwest::Method::GET, &format!("/v1/runs/{run_id}/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "SSE content type"
    );
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream ends when the run does");
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("event JSON"))
        .collect()
}

#[tokio::test]
async fn the_demo_pipeline_runs_and_its_events_and_artifacts_can_be_followed() {
    let server = TestServer::open().await;
    let response = server
        .request(reqwest::Method::POST, "/v1/runs")
        .header("x-request-id", "demo-request-1")
        .json(&json!({"template": serve::DEMO_TEMPLATE, "input": {"goal": "a word counter"}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "demo-request-1");
    let created: Value = response.json().await.expect("JSON");
    let run_id = created["id"].as_str().expect("id").to_owned();

    let events = follow_events(&server, &run_id).await;
    let last = events.last().expect("events");
    assert_eq!(
        (&last["kind"], &last["to_state"]),
        (&json!("run"), &json!("completed"))
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );
    assert!(
        events.iter().any(|e| e["to_state"] == "pending"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("retry in"))),
        "the flaky dev job was retried: {events:?}"
    );

    let (status, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["state"], "completed");
    assert_eq!(run["template"], serve::DEMO_TEMPLATE);
    let alert = run["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == "alert")
        .expect("alert job");
    assert_eq!(alert["state"], "skipped");

    let (status, listed) = server.get(&format!("/v1/runs/{run_id}/artifacts")).await;
    assert_eq!(status, 200);
    let artifacts = listed["artifacts"].as_array().expect("artifacts");
    assert!(!artifacts.is_empty(), "{listed}");
    for artifact in artifacts {
        let digest = artifact["sha256"].as_str().expect("sha256");
        let response = server
            .request(reqwest::Method::GET, &format!("/v1/artifacts/{digest}"))
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), 200);
        let length: u64 = response.headers()["content-length"]
            .to_str()
            .expect("header")
            .parse()
            .expect("length");
        assert_eq!(Some(length), artifact["size"].as_u64());
        let bytes = response.bytes().await.expect("bytes");
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), digest);
    }

    let dev = run["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == "dev")
        .expect("dev job");
    let (status, job) = server
        .get(&format!("/v1/jobs/{}", dev["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(job["run_id"], run_id.as_str());
    let attempts = job["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 2, "{job}");
    assert!(
        attempts
            .iter()
            .all(|a| a["fuel_consumed"].as_i64() > Some(0))
    );

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("warren_runs_ended_total{state=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("warren_attempt_duration_seconds_count"));
    server.stop().await;
}

/// `GET path` as text: status, `content-type` and body.
async fn get_text(server: &TestServer, path: &str) -> (u16, String, String) {
    let response = server
        .request(reqwest::Method::GET, path)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_run_of_many_large_outputs_answers_in_bounded_pages_and_each_value_whole() {
    // The documented bounds (docs/api.md, "Response sizes").
    const MAX_RESPONSE: usize = 1 << 20;
    const MAX_INLINE: u64 = 64 << 10;
    // 1,000 outputs of 1 MiB (a plugin's default `max_output_bytes`):
    // the JSON `[{"ok":"…"}]` adds 11 bytes to the padding.
    const BIG_JOBS: usize = 1_000;
    const BIG: usize = (1 << 20) - 11;
    const SMALL: usize = 60 << 10;
    let server = TestServer::start_with(Vec::new(), |config| {
        config.max_body_bytes = 1 << 20;
        // 1 GiB of outputs: past the default per-run total of 256 MiB.
        config.max_run_data_bytes = 2 << 30;
    })
    .await;
    // The big outputs (1 GiB in all) are never inline; 30 of
    // 60 KiB are, and take more than one page's 1 MiB; `echo` gets the
    // run's input of 100 KiB and outputs it; `logger` logs 80 KiB.
    let mut jobs = serde_json::Map::new();
    for i in 0..BIG_JOBS {
        jobs.insert(
            format!("big{i:03}"),
            json!({"plugin": "toolbox", "input": [{"op": "pad", "bytes": BIG}]}),
        );
    }
    for i in 0..30 {
        jobs.insert(
            format!("small{i:02}"),
            json!({"plugin": "toolbox", "input": [{"op": "pad", "bytes": SMALL}]}),
        );
    }
    jobs.insert("echo".into(), json!({"plugin": "echo"}));
    let message = "z".repeat(80 << 10);
    jobs.insert(
        "logger".into(),
        json!({"plugin": "toolbox", "input": [{"op": "log", "message": message}]}),
    );
    let input = json!({"text": "y".repeat(100 << 10)});
    let started = Instant::now();
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": jobs}, "input": input}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{}", run["jobs"]);
    let total = BIG_JOBS + 32;
    eprintln!("{total} jobs ran in {:?}", started.elapsed());

    // The run view as a client first asks for it stays within 1 MiB.
    let (status, _, body) = get_text(&server, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert!(body.len() <= MAX_RESPONSE, "{} bytes", body.len());
    // Every page, at most 500 jobs asked for, stays within 1 MiB.
    let mut seen = std::collections::BTreeMap::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(job) => format!("/v1/runs/{run_id}?jobs_limit=500&jobs_after={job}"),
            None => format!("/v1/runs/{run_id}?jobs_limit=500"),
        };
        let (status, content_type, body) = get_text(&server, &path).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(
            body.len() <= MAX_RESPONSE,
            "page {pages}: {} bytes",
            body.len()
        );
        let page: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(page["jobs_total"], total);
        let listed = page["jobs"].as_array().expect("jobs");
        assert!(!listed.is_empty(), "a page holds a job");
        for job in listed {
            let name = job["name"].as_str().expect("name").to_owned();
            assert!(
                seen.insert(name.clone(), job.clone()).is_none(),
                "{name} twice"
            );
        }
        pages += 1;
        match page["jobs_next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), total, "every job is listed once");
    assert!(pages >= 2, "30 outputs of 60 KiB do not fit one page");

    let expected = |bytes: usize| format!("[{{\"ok\":\"{}\"}}]", "x".repeat(bytes));
    assert_eq!(expected(BIG).len(), 1 << 20, "outputs of 1 MiB");
    let big = &seen["big000"];
    for (name, job) in &seen {
        if name.starts_with("big") {
            assert_eq!(job["output"], Value::Null, "{name}");
            assert_eq!(job["output_bytes"], expected(BIG).len(), "{name}");
            let id = job["id"].as_str().expect("id");
            assert_eq!(job["output_url"], format!("/v1/jobs/{id}/output"));
        } else if name.starts_with("small") {
            assert_eq!(job["output"][0]["ok"].as_str().map(str::len), Some(SMALL));
            assert_eq!(job["output_bytes"], expected(SMALL).len(), "{name}");
            assert_eq!(job["output_url"], Value::Null, "{name}");
        }
        // Small inputs are inline with their size.
        if name != "echo" && name != "logger" {
            assert!(job["input"].is_array(), "{name}: {}", job["input"]);
            assert_eq!(job["input_url"], Value::Null);
        }
    }

    // The whole output, byte for byte, as JSON.
    let big_id = big["id"].as_str().expect("id");
    let (status, content_type, body) =
        get_text(&server, &format!("/v1/jobs/{big_id}/output")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert!(body == expected(BIG), "{} bytes: {:.40}", body.len(), body);

    // A job's description follows the same rule.
    let (status, detail) = server.get(&format!("/v1/jobs/{big_id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        (&detail["output"], &detail["output_bytes"]),
        (&Value::Null, &json!(expected(BIG).len()))
    );
    assert_eq!(detail["attempts_total"], 1);
    assert_eq!(detail["attempts"][0]["number"], 1);

    // Inputs over 64 KiB: the run's and the job that got it.
    let echo = &seen["echo"];
    let input_text = serde_json::to_string(&input).expect("json");
    for (view, url) in [
        (
            echo,
            format!("/v1/jobs/{}/input", echo["id"].as_str().expect("id")),
        ),
        (&run, format!("/v1/runs/{run_id}/input")),
    ] {
        assert_eq!(view["input"], Value::Null);
        assert_eq!(view["input_url"], url);
        let bytes = view["input_bytes"].as_u64().expect("input_bytes");
        assert!(bytes > MAX_INLINE, "{bytes}");
        let (status, content_type, body) = get_text(&server, &url).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert_eq!(body.len() as u64, bytes);
        assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), input);
        assert_eq!(body, input_text);
    }
    assert_eq!(echo["output"], Value::Null);
    let (_, _, echoed) = get_text(&server, echo["output_url"].as_str().expect("url")).await;
    assert_eq!(serde_json::from_str::<Value>(&echoed).expect("JSON"), input);

    // A log over 64 KiB: its size and its URL in the list, whole there.
    let logger = seen["logger"]["id"].as_str().expect("id");
    let (status, logs) = server.get(&format!("/v1/jobs/{logger}/logs")).await;
    assert_eq!(status, 200, "{logs}");
    let attempt = &logs["attempts"][0];
    assert_eq!(attempt["log"], Value::Null, "{attempt}");
    let log_url = format!("/v1/jobs/{logger}/attempts/1/log");
    assert_eq!(attempt["log_url"], log_url);
    let (status, content_type, body) = get_text(&server, &log_url).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(Some(body.len() as u64), attempt["log_bytes"].as_u64());
    let log: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        log["lines"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l["message"] == message.as_str())),
        "{body:.200}"
    );
    assert_eq!(logs["next"], Value::Null);

    // A cursor from another run, or none of a job, is refused.
    let (status, error) = server
        .get(&format!("/v1/runs/{run_id}?jobs_after={run_id}"))
        .await;
    assert_eq!((status, &error["code"]), (400, &json!("invalid_query")));
    let (status, error) = server
        .get(&format!("/v1/runs/{run_id}?jobs_limit=501"))
        .await;
    assert_eq!((status, &error["code"]), (400, &json!("invalid_query")));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_large_artifact_downloads_whole_in_many_chunks() {
    let server = TestServer::open().await;
    // 3 MiB: dozens of the 64 KiB chunks a download is streamed in.
    let (pattern, repeat) = ("0123456789abcdef", 3 << 16);
    let pipeline = json!({"pipeline": {"jobs": {"big": {"plugin": "toolbox",
        "input": [{"op": "write_out", "name": "big.txt", "data": pattern, "repeat": repeat}]}}}});
    let (status, created) = server.post("/v1/runs", &pipeline).await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    let (_, listed) = server.get(&format!("/v1/runs/{run_id}/artifacts")).await;
    let artifact = listed["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "big.txt"))
        .expect("big.txt recorded");
    let expected = pattern.repeat(repeat);
    let digest = hex::encode(sha2::Sha256::digest(expected.as_bytes()));
    assert_eq!(artifact["sha256"], digest.as_str());
    let response = server
        .request(reqwest::Method::GET, &format!("/v1/artifacts/{digest}"))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"].to_str().ok(),
        Some(expected.len().to_string().as_str())
    );
    let bytes = response.bytes().await.expect("bytes");
    assert_eq!(bytes.len(), expected.len());
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), digest);
    server.stop().await;
}

#[tokio::test]
async fn a_run_can_be_cancelled_and_a_failed_job_retried() {
    let server = TestServer::open().await;
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"spin": {"plugin": "spin-forever"}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    server.wait_for_state(&run_id, "running").await;
    let line = "warren_jobs{state=\"running\"} 1";
    let metrics = server.wait_for_metric(line).await;
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
    let asked = Instant::now();
    let (status, body) = server
        .post(&format!("/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, &body["cancelled"]), (200, &json!(true)), "{body}");
    let run = server.wait_for_state(&run_id, "cancelled").await;
    assert_eq!(run["state"], "cancelled");
    assert!(asked.elapsed() < Duration::from_secs(1));
    // The gauge follows even when nothing else happens afterwards.
    let line = "warren_jobs{state=\"running\"} 0";
    let metrics = server.wait_for_metric(line).await;
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
    let (status, body) = server
        .post(&format!("/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, &body["code"]), (409, &json!("run_ended")));

    // A job that fails on its first attempt; its dependent is skipped.
    let pipeline = json!({"jobs": {
        "flaky": {"plugin": "toolbox", "input": [{"op": "fail_until", "attempt": 2}]},
        "after": {"plugin": "echo", "needs": ["flaky"]}
    }});
    let (status, created) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(status, 201);
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "failed").await;
    let job_id = |run: &Value, name: &str| {
        run["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["name"] == name)
            .map(|j| {
                (
                    j["id"].as_str().unwrap_or_default().to_owned(),
                    j["state"].clone(),
                )
            })
            .expect("job")
    };
    let (flaky, state) = job_id(&run, "flaky");
    assert_eq!(state, "failed");
    assert_eq!(job_id(&run, "after").1, "skipped");

    let (status, body) = server
        .post(&format!("/v1/jobs/{flaky}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed");
    assert_eq!(job_id(&run, "after").1, "completed");
    let (_, job) = server.get(&format!("/v1/jobs/{flaky}")).await;
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(2));

    // Only failed jobs can be retried.
    let (status, body) = server
        .post(&format!("/v1/jobs/{flaky}/retry"), &json!({}))
        .await;
    assert_eq!((status, &body["code"]), (409, &json!("conflict")), "{body}");
    let (status, logs) = server.get(&format!("/v1/jobs/{flaky}/logs")).await;
    assert_eq!(status, 200);
    assert_eq!(logs["attempts"].as_array().map(Vec::len), Some(2));
    server.stop().await;
}

#[tokio::test]
async fn a_manual_retry_keeps_its_fresh_retry_budget_across_a_restart() {
    let mut server = TestServer::open().await;
    // Three attempts allowed; attempts 1 to 5 fail, the sixth succeeds.
    let pipeline = json!({"jobs": {"flaky": {"plugin": "toolbox",
        "input": [{"op": "fail_until", "attempt": 6}],
        "retry": {"max_attempts": 3, "initial_backoff_ms": 200, "max_backoff_ms": 200}}}});
    let (status, created) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "failed").await;
    let flaky = run["jobs"][0]["id"].as_str().expect("job id").to_owned();
    assert_eq!(run["jobs"][0]["attempts"], 3, "{run}");
    let (status, body) = server
        .post(&format!("/v1/jobs/{flaky}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The retry grants three more attempts. A restart now must not count
    // the first three against them, or the job would fail at attempt 4.
    server.restart().await;
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["jobs"][0]["attempts"], 6, "{run}");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_their_json_error_and_the_server_stays_healthy() {
    let server = TestServer::open().await;
    let host = "Host: localhost\r\nConnection: close\r\n";
    let long = "a".repeat(5000);
    let post = |content_type: &str, body: &str| {
        format!(
            "POST /v1/runs HTTP/1.1\r\n{host}content-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let json = "application/json";
    let cases: Vec<(String, u16, &str)> = vec![
        (post(json, "{\"templa"), 400, "invalid_json"),
        (post(json, "{\"template\": 42}"), 422, "invalid_body"),
        (
            post(json, "{\"template\": \"x\", \"surprise\": true}"),
            422,
            "invalid_body",
        ),
        (
            post(json, "{\"template\": \"x\", \"pipeline\": {\"jobs\": {}}}"),
            422,
            "invalid_body",
        ),
        (post("text/plain", "{}"), 415, "unsupported_media_type"),
        // A client that announces more than it sends is cut off.
        (
            format!(
                "POST /v1/runs HTTP/1.1\r\n{host}content-type: {json}\r\ncontent-length: 100\r\n\r\n{{"
            ),
            408,
            "timeout",
        ),
        (
            format!("GET /v1/runs/..%2Fx HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/runs/%2e%2e HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/runs/%00 HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/runs/{long} HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/jobs/not-a-job HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/artifacts/..%2f..%2fetc HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/templates/%2e%2e HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_id",
        ),
        (
            format!("GET /v1/runs/0191c0de-0000-7000-8000-000000000000 HTTP/1.1\r\n{host}\r\n"),
            404,
            "not_found",
        ),
        (
            format!("GET /v1/runs?limit=many HTTP/1.1\r\n{host}\r\n"),
            400,
            "invalid_query",
        ),
        (
            format!("GET /v1/nothing-here HTTP/1.1\r\n{host}\r\n"),
            404,
            "not_found",
        ),
        (
            format!("DELETE /v1/runs HTTP/1.1\r\n{host}\r\n"),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = server.raw(&request).await;
        let line = request
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect::<String>();
        assert_eq!(
            (got, &body["code"]),
            (status, &json!(code)),
            "{line}: {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A client that never finishes its headers is cut off too (slowloris),
    // after the request timeout (2 s here), without an answer.
    let addr = server.server.as_ref().expect("running").addr;
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: local")
        .await
        .expect("send");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "a connection with unfinished headers stays open"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "unfinished headers got an answer"
    );

    let big = json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}}, "input": {"pad": "x".repeat(100 << 10)}});
    let (status, body) = server.post("/v1/runs", &big).await;
    assert_eq!((status, &body["code"]), (413, &json!("payload_too_large")));

    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"a": {"plugin": "nope"}}}}),
        )
        .await;
    assert_eq!((status, &body["code"]), (422, &json!("invalid_pipeline")));
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("nope")),
        "{body}"
    );
    let (status, body) = server
        .post("/v1/runs", &json!({"template": "never-stored"}))
        .await;
    assert_eq!((status, &body["code"]), (404, &json!("unknown_template")));
    server.assert_healthy().await;
    server.stop().await;
}

/// Phrases of axum's rejections and of serde's type names: none reaches a
/// client. (An uploaded manifest's TOML error is shown as it is: it points
/// at the line of the manifest.)
const FRAMEWORK_WORDS: &[&str] = &[
    "Failed to",
    "failed to",
    "Cannot parse",
    "Invalid URL",
    "deserialize",
    "Expected request with",
    "Wrong number of path",
    "i64",
    "u64",
    "usize",
    "u32",
    "struct ",
    "variant",
];

fn assert_in_warrens_words(reply: &Value) {
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{reply}");
    for words in FRAMEWORK_WORDS {
        assert!(!message.contains(words), "{words:?} in {reply}");
    }
}

#[tokio::test]
async fn query_path_and_body_errors_have_warrens_codes_and_words() {
    let server = TestServer::open().await;
    let host = "Host: localhost\r\nConnection: close\r\n";
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\n{host}\r\n");
    let post = |target: &str, content_type: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\n{host}content-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let json = "application/json";
    // Each request, the answer's status and code, and words its message has.
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (get("/v1/runs?before=x"), 400, "invalid_query", "`before`"),
        (
            get("/v1/runs?before=0191C0DE-0000-7000-8000-000000000000"),
            400,
            "invalid_query",
            "not a run id",
        ),
        (
            get("/v1/runs?template=..%2Fx"),
            400,
            "invalid_query",
            "`template`",
        ),
        (
            get("/v1/runs?story_id=%00"),
            400,
            "invalid_query",
            "`story_id`",
        ),
        (
            get("/v1/runs?limit=many"),
            400,
            "invalid_query",
            "`limit` = \"many\"",
        ),
        (
            get("/v1/runs?limit=99999999999999999999"),
            400,
            "invalid_query",
            "not a whole number",
        ),
        (get("/v1/runs?limit=-1"), 400, "invalid_query", "`limit`"),
        (
            get("/v1/runs?limit=1&limit=2"),
            400,
            "invalid_query",
            "given twice",
        ),
        (
            get("/v1/runs?state=bogus"),
            400,
            "invalid_query",
            "unknown value `bogus`",
        ),
        (
            get("/v1/runs?zzz=1"),
            400,
            "invalid_query",
            "unknown query parameter `zzz`",
        ),
        (
            get("/v1/events?after=soon"),
            400,
            "invalid_query",
            "`after`",
        ),
        (
            get("/v1/stories/s/memory?limit=x"),
            400,
            "invalid_query",
            "`limit`",
        ),
        (
            post("/v1/plugins?name=..%2Fx", "application/wasm", "x"),
            400,
            "invalid_query",
            "`name`",
        ),
        (
            post("/v1/plugins", "application/wasm", "x"),
            400,
            "invalid_query",
            "`name`",
        ),
        (
            get("/v1/templates/build-and-check/versions/99999999999999999999"),
            400,
            "invalid_id",
            "not a template version",
        ),
        (
            get("/v1/templates/build-and-check/versions/9223372036854775808"),
            400,
            "invalid_id",
            "not a template version",
        ),
        (
            get("/v1/templates/build-and-check/versions/0"),
            400,
            "invalid_id",
            "not a template version",
        ),
        (
            get("/v1/templates/build-and-check/versions/-1"),
            400,
            "invalid_id",
            "not a template version",
        ),
        (
            get("/v1/templates/build-and-check/versions/9223372036854775807"),
            404,
            "not_found",
            "version 9223372036854775807",
        ),
        (get("/v1/runs/%ff%fe"), 400, "invalid_id", "UTF-8"),
        (
            post("/v1/runs", json, "{\"templa"),
            400,
            "invalid_json",
            "line 1, column 8",
        ),
        (
            post("/v1/runs", json, "{\"template\": \"x\"} trailing"),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            post("/v1/runs", json, "[]"),
            422,
            "invalid_body",
            "expected an object",
        ),
        (
            post(
                "/v1/runs",
                json,
                "{\"template\": \"x\", \"version\": 99999999999999999999}",
            ),
            422,
            "invalid_body",
            "`version`: expected a whole number from -9223372036854775808 to 9223372036854775807",
        ),
        (
            post(
                "/v1/runs",
                json,
                "{\"pipeline\": {\"jobs\": {\"a\": {\"plugin\": 7}}}}",
            ),
            422,
            "invalid_body",
            "`pipeline.jobs.a.plugin`: expected a string, got the number 7",
        ),
        (
            post("/v1/runs", json, "{\"surprise\": 1}"),
            422,
            "invalid_body",
            "unknown field `surprise`",
        ),
        (
            post("/v1/runs", "text/plain", "{}"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
    ];
    for (request, status, code, words) in cases {
        let (got, body) = server.raw(&request).await;
        let line = request.lines().next().unwrap_or_default().to_owned();
        assert_eq!(
            (got, &body["code"]),
            (status, &json!(code)),
            "{line}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{line}: {words:?} not in {body}");
        assert_in_warrens_words(&body);
    }
    // The largest version that can exist is looked up, not refused.
    let (status, found) = server.get("/v1/templates/build-and-check/versions/1").await;
    assert_eq!((status, &found["version"]), (200, &json!(1)), "{found}");
    server.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::start(admin_and_client()).await;
    let host = "Host: localhost\r\nConnection: close\r\n";
    let with = |authorization: &str| {
        format!("GET /v1/runs HTTP/1.1\r\n{host}authorization: {authorization}\r\n\r\n")
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body) = server.raw(&with(&format!("{scheme} {CLIENT}"))).await;
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    for refused in [
        format!("Basic {CLIENT}"),
        format!("bearer{CLIENT}"),
        "bearer wrong-token-0123456789".to_owned(),
        "bearer".to_owned(),
    ] {
        let (status, body) = server.raw(&with(&refused)).await;
        assert_eq!(
            (status, &body["code"]),
            (401, &json!("unauthorized")),
            "{refused}"
        );
    }
    // The role still comes from the token, whatever the scheme's case.
    let template = r#"{"name": "t", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}}"#;
    let post = |token: &str| {
        format!(
            "POST /v1/templates HTTP/1.1\r\n{host}authorization: BEARER {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{template}",
            template.len()
        )
    };
    let (status, body) = server.raw(&post(CLIENT)).await;
    assert_eq!((status, &body["code"]), (403, &json!("forbidden")));
    let (status, body) = server.raw(&post(ADMIN)).await;
    assert_eq!((status, &body["version"]), (201, &json!(1)), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn tokens_decide_who_may_do_what() {
    let tokens = admin_and_client();
    let mut server = TestServer::start(tokens).await;
    let template = json!({"name": "hello", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}});

    server.token = None;
    let (status, body) = server.get("/v1/runs").await;
    assert_eq!((status, &body["code"]), (401, &json!("unauthorized")));
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 200, "health needs no token");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let uptime = health["uptime_ms"].as_u64().expect("uptime_ms");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, later) = server.get("/health").await;
    assert!(
        later["uptime_ms"].as_u64().expect("uptime_ms") >= uptime + 20,
        "{health} then {later}"
    );

    server.token = Some("wrong-token-0123456789");
    let (status, body) = server.get("/v1/runs").await;
    assert_eq!((status, &body["code"]), (401, &json!("unauthorized")));

    server.token = Some(CLIENT);
    let (status, body) = server.post("/v1/templates", &template).await;
    assert_eq!((status, &body["code"]), (403, &json!("forbidden")));
    let (status, _) = server.get("/v1/templates").await;
    assert_eq!(status, 200, "clients read templates");

    server.token = Some(ADMIN);
    let (status, body) = server.post("/v1/templates", &template).await;
    assert_eq!((status, &body["version"]), (201, &json!(1)), "{body}");

    server.token = Some(CLIENT);
    let (status, created) = server.post("/v1/runs", &json!({"template": "hello"})).await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["template_version"], 1);

    let (status, page) = server.get("/v1/runs?template=hello&limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(page["runs"][0]["id"], run_id.as_str());

    // A second version: explicit versions and "latest" each get theirs.
    server.token = Some(ADMIN);
    let (status, body) = server.post("/v1/templates", &template).await;
    assert_eq!((status, &body["version"]), (201, &json!(2)), "{body}");
    server.token = Some(CLIENT);
    for (request, version) in [
        (json!({"template": "hello", "version": 1}), 1),
        (json!({"template": "hello"}), 2),
    ] {
        let (status, created) = server.post("/v1/runs", &request).await;
        assert_eq!(status, 201, "{created}");
        let run = server
            .wait_for_state(created["id"].as_str().expect("id"), "completed")
            .await;
        assert_eq!(run["template_version"], version, "{request}");
    }
    server.stop().await;
}

#[test]
fn warren_serve_starts_answers_and_stops_on_sigterm() {
    let data = tempfile::tempdir().expect("tempdir");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path().join("data"))
        .env_remove("WARREN_TOKENS")
        .output()
        .expect("warren serve");
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without any token"));

    let (mut child, addr) = spawn_serve(data.path(), &[]);
    let ready = std::process::Command::new("curl")
        .args(["-s", &format!("http://{addr}/ready")])
        .output();
    // curl is optional on a fresh machine; fall back to a raw request.
    let body = match ready {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => {
            use std::io::{Read as _, Write as _};
            let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
            stream
                .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("send");
            let mut text = String::new();
            stream.read_to_string(&mut text).expect("read");
            text
        }
    };
    assert!(body.contains("\"ready\""), "{body}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A path segment: well-formed ids, near misses, traversal, encodings,
    /// control bytes, very long ones.
    fn segment(&mut self) -> String {
        match self.below(8) {
            0 => warren_vocabulary::new_id(),
            1 => self
                .pick(&[
                    "..",
                    "%2e%2e",
                    "..%2f..%2fetc%2fpasswd",
                    "%00",
                    "%ff%fe",
                    "%",
                    "a%zz",
                    "-",
                    "build-and-check",
                    "echo",
                ])
                .to_owned(),
            2 => "9".repeat(self.below(5000)),
            3 => format!("{:064x}", self.next()).chars().take(64).collect(),
            4 => (0..self.below(40))
                .map(|_| format!("%{:02x}", self.next() as u8))
                .collect(),
            5 => warren_vocabulary::new_id().to_uppercase(),
            6 => self.next().to_string(),
            _ => (0..self.below(30))
                .map(|_| char::from(b'a' + (self.next() % 26) as u8))
                .collect(),
        }
    }

    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.next().is_multiple_of(3)),
            2 => json!(self.next() as i64),
            3 => json!(self.pick(&[
                "echo",
                "toolbox",
                "",
                "build-and-check",
                "xxx",
                "\u{0}",
                "🦀"
            ])),
            4 => json!(-1.5e300),
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => {
                let keys = [
                    "template",
                    "pipeline",
                    "jobs",
                    "plugin",
                    "needs",
                    "input",
                    "story_id",
                    "version",
                    "name",
                    "retry",
                    "limits",
                    "max_parallel",
                    "when",
                    "job",
                    "zzz",
                ];
                Value::Object(
                    (0..self.below(5))
                        .map(|_| (self.pick(&keys).to_owned(), self.json(depth + 1)))
                        .collect(),
                )
            }
        }
    }

    fn body(&mut self) -> String {
        let value = self.json(0).to_string();
        match self.below(4) {
            0 => {
                let mut cut = self.below(value.len() + 1);
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value[..cut].to_owned()
            }
            1 => (0..self.below(64))
                .map(|_| char::from(self.next() as u8 % 128))
                .collect(),
            _ => value,
        }
    }
}

#[tokio::test]
async fn generated_paths_and_bodies_never_get_a_server_error() {
    let server = TestServer::open().await;
    let endpoints = [
        ("POST", "/v1/runs"),
        ("GET", "/v1/runs"),
        ("GET", "/v1/runs/{}"),
        ("POST", "/v1/runs/{}/cancel"),
        ("GET", "/v1/runs/{}/artifacts"),
        ("GET", "/v1/jobs/{}"),
        ("GET", "/v1/jobs/{}/logs"),
        ("POST", "/v1/jobs/{}/retry"),
        ("GET", "/v1/artifacts/{}"),
        ("POST", "/v1/templates"),
        ("GET", "/v1/templates"),
        ("GET", "/v1/templates/{}"),
        ("GET", "/v1/templates/{}/versions/{}"),
        ("GET", "/v1/plugins"),
        ("POST", "/v1/plugins"),
        ("GET", "/v1/plugins/{}"),
        ("POST", "/v1/plugins/{}/versions/{}/approve"),
        ("GET", "/v1/stories/{}/memory"),
        ("GET", "/ready"),
        ("GET", "/{}"),
    ];
    let queries = [
        "",
        "?limit=0",
        "?limit=-1",
        "?state=bogus",
        "?before=x",
        "?after=%00",
        "?limit=99999999999999999999",
        "?zzz=1",
        "?start_after=%ff",
        "?name=fuzzed",
        "?name=..%2Fx",
    ];
    let mut generator = Gen(0x5eed_cafe_f00d_1234);
    for round in 0..1500 {
        let (method, template) = endpoints[generator.below(endpoints.len())];
        let mut path = template.to_owned();
        while path.contains("{}") {
            let segment = generator.segment();
            path = path.replacen("{}", &segment, 1);
        }
        path.push_str(generator.pick(&queries));
        let body = if method == "POST" {
            generator.body()
        } else {
            String::new()
        };
        let content_type = generator.pick(&[
            "application/json",
            "application/json",
            "text/plain",
            "application/wasm",
            "application/toml",
        ]);
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, reply) = server.raw(&request).await;
        let shown: String = request.chars().take(200).collect();
        assert!(
            status < 500,
            "round {round}: {status} for {shown:?}: {reply}"
        );
        if status >= 400 {
            assert!(
                reply["code"].is_string(),
                "round {round}: {shown:?} -> {reply}"
            );
            assert_in_warrens_words(&reply);
        }
    }
    server.assert_healthy().await;
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_description_covers_every_endpoint() {
    let server = TestServer::open().await;
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in [
        ("post", "/v1/runs"),
        ("get", "/v1/runs"),
        ("get", "/v1/runs/{id}"),
        ("post", "/v1/runs/{id}/cancel"),
        ("get", "/v1/runs/{id}/events"),
        ("get", "/v1/runs/{id}/artifacts"),
        ("get", "/v1/jobs/{id}"),
        ("get", "/v1/jobs/{id}/logs"),
        ("post", "/v1/jobs/{id}/retry"),
        ("post", "/v1/jobs/{id}/decision"),
        ("post", "/v1/jobs/{id}/input"),
        ("get", "/v1/pending"),
        ("get", "/v1/artifacts/{sha256}"),
        ("post", "/v1/templates"),
        ("get", "/v1/templates"),
        ("get", "/v1/templates/{name}"),
        ("get", "/v1/templates/{name}/versions/{version}"),
        ("get", "/v1/plugins"),
        ("post", "/v1/plugins"),
        ("get", "/v1/plugins/{name}"),
        ("post", "/v1/plugins/{name}/versions/{digest}/approve"),
        ("get", "/v1/stories/{story}/memory"),
        ("get", "/v1/stories/{story}/documents"),
        ("put", "/v1/stories/{story}/documents/{name}"),
        ("get", "/v1/stories/{story}/documents/{name}"),
        ("delete", "/v1/stories/{story}/documents/{name}"),
        ("get", "/v1/stories/{story}/documents/{name}/versions"),
        ("get", "/v1/events"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is described"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let states = schemas["RunState"]["enum"].as_array().expect("run states");
    assert_eq!(states.len(), 7, "{states:?}");
    assert!(
        schemas["JobState"]["enum"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "needs_input"))
    );
    assert!(schemas["ErrorBody"]["properties"]["code"].is_object());
    assert!(
        schemas["CreateRun"]["example"].is_object(),
        "{}",
        schemas["CreateRun"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The operations that create something take an Idempotency-Key and
    // say what a reused or busy key gets.
    for path in ["/v1/runs", "/v1/templates", "/v1/plugins"] {
        let operation = &doc["paths"][path]["post"];
        let takes_key = operation["parameters"].as_array().is_some_and(|params| {
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        assert!(takes_key, "{path}: {}", operation["parameters"]);
        let responses = &operation["responses"];
        let says = |status: &str, code: &str| {
            responses[status]["description"]
                .as_str()
                .is_some_and(|d| d.contains(code))
        };
        assert!(says("409", "idempotency_key_in_use"), "{path}: {responses}");
        assert!(says("422", "idempotency_key_reused"), "{path}: {responses}");
        assert!(says("400", "invalid_header"), "{path}: {responses}");
        assert!(
            responses["201"]["headers"]["idempotent-replayed"].is_object(),
            "{path}: {responses}"
        );
    }
    let version = &doc["paths"]["/v1/templates/{name}/versions/{version}"]["get"]["responses"];
    assert!(
        version["400"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("invalid_id"))
    );
    for (method, path) in [
        ("get", "/v1/runs/{id}/input"),
        ("get", "/v1/jobs/{id}/input"),
        ("get", "/v1/jobs/{id}/output"),
        ("get", "/v1/jobs/{id}/attempts/{number}/log"),
    ] {
        let answer = &doc["paths"][path][method]["responses"]["200"]["content"];
        assert!(answer["application/json"].is_object(), "{path}: {answer}");
    }
    assert_openapi_says_what_the_server_does(&doc);

    let page = server
        .request(reqwest::Method::GET, "/docs")
        .send()
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("/openapi.json"));
    server.stop().await;
}

/// The points schemathesis found the description wrong on, held: what an
/// upload takes, what an event stream is, the form of ids, and that every
/// operation says every answer it may give, with the error body.
fn assert_openapi_says_what_the_server_does(doc: &Value) {
    let schemas = &doc["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                schemas[name].clone()
            }
            None => schema.clone(),
        }
    };

    // POST /v1/plugins?name=NAME with the file's bytes as the body.
    let upload = &doc["paths"]["/v1/plugins"]["post"];
    let parameters = upload["parameters"].as_array().expect("parameters");
    let name = parameters
        .iter()
        .find(|p| p["name"] == "name")
        .expect("a `name` parameter");
    assert_eq!(name["in"], "query", "{name}");
    assert_eq!(name["required"], true, "{name}");
    assert_eq!(
        name["schema"]["pattern"], "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        "{name}"
    );
    assert!(
        parameters.iter().all(|p| p["in"] != "path"),
        "{parameters:?}"
    );
    let body = &upload["requestBody"]["content"];
    let wasm = resolve(&body["application/wasm"]["schema"]);
    assert_eq!(
        (&wasm["type"], &wasm["format"]),
        (&json!("string"), &json!("binary")),
        "{body}"
    );
    assert_ne!(wasm["type"], "array", "bytes, not an array of integers");
    assert_eq!(
        resolve(&body["application/toml"]["schema"])["type"],
        "string",
        "{body}"
    );

    // Event streams are text/event-stream, each event described apart.
    for path in ["/v1/runs/{id}/events", "/v1/events"] {
        let content = doc["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .expect("content");
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["text/event-stream"],
            "{path}"
        );
        let event = resolve(&content["text/event-stream"]["schema"]);
        assert_eq!(event["type"], "object", "{path}: {event}");
        let data = &event["properties"]["data"];
        assert_eq!(data["type"], "string", "{data}");
        assert_eq!(data["contentMediaType"], "application/json", "{data}");
        assert_eq!(
            data["contentSchema"]["$ref"],
            "#/components/schemas/EventRow"
        );
        assert_eq!(
            event["properties"]["event"]["enum"],
            json!(["run", "job", "cancel"])
        );
    }
    assert!(schemas["EventRow"]["properties"]["to_state"].is_object());

    // Ids and names have their patterns, wherever a client gives one.
    let uuid = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
    let parameter = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{method} {path} takes {name}"))
    };
    for (path, method) in [
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/cancel", "post"),
        ("/v1/runs/{id}/events", "get"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/retry", "post"),
    ] {
        let id = parameter(path, method, "id");
        assert_eq!(
            (&id["in"], &id["schema"]["pattern"]),
            (&json!("path"), &json!(uuid)),
            "{path}"
        );
    }
    assert_eq!(
        parameter("/v1/runs", "get", "before")["schema"]["pattern"],
        uuid
    );
    assert_eq!(
        parameter("/v1/runs/{id}", "get", "jobs_after")["schema"]["pattern"],
        uuid
    );
    assert_eq!(
        parameter("/v1/templates/{name}", "get", "name")["schema"]["pattern"],
        "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    );
    assert_eq!(
        parameter("/v1/artifacts/{sha256}", "get", "sha256")["schema"]["pattern"],
        "^[0-9a-f]{64}$"
    );
    assert_eq!(
        parameter("/v1/stories/{story}/memory", "get", "story")["schema"]["pattern"],
        "^[A-Za-z0-9._:-]{1,128}$"
    );
    let limit = parameter("/v1/runs", "get", "limit");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );

    // A run is created from a template or a pipeline, never both or none.
    let create = resolve(
        &doc["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    let shapes = create["oneOf"].as_array().expect("oneOf");
    let required: Vec<Value> = shapes
        .iter()
        .map(|s| resolve(s)["required"].clone())
        .collect();
    assert!(required.contains(&json!(["template"])), "{required:?}");
    assert!(required.contains(&json!(["pipeline"])), "{required:?}");

    // Every operation says what it may answer: 401 wherever a token is
    // needed (not on /health and /ready), 500 everywhere, each error
    // with ErrorBody; operation ids are unique.
    let mut ids = std::collections::HashSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            operations += 1;
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let responses = operation["responses"].as_object().expect("responses");
            let public = path == "/health" || path == "/ready";
            assert_eq!(
                responses.contains_key("401"),
                !public,
                "{method} {path}: {:?}",
                responses.keys().collect::<Vec<_>>()
            );
            assert!(responses.contains_key("500"), "{method} {path}");
            if path.contains('{') {
                assert!(responses.contains_key("400"), "{method} {path}");
            }
            for (status, response) in responses {
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 27, "{operations} operations");
    for (path, status) in [
        ("/v1/runs", "413"),
        ("/v1/runs", "415"),
        ("/v1/templates", "403"),
        ("/v1/plugins", "413"),
        ("/v1/plugins", "415"),
    ] {
        assert!(
            doc["paths"][path]["post"]["responses"][status].is_object(),
            "POST {path} {status}"
        );
    }
    // A pipeline may carry an input schema; a run's input may not match it.
    assert!(schemas["PipelineSpec"]["properties"]["input_schema"].is_object());
    assert!(
        doc["paths"]["/v1/runs"]["post"]["responses"]["422"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("invalid_input"))
    );
    // A document is sent and served as itself: text or JSON.
    let document = &doc["paths"]["/v1/stories/{story}/documents/{name}"];
    for (method, status) in [("put", "requestBody"), ("get", "200")] {
        let content = match status {
            "requestBody" => &document[method]["requestBody"]["content"],
            _ => &document[method]["responses"][status]["content"],
        };
        let types: std::collections::BTreeSet<&str> = content
            .as_object()
            .expect("content")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(types, ["application/json", "text/plain"].into(), "{method}");
    }
    for status in ["201", "400", "413", "415"] {
        assert!(
            document["put"]["responses"][status].is_object(),
            "PUT {status}"
        );
    }
    assert_eq!(
        parameter("/v1/stories/{story}/documents/{name}", "put", "name")["schema"]["pattern"],
        warren::api::params::DOCUMENT_NAME_PATTERN
    );
    // Links lead from a new run to it.
    let link = &doc["paths"]["/v1/runs"]["post"]["responses"]["201"]["links"]["GetRun"];
    assert_eq!(
        (&link["operationId"], &link["parameters"]["id"]),
        (&json!("get_run"), &json!("$response.body#/id"))
    );
}

/// Starts `warren serve` on a free port with its data under `root`; returns
/// the process and the address from its first line.
pub(crate) fn spawn_serve(root: &Path, extra: &[&str]) -> (std::process::Child, String) {
    spawn_serve_with_env(root, extra, &[])
}

/// [`spawn_serve`], with environment variables set for the process.
pub(crate) fn spawn_serve_with_env(
    root: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.join("data"))
        .args(extra)
        .env(
            "WARREN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"),
        )
        .envs(env.iter().copied())
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("warren serve");
    let first = std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .next()
        .expect("a line")
        .expect("text");
    let addr = first
        .strip_prefix("warren listening on http://")
        .expect("banner")
        .to_owned();
    (child, addr)
}

/// One blocking HTTP/1.1 request, for tests that drive a `warren` process.
fn blocking_http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn sigterm_lets_a_running_attempt_finish_before_the_server_exits() {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = plugins_dir(data.path());
    let plugins = plugins.to_string_lossy().into_owned();
    let (mut child, addr) = spawn_serve(data.path(), &["--plugins-dir", &plugins]);
    let pipeline = json!({"pipeline": {"jobs": {"slow": {"plugin": "toolbox", "input": [{"op": "sleep_ms", "ms": 700}]}}}});
    let (status, created) = blocking_http(&addr, "POST", "/v1/runs", &pipeline.to_string());
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, run) = blocking_http(&addr, "GET", &format!("/v1/runs/{run_id}"), "");
        if run["jobs"][0]["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {run}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_eq!(child.wait().expect("exit").code(), Some(0));

    let db = rusqlite::Connection::open(data.path().join("data").join("warren.db")).expect("db");
    let (job, attempt): (String, String) = db
        .query_row(
            "SELECT j.state, a.state FROM jobs j JOIN attempts a ON a.job_id = j.id WHERE j.run_id = ?1",
            [&run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the job and its attempt");
    assert_eq!((job.as_str(), attempt.as_str()), ("completed", "succeeded"));
}

/// `warren submit --watch`, as a client would run it against a server:
/// every state change of the run arrives over SSE, and the command ends
/// with the run's exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_watch_follows_the_run_to_its_end_over_sse() {
    let server = TestServer::open().await;
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args([
                "submit",
                "build-and-check",
                "--input",
                r#"{"goal":"a word counter"}"#,
                "--watch",
                "--server",
                &base,
            ])
            .output()
            .expect("run warren")
    })
    .await
    .expect("client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The events, in order, then the summary.
    let submitted = stdout.find("run pending (submitted)").expect("submitted");
    let report = stdout.find("job report completed").expect("report ran");
    let ended = stdout
        .find("run completed (every job ended")
        .expect("run ended");
    assert!(submitted < report && report < ended, "{stdout}");
    assert!(stdout.contains("job alert skipped"), "{stdout}");
    assert!(
        stdout.contains(": completed\n"),
        "the final status is printed: {stdout}"
    );
}

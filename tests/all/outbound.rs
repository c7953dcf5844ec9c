//! Outbound HTTP from plugins, against real servers on 127.0.0.1: a
//! request leaves only to what the plugin's manifest asks and the
//! operator's policy allows, is cut at its job's deadline and by a cancel,
//! and a version asking for a new destination waits for approval.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warren::catalogue::grants::{ModelEndpoint, OutboundRule, SecretGrant, SecretValue};

use crate::api::{ADMIN, TestServer, admin_and_client};
use crate::plugin_folder::{drop_plugin, folder, sha256_of, version, wait_for_plugin};
use crate::support::{guest_path, plugin_path};

/// A server on 127.0.0.1 counting the requests it gets (and keeping their
/// `authorization` headers): `/hello` answers, `/never` never does, and
/// `/flaky` answers 500 to its first three requests, then 200.
struct Loopback {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    authorizations: Arc<std::sync::Mutex<Vec<String>>>,
    serving: tokio::task::JoinHandle<()>,
}

impl Loopback {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let authorizations = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = authorizations.clone();
        let flaky = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/hello", axum::routing::any(|| async { "hello" }))
            .route(
                "/refusing/v1/chat/completions",
                axum::routing::post(|| async {
                    (axum::http::StatusCode::UNAUTHORIZED, "bad key")
                }),
            )
            // An OpenAI-compatible stub: a fixed answer, with usage.
            .route(
                "/v1/chat/completions",
                axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
                    let asked = body["messages"]
                        .as_array()
                        .and_then(|m| m.last())
                        .and_then(|m| m["content"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    axum::Json(json!({
                        "choices": [{
                            "message": {"role": "assistant", "content": format!("stub answer to: {asked}")},
                            "finish_reason": "stop",
                        }],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 5},
                    }))
                }),
            )
            .route(
                "/flaky",
                axum::routing::get(move || {
                    let seen = flaky.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if seen < 3 {
                            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down")
                        } else {
                            (axum::http::StatusCode::OK, "up")
                        }
                    }
                }),
            )
            .route(
                "/never",
                axum::routing::get(|| async {
                    std::future::pending::<()>().await;
                    ""
                }),
            )
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let counted = counted.clone();
                    let kept = kept.clone();
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        if let Some(value) = req.headers().get("authorization") {
                            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                            kept.lock().expect("lock").push(value);
                        }
                        next.run(req).await
                    }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            hits,
            authorizations,
            serving,
        }
    }

    /// Stops listening: a connection to it is refused from now on.
    async fn stop(&self) {
        self.serving.abort();
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(self.addr).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the loopback server still listens"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().expect("lock").clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A server whose policy allows `hosts`, with `http-client` in its folder
/// as `name` under `manifest` (none when empty).
async fn server_with(hosts: &[&str], plugins: &[(&str, &str)]) -> TestServer {
    server_with_secrets(hosts, Vec::new(), plugins).await
}

async fn server_with_secrets(
    hosts: &[&str],
    secrets: Vec<SecretGrant>,
    plugins: &[(&str, &str)],
) -> TestServer {
    configured(hosts, plugins, |config| config.policy.secrets = secrets).await
}

async fn configured(
    hosts: &[&str],
    plugins: &[(&str, &str)],
    adjust: impl FnOnce(&mut warren::config::ServeConfig),
) -> TestServer {
    let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let server = TestServer::start_with(admin_and_client(), move |config| {
        config.policy.outbound = OutboundRule {
            hosts,
            ..OutboundRule::default()
        };
        adjust(config);
    })
    .await;
    let dir = folder(&server);
    for (name, manifest) in plugins {
        if !manifest.is_empty() {
            std::fs::write(dir.join(format!("{name}.toml")), manifest).expect("manifest");
        }
        drop_plugin(&dir, name, &guest_path("http_client"));
    }
    for (name, _) in plugins {
        wait_for_plugin(&server, name, |p| p["active"].is_string()).await;
    }
    server
}

/// Runs `plugin` sending `requests` under `limits`; returns the run once
/// it ends.
async fn call(server: &TestServer, plugin: &str, requests: Value, limits: Value) -> Value {
    let id = submit(server, plugin, requests, limits).await;
    server.ended(&id).await
}

async fn submit(server: &TestServer, plugin: &str, requests: Value, limits: Value) -> String {
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"call": {
                "plugin": plugin,
                "input": {"requests": requests},
                "limits": limits,
            }}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

fn answers(run: &Value) -> &Value {
    &run["jobs"][0]["output"]
}

#[tokio::test]
async fn a_request_leaves_only_to_a_granted_destination() {
    let granted = Loopback::start().await;
    let other = Loopback::start().await;
    let manifest = format!(
        "[[outbound]]\nhost = \"127.0.0.1\"\nport = {}\nmethods = [\"GET\"]\n",
        granted.addr.port()
    );
    let server = server_with(
        &["127.0.0.1"],
        &[("caller", manifest.as_str()), ("stranger", "")],
    )
    .await;
    let (_, plugin) = server.get("/v1/plugins/caller").await;
    let grants = &plugin["versions"][0]["grants"];
    assert_eq!(
        grants["outbound"],
        json!([{"host": "127.0.0.1", "schemes": [], "ports": [granted.addr.port()], "methods": ["GET"]}]),
        "{grants}"
    );

    let run = call(
        &server,
        "caller",
        json!([
            {"url": granted.url("/hello")},
            {"method": "POST", "url": granted.url("/hello"), "body": "x"},
            {"url": other.url("/hello")},
            {"url": format!("http://localhost:{}/hello", granted.addr.port())},
            // What is checked is what is connected to: no user part.
            {"url": format!("http://evil@127.0.0.1:{}/hello", granted.addr.port())},
        ]),
        json!({}),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(
        answers(&run),
        &json!([
            {"status": 200, "body": "hello"},
            {"error": "denied"},
            {"error": "denied"},
            {"error": "denied"},
            {"error": "denied"},
        ])
    );
    assert_eq!(granted.hits(), 1, "only the granted request arrived");
    assert_eq!(other.hits(), 0, "a denied request is never sent");

    // A plugin without outbound grants reaches nothing.
    let run = call(
        &server,
        "stranger",
        json!([{"url": granted.url("/hello")}]),
        json!({}),
    )
    .await;
    assert_eq!(answers(&run), &json!([{"error": "denied"}]), "{run}");
    assert_eq!(granted.hits(), 1);

    // Each denial is in the attempt's log, and counted.
    let job = run["jobs"][0]["id"].as_str().expect("job id");
    let (_, logs) = server.get(&format!("/v1/jobs/{job}/logs")).await;
    assert!(
        logs.to_string()
            .contains("outbound request denied, not sent: the plugin has no outbound grant"),
        "{logs}"
    );
    let metrics = server.metrics().await;
    let denied: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warren_outbound_requests_total{outcome=\"denied\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(denied >= 4, "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn the_policy_caps_what_a_manifest_asks_for() {
    let target = Loopback::start().await;
    let manifest = format!(
        "[[outbound]]\nhost = \"127.0.0.1\"\nport = {}\n",
        target.addr.port()
    );
    let server = server_with(&["*.example.com"], &[("caller", manifest.as_str())]).await;
    let (_, plugin) = server.get("/v1/plugins/caller").await;
    let grants = &plugin["versions"][0]["grants"];
    assert_eq!(grants["outbound"], json!([]), "{grants}");
    assert_eq!(
        grants["capped"],
        json!(["outbound 127.0.0.1: not allowed by policy"])
    );
    let run = call(
        &server,
        "caller",
        json!([{"url": target.url("/hello")}]),
        json!({}),
    )
    .await;
    assert_eq!(answers(&run), &json!([{"error": "denied"}]), "{run}");
    assert_eq!(target.hits(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_version_asking_for_a_new_destination_waits_for_approval() {
    let first = Loopback::start().await;
    let second = Loopback::start().await;
    let ask = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("[[outbound]]\nhost = \"127.0.0.1\"\nport = {p}\n"))
            .collect::<String>()
    };
    let server = server_with(&["127.0.0.1"], &[("caller", &ask(&[first.addr.port()]))]).await;
    let dir = folder(&server);
    let v1 = sha256_of(&guest_path("http_client"));
    // Other bytes, asking for one more destination.
    std::fs::write(
        dir.join("caller.toml"),
        ask(&[first.addr.port(), second.addr.port()]),
    )
    .expect("manifest");
    drop_plugin(&dir, "caller", &plugin_path("echo"));
    let v2 = sha256_of(&plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "caller", |p| {
        p["versions"].as_array().is_some_and(|v| v.len() == 2)
    })
    .await;
    let pending = version(&plugin, &v2);
    assert_eq!(pending["state"], "pending_approval", "{plugin}");
    assert!(
        pending["note"]
            .as_str()
            .is_some_and(|n| n.contains("outbound 127.0.0.1")),
        "{pending}"
    );
    assert_eq!(plugin["active"], v1.as_str());
    let _ = ADMIN;
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_cut_at_the_deadline_and_by_a_cancel() {
    let silent = Loopback::start().await;
    let manifest = format!(
        "[[outbound]]\nhost = \"127.0.0.1\"\nport = {}\n",
        silent.addr.port()
    );
    let server = server_with(&["127.0.0.1"], &[("caller", manifest.as_str())]).await;
    let started = Instant::now();
    let run = call(
        &server,
        "caller",
        json!([{"url": silent.url("/never")}]),
        json!({"timeout_ms": 700}),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}: {run}");
    // Cut at the deadline: the guest is told the request timed out, or the
    // attempt ends on its deadline, whichever comes first.
    let job = &run["jobs"][0];
    let timed_out = job["output"] == json!([{"error": "timeout"}])
        || job["error"].to_string().contains("deadline");
    assert!(timed_out, "{run}");
    assert_eq!(silent.hits(), 1, "the request left");

    // A cancel stops the request in flight.
    let id = submit(
        &server,
        "caller",
        json!([{"url": silent.url("/never")}]),
        json!({"timeout_ms": 30000}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while silent.hits() < 2 {
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled_at = Instant::now();
    let (status, body) = server
        .post(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(3),
        "the cancel took {:?}",
        cancelled_at.elapsed()
    );
    server.stop().await;
}

/// Every file under `dir`, read whole.
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}

#[tokio::test]
async fn a_secret_goes_only_to_its_hosts_and_is_never_stored_or_shown() {
    const VALUE: &str = "sk-test-SECRET-9f8e7d6c5b4a";
    let stub = Loopback::start().await;
    let port = stub.addr.port();
    let manifest = format!(
        "secrets = [\"stub_key\", \"missing\"]\n\
         [[outbound]]\nhost = \"127.0.0.1\"\nport = {port}\n\
         [[outbound]]\nhost = \"localhost\"\nport = {port}\n"
    );
    let secret = SecretGrant {
        name: "stub_key".into(),
        value: SecretValue::new(VALUE),
        hosts: vec!["127.0.0.1".into()],
        // The stub speaks plain http.
        allow_http: true,
    };
    let server = server_with_secrets(
        &["127.0.0.1", "localhost"],
        vec![secret],
        &[("caller", manifest.as_str())],
    )
    .await;
    let (_, plugin) = server.get("/v1/plugins/caller").await;
    let grants = &plugin["versions"][0]["grants"];
    assert_eq!(
        grants["secrets"],
        json!([{"name": "stub_key", "hosts": ["127.0.0.1"]}]),
        "{grants}"
    );
    assert_eq!(
        grants["capped"],
        json!(["secret missing: not declared by the operator"])
    );
    let header = json!([["authorization", "Bearer {env:WARREN_SECRET_STUB_KEY}"]]);
    let run = call(
        &server,
        "caller",
        json!([
            {"url": stub.url("/hello"), "headers": header},
            {"url": format!("http://localhost:{port}/hello"), "headers": header},
        ]),
        json!({}),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    let seen = stub.authorizations();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Its host gets the value; another allowed host, the placeholder.
    assert_eq!(seen[0], format!("Bearer {VALUE}"));
    assert!(
        seen[1].starts_with("Bearer warren-secret-stub_key-") && !seen[1].contains(VALUE),
        "{seen:?}"
    );

    // Nothing Warren stored or answers holds the value.
    let run_id = run["id"].as_str().expect("run id");
    let job_id = run["jobs"][0]["id"].as_str().expect("job id");
    let mut answers = Vec::new();
    for path in [
        format!("/v1/runs/{run_id}"),
        format!("/v1/jobs/{job_id}"),
        format!("/v1/jobs/{job_id}/logs"),
        format!("/v1/jobs/{job_id}/output"),
        "/v1/plugins".to_owned(),
        "/v1/plugins/caller".to_owned(),
    ] {
        let (_, body) = server.get(&path).await;
        answers.push((path, body.to_string()));
    }
    answers.push(("/metrics".into(), server.metrics().await));
    let events = crate::api::follow_events(&server, run_id).await;
    answers.push(("events".into(), json!(events).to_string()));
    for (path, body) in &answers {
        assert!(!body.contains(VALUE), "{path} shows the secret");
    }
    let engine = server.server.as_ref().expect("running").engine.clone();
    engine.sync().await.expect("sync");
    let data_dir = server.config.data_dir.clone();
    let files = files_under(&data_dir);
    assert!(files.len() > 3, "{files:?}");
    for (path, bytes) in files {
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{} holds the secret",
            path.display()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failing_destination_opens_its_breaker_then_a_probe_closes_it() {
    let flaky = Loopback::start().await;
    let manifest = format!(
        "[[outbound]]\nhost = \"127.0.0.1\"\nport = {}\n",
        flaky.addr.port()
    );
    let server = configured(&["127.0.0.1"], &[("caller", manifest.as_str())], |config| {
        config.breakers.failures = 3;
        config.breakers.cooldown = Duration::from_millis(300);
    })
    .await;
    let four = json!([
        {"url": flaky.url("/flaky")},
        {"url": flaky.url("/flaky")},
        {"url": flaky.url("/flaky")},
        {"url": flaky.url("/flaky")},
    ]);
    let run = call(&server, "caller", four, json!({})).await;
    let first = answers(&run);
    for i in 0..3 {
        assert_eq!(first[i]["status"], 500, "{first}");
    }
    // The fourth fails at once: the breaker is open.
    assert!(
        first[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("DestinationUnavailable")),
        "{first}"
    );
    assert_eq!(flaky.hits(), 3, "the fourth was not sent");
    let destination = format!("127.0.0.1:{}", flaky.addr.port());
    let (status, report) = server.get("/v1/outbound").await;
    assert_eq!(status, 200, "{report}");
    let entry = report["destinations"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|d| d["destination"] == destination.as_str())
        })
        .cloned()
        .unwrap_or_else(|| panic!("{destination} in {report}"));
    assert_eq!(entry["state"], "open", "{entry}");
    assert_eq!(
        (entry["failed"].clone(), entry["refused"].clone()),
        (json!(3), json!(1))
    );
    assert!(server.metrics().await.contains(&format!(
        "warren_outbound_breaker_open{{destination=\"{destination}\"}} 1\n"
    )));

    // After the cool-down one probe goes through; its success closes it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let run = call(
        &server,
        "caller",
        json!([{"url": flaky.url("/flaky")}, {"url": flaky.url("/flaky")}]),
        json!({}),
    )
    .await;
    assert_eq!(
        answers(&run),
        &json!([{"status": 200, "body": "up"}, {"status": 200, "body": "up"}])
    );
    let (_, report) = server.get("/v1/outbound").await;
    assert!(
        report["destinations"].as_array().is_some_and(|all| all
            .iter()
            .any(|d| d["destination"] == destination.as_str() && d["state"] == "closed")),
        "{report}"
    );
    // Admins only.
    let mut server = server;
    server.token = Some(crate::api::CLIENT);
    let (status, _) = server.get("/v1/outbound").await;
    assert_eq!(status, 403);
    server.stop().await;
}

/// A server with the stub as model `stub` (its key the secret `stub_key`)
/// and `caller` granted it.
async fn with_model(stub: &Loopback) -> TestServer {
    const KEY: &str = "sk-model-KEY-0a1b2c3d";
    let key = SecretValue::new(KEY);
    let endpoint = ModelEndpoint {
        name: "stub".into(),
        base_url: format!("http://{}/v1", stub.addr),
        model: "stub-model-1".into(),
        api_key: Some(key.clone()),
        timeout: Duration::from_secs(5),
    };
    let refusing = ModelEndpoint {
        name: "refusing".into(),
        base_url: format!("http://{}/refusing/v1", stub.addr),
        ..endpoint.clone()
    };
    configured(
        &[],
        &[
            ("caller", "models = [\"stub\", \"absent\"]\n"),
            ("other", "models = [\"refusing\"]\n"),
        ],
        move |config| {
            config.policy.secrets = vec![SecretGrant {
                name: "stub_key".into(),
                value: key,
                hosts: vec!["127.0.0.1".into()],
                allow_http: true,
            }];
            config.policy.models = vec![endpoint, refusing];
        },
    )
    .await
}

/// Runs `pipeline` and waits for its end.
async fn run_pipeline(server: &TestServer, pipeline: Value) -> Value {
    let (status, created) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(status, 201, "{created}");
    server.ended(created["id"].as_str().expect("id")).await
}

fn completions(calls: &[(&str, u32)]) -> Value {
    json!({"completions": calls.iter()
        .map(|(prompt, max)| json!({"model": "stub", "prompt": prompt, "max_tokens": max}))
        .collect::<Vec<_>>()})
}

#[tokio::test]
async fn a_model_call_goes_through_the_host_with_its_key_and_counts_its_tokens() {
    let stub = Loopback::start().await;
    let server = with_model(&stub).await;
    let (_, plugin) = server.get("/v1/plugins/caller").await;
    let grants = &plugin["versions"][0]["grants"];
    assert_eq!(grants["models"], json!(["stub"]), "{grants}");
    assert_eq!(
        grants["capped"],
        json!(["model absent: not configured by the operator"])
    );
    let run = run_pipeline(
        &server,
        json!({"jobs": {"ask": {"plugin": "caller", "input": completions(&[("hello", 50)])}}}),
    )
    .await;
    assert_eq!(
        answers(&run),
        &json!([{"text": "stub answer to: hello", "tokens_in": 12, "tokens_out": 5}]),
        "{run}"
    );
    // The key went from the host, as a bearer token.
    assert_eq!(
        stub.authorizations(),
        vec!["Bearer sk-model-KEY-0a1b2c3d".to_owned()]
    );
    let job = run["jobs"][0]["id"].as_str().expect("job");
    let (_, detail) = server.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(detail["attempts"][0]["tokens_in"], 12, "{detail}");
    assert_eq!(detail["attempts"][0]["tokens_out"], 5);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("warren_model_tokens_total{direction=\"in\"}"),
        "{metrics}"
    );

    // A plugin without the grant is refused.
    let run = run_pipeline(
        &server,
        json!({"jobs": {"ask": {"plugin": "other", "input": completions(&[("hello", 50)])}}}),
    )
    .await;
    assert!(
        answers(&run)[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("access-denied: model \"stub\" is not granted")),
        "{run}"
    );
    assert_eq!(stub.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn token_limits_of_a_job_and_of_a_run_refuse_calls_before_they_are_sent() {
    let stub = Loopback::start().await;
    let server = with_model(&stub).await;
    // The job's max_tokens: a call that could pass it is not sent.
    let run = run_pipeline(
        &server,
        json!({"jobs": {"ask": {
            "plugin": "caller",
            "input": completions(&[("hello", 100)]),
            "limits": {"max_tokens": 50},
        }}}),
    )
    .await;
    assert!(
        answers(&run)[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("limit-exceeded: the call could use 102 tokens")),
        "{run}"
    );
    assert_eq!(stub.hits(), 0, "refused before it was sent");

    // The run's budget, shared by its jobs: each answered call uses 17.
    let run = run_pipeline(
        &server,
        json!({
            "budget": {"max_tokens": 30},
            "jobs": {
                "first": {"plugin": "caller", "input": completions(&[("a", 5), ("b", 5), ("c", 5)])},
                "second": {"plugin": "caller", "needs": ["first"], "input": completions(&[("d", 5)])},
            },
        }),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    let jobs = run["jobs"].as_array().expect("jobs");
    let first = &jobs.iter().find(|j| j["name"] == "first").expect("first")["output"];
    let second = &jobs.iter().find(|j| j["name"] == "second").expect("second")["output"];
    assert_eq!(first[0]["tokens_out"], 5, "{first}");
    assert_eq!(first[1]["tokens_out"], 5, "{first}");
    for refused in [&first[2], &second[0]] {
        assert!(
            refused["error"]
                .as_str()
                .is_some_and(|e| e.contains("the run's budget has 0 left")),
            "{refused}"
        );
    }
    assert_eq!(stub.hits(), 2, "only the calls within the budget were sent");
    // The run's view totals its attempts' tokens.
    let (_, view) = server
        .get(&format!("/v1/runs/{}", run["id"].as_str().expect("id")))
        .await;
    assert_eq!(
        (view["tokens_in"].clone(), view["tokens_out"].clone()),
        (json!(24), json!(10))
    );
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"budget": {"max_tokens": 0}, "jobs": {"a": {"plugin": "caller"}}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_refusing_a_request_does_not_open_its_breaker() {
    let stub = Loopback::start().await;
    let server = with_model(&stub).await;
    let calls: Vec<Value> = (0..7)
        .map(|_| json!({"model": "refusing", "prompt": "hi", "max_tokens": 5}))
        .collect();
    let run = run_pipeline(
        &server,
        json!({"jobs": {"ask": {"plugin": "other", "input": {"completions": calls}}}}),
    )
    .await;
    let answers = answers(&run).as_array().expect("answers").clone();
    assert_eq!(answers.len(), 7, "{run}");
    // A 401 is this request's: the endpoint is up, every call is sent.
    for answer in &answers {
        assert!(
            answer["error"].as_str().is_some_and(
                |e| e.starts_with("invalid: model refusing: the endpoint answered 401")
            ),
            "{answer}"
        );
    }
    assert_eq!(stub.hits(), 7);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("warren_model_calls_total{outcome=\"failed\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_plugin_has_at_most_32_requests_out_at_once() {
    let silent = Loopback::start().await;
    let manifest = format!(
        "[[outbound]]\nhost = \"127.0.0.1\"\nport = {}\n",
        silent.addr.port()
    );
    let server = server_with(&["127.0.0.1"], &[("caller", manifest.as_str())]).await;
    let mut runs = Vec::new();
    for _ in 0..40 {
        runs.push(
            submit(
                &server,
                "caller",
                json!([{"url": silent.url("/never")}]),
                json!({"timeout_ms": 3000}),
            )
            .await,
        );
    }
    // While the first 32 wait for their answers, the rest wait for a place.
    let deadline = Instant::now() + Duration::from_secs(2);
    while silent.hits() < 32 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(silent.hits(), 32);
    for id in &runs {
        server.ended(id).await;
    }
    server.stop().await;
}

/// Puts `brief` in story `story`.
async fn write_brief(server: &TestServer, story: &str, brief: &str) {
    let response = server
        .request(
            reqwest::Method::PUT,
            &format!("/v1/stories/{story}/documents/brief"),
        )
        .header("content-type", "text/plain")
        .body(brief.to_owned())
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn the_summary_flow_asks_the_model_when_one_is_granted_and_extracts_otherwise() {
    let stub = Loopback::start().await;
    const BRIEF: &str = "Lighthouses guide ships. Keepers tend the lamps. Storms test them all.";
    for granted in [true, false] {
        let base_url = format!("http://{}/v1", stub.addr);
        let server = TestServer::start_with(admin_and_client(), move |config| {
            let dir = config.plugins_dir.clone().expect("plugins folder");
            std::fs::copy(plugin_path("summarizer"), dir.join("summarizer.wasm")).expect("copy");
            if granted {
                std::fs::write(dir.join("summarizer.toml"), "models = [\"default\"]\n")
                    .expect("manifest");
            }
            config.request_timeout = Duration::from_secs(10);
            config.policy.models = vec![ModelEndpoint {
                name: "default".into(),
                base_url,
                model: "stub-model-1".into(),
                api_key: None,
                timeout: Duration::from_secs(5),
            }];
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.get("/v1/templates/brief-to-summary").await.0 != 200 {
            assert!(Instant::now() < deadline, "the summary flow never came");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        write_brief(&server, "light", BRIEF).await;
        let (status, answer) = server
            .post(
                "/v1/flows/brief-to-summary/run",
                &json!({"input": {}, "story_id": "light", "wait_ms": 5000}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["state"], "completed", "{answer}");
        let response = server
            .request(reqwest::Method::GET, "/v1/stories/light/documents/summary")
            .send()
            .await
            .expect("GET");
        let summary = response.text().await.expect("text");
        if granted {
            assert_eq!(answer["result"]["source"], "model", "{answer}");
            assert_eq!(answer["result"]["tokens"], 17);
            assert_eq!(summary, format!("stub answer to: {BRIEF}"));
            // The flow again, replaying the first: the same answer, from
            // the recording (the stub counts one call in all, below).
            let (status, again) = server
                .post(
                    "/v1/flows/brief-to-summary/run",
                    &json!({"input": {}, "story_id": "light", "wait_ms": 5000,
                            "replay": answer["run_id"]}),
                )
                .await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["result"], answer["result"], "{again}");
        } else {
            assert_eq!(answer["result"]["source"], "extract", "{answer}");
            assert_eq!(summary, "Lighthouses guide ships. Keepers tend the lamps.");
        }
        server.stop().await;
    }
    assert_eq!(
        stub.hits(),
        1,
        "only the granted summarizer called the model"
    );
}

#[tokio::test]
async fn a_replay_serves_the_recorded_answers_with_the_servers_stopped() {
    let stub = Loopback::start().await;
    let port = stub.addr.port();
    let endpoint = ModelEndpoint {
        name: "stub".into(),
        base_url: format!("http://{}/v1", stub.addr),
        model: "stub-model-1".into(),
        api_key: None,
        timeout: Duration::from_secs(5),
    };
    let manifest =
        format!("models = [\"stub\"]\n[[outbound]]\nhost = \"127.0.0.1\"\nport = {port}\n");
    let server = configured(&["127.0.0.1"], &[("caller", manifest.as_str())], |config| {
        config.policy.models = vec![endpoint];
    })
    .await;
    // `/flaky` fails three times, then answers: a replay gives the same
    // answers in the same order.
    let flaky = json!({"url": stub.url("/flaky")});
    let input = |prompt: &str| {
        json!({
            "requests": [
                {"url": stub.url("/hello"), "method": "POST", "body": "a body"},
                flaky, flaky, flaky, flaky,
            ],
            "completions": [{"model": "stub", "prompt": prompt, "max_tokens": 50}],
        })
    };
    let pipeline = json!({"jobs": {"ask": {"plugin": "caller", "input": input("hello")}}});
    let recorded = run_pipeline(&server, pipeline.clone()).await;
    assert_eq!(recorded["state"], "completed", "{recorded}");
    let expected = json!([
        {"status": 200, "body": "hello"},
        {"status": 500, "body": "down"},
        {"status": 500, "body": "down"},
        {"status": 500, "body": "down"},
        {"status": 200, "body": "up"},
        {"text": "stub answer to: hello", "tokens_in": 12, "tokens_out": 5},
    ]);
    assert_eq!(answers(&recorded), &expected, "{recorded}");
    let recorded_id = recorded["id"].as_str().expect("id");
    let (_, artifacts) = server
        .get(&format!("/v1/runs/{recorded_id}/artifacts"))
        .await;
    let mut names: Vec<String> = artifacts["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    // One recording an answer; the same answer again is not kept twice.
    let shapes: Vec<String> = names
        .iter()
        .map(|n| {
            let parts: Vec<&str> = n.split('/').collect();
            format!("{}/{}/{}/{}", parts[0], parts[1], parts[2].len(), parts[3])
        })
        .collect();
    let mut expected_shapes = vec![
        "replay/http/64/1", // POST /hello
        "replay/http/64/1", // the first of four GET /flaky
        "replay/http/64/4", // the fourth, the first to answer 200
        "replay/models/64/1",
    ];
    expected_shapes.sort();
    let mut shapes_sorted = shapes.clone();
    shapes_sorted.sort();
    assert_eq!(shapes_sorted, expected_shapes, "{artifacts}");

    stub.stop().await;
    let hits = stub.hits();
    let replay = |input: Value, of: &str| json!({"pipeline": {"jobs": {"ask": {"plugin": "caller", "input": input}}}, "replay": of});
    let (status, created) = server
        .post("/v1/runs", &replay(input("hello"), recorded_id))
        .await;
    assert_eq!(status, 201, "{created}");
    let replayed = server.ended(created["id"].as_str().expect("id")).await;
    assert_eq!(replayed["state"], "completed", "{replayed}");
    assert_eq!(answers(&replayed), &expected, "{replayed}");
    assert_eq!(replayed["replay_of"], recorded_id);
    // Tokens count as they did, so limits and budgets act the same.
    assert_eq!(replayed["tokens_in"], 12);
    assert_eq!(replayed["tokens_out"], 5);
    assert_eq!(stub.hits(), hits, "a replay sends nothing");

    // A replay records what it served: it can be replayed in turn.
    let replayed_id = replayed["id"].as_str().expect("id");
    let (status, created) = server
        .post("/v1/runs", &replay(input("hello"), replayed_id))
        .await;
    assert_eq!(status, 201, "{created}");
    let again = server.ended(created["id"].as_str().expect("id")).await;
    assert_eq!(answers(&again), &expected, "{again}");

    // A call the earlier run did not make is not answered, and not sent.
    let (status, created) = server
        .post("/v1/runs", &replay(input("other"), recorded_id))
        .await;
    assert_eq!(status, 201, "{created}");
    let differs = server.ended(created["id"].as_str().expect("id")).await;
    let error = answers(&differs)[5]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "unavailable: replay of run {recorded_id}: it recorded no answer to this model call"
        )),
        "{differs}"
    );
    assert_eq!(
        answers(&differs)[0],
        json!({"status": 200, "body": "hello"})
    );
    assert_eq!(stub.hits(), hits, "a replay sends nothing");

    // A replay of no run is refused.
    for of in ["00000000-0000-4000-8000-000000000000", "not-an-id"] {
        let (status, body) = server.post("/v1/runs", &replay(input("hello"), of)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "unknown_replay", "{body}");
    }
    server.stop().await;
}

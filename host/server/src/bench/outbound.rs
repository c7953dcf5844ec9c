//! `warren bench outbound`: a plugin's HTTP requests (the first-party
//! `fetch` plugin, through `wasi:http` and Warren's grant check) against
//! the same requests from native Rust (`reqwest`) in this process, to a
//! server on 127.0.0.1; and a plugin's model calls (through the host, to
//! an OpenAI-compatible stub on 127.0.0.1) against the same POSTs sent
//! natively. Every request opens its own connection on both sides, as
//! `wasi:http` does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use warren_sandbox::plugin::grants::{Grants, ModelEndpoint, OutboundGrant};
use warren_sandbox::runtime::{AttemptRequest, Runtime, RuntimeConfig};
use warren_vocabulary::Limits;

use super::{Measurement, micros};

#[derive(Debug, Clone)]
pub struct OutboundBenchOptions {
    /// Folder holding `fetch`.
    pub plugins_dir: PathBuf,
    /// Requests of each kind.
    pub requests: u32,
}

impl Default for OutboundBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            requests: 1_000,
        }
    }
}

/// A server on 127.0.0.1: `/hello`, and a chat completions stub.
async fn loopback() -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .route(
            "/v1/chat/completions",
            axum::routing::post(|| async {
                axum::Json(json!({
                    "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// One attempt of `fetch` with `input`; returns its time per request.
async fn plugin_calls(
    runtime: &Runtime,
    plugin: &warren_sandbox::plugin::Plugin,
    input: Value,
    count: u32,
) -> anyhow::Result<Duration> {
    let mut request = AttemptRequest::new("fetch", input.to_string());
    request.limits = Limits {
        timeout_ms: 600_000,
        fuel: 1_000_000_000_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = runtime.run_attempt(plugin, request).await;
    let elapsed = started.elapsed();
    let output: Value = serde_json::from_str(
        outcome
            .result
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the fetch attempt failed: {e}"))?,
    )?;
    anyhow::ensure!(
        output["ok"] == count && output["failed"] == 0,
        "not every request went well: {output}"
    );
    Ok(elapsed / count)
}

pub async fn run(options: &OutboundBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    anyhow::ensure!(options.requests > 0, "send at least one request");
    let addr = loopback().await?;
    let data = super::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig::new(&data))?;
    let path = options.plugins_dir.join("fetch.wasm");
    let plugin = runtime
        .load_file(&path)
        .with_context(|| format!("loading {}", path.display()))?;
    let plugin = plugin.with_grants(Grants {
        outbound: vec![OutboundGrant {
            host: "127.0.0.1".into(),
            schemes: vec!["http".into()],
            ports: vec![addr.port()],
            methods: vec!["GET".into()],
        }],
        models: vec![ModelEndpoint {
            name: "stub".into(),
            base_url: format!("http://{addr}/v1"),
            model: "stub".into(),
            api_key: None,
            timeout: Duration::from_secs(10),
        }],
        limits: Limits::default_ceiling(),
        ..Grants::default()
    });
    let plugin = Arc::new(plugin);
    let url = format!("http://{addr}/hello");
    let chat = format!("http://{addr}/v1/chat/completions");
    // A fresh connection per request, as `wasi:http` opens.
    let native = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let get_input = |times: u32| json!({"url": url, "times": times});
    let model_input = |times: u32| json!({"model": "stub", "prompt": "hi", "times": times});
    let count = options.requests;

    // Warm both sides.
    plugin_calls(&runtime, &plugin, get_input(50), 50).await?;
    plugin_calls(&runtime, &plugin, model_input(50), 50).await?;
    native_gets(&native, &url, 50).await?;
    native_posts(&native, &chat, 50).await?;

    let plugin_get = plugin_calls(&runtime, &plugin, get_input(count), count).await?;
    let native_get = native_gets(&native, &url, count).await?;
    // For scale: what reusing connections would give.
    let pooled = reqwest::Client::new();
    native_gets(&pooled, &url, 50).await?;
    let native_keep_alive = native_gets(&pooled, &url, count).await?;
    let plugin_model = plugin_calls(&runtime, &plugin, model_input(count), count).await?;
    let native_post = native_posts(&native, &chat, count).await?;
    let _ = std::fs::remove_dir_all(&data);

    let goal = micros(native_get) * 1.5 + 100.0;
    Ok(vec![
        Measurement::new("plugin_get_per_request", micros(plugin_get), "us")
            .against(micros(native_get)),
        Measurement::new(
            "plugin_get_goal_1_5x_native_plus_100us",
            micros(plugin_get),
            "us",
        )
        .against(goal),
        Measurement::new(
            "native_get_keep_alive_per_request",
            micros(native_keep_alive),
            "us",
        )
        .against(micros(native_get)),
        Measurement::new("plugin_model_call_per_call", micros(plugin_model), "us")
            .against(micros(native_post)),
        Measurement::new(
            "model_call_overhead_beyond_http",
            (micros(plugin_model) - micros(native_post)).max(0.0),
            "us",
        )
        .against(200.0),
    ])
}

async fn native_gets(client: &reqwest::Client, url: &str, count: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..count {
        let answer = client.get(url).send().await?;
        anyhow::ensure!(answer.status() == 200, "GET {url}: {}", answer.status());
        let _ = answer.bytes().await?;
    }
    Ok(started.elapsed() / count)
}

async fn native_posts(client: &reqwest::Client, url: &str, count: u32) -> anyhow::Result<Duration> {
    let body =
        json!({"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64});
    let started = Instant::now();
    for _ in 0..count {
        let answer = client.post(url).json(&body).send().await?;
        anyhow::ensure!(answer.status() == 200, "POST {url}: {}", answer.status());
        let answer: Value = answer.json().await?;
        anyhow::ensure!(answer["choices"][0]["message"]["content"] == "ok");
    }
    Ok(started.elapsed() / count)
}

//! `warren bench flows`: the three-agent flow (`brief-to-review`: analyst,
//! writer, reviewer, each reading the document the one before wrote)
//! through `POST /v1/run` with a wait, from many concurrent clients, each
//! against three jobs in a row as a plain pipeline sent the same way:
//! `wordcount` three times, each job writing a file that becomes an
//! artifact as each agent's document does (the baseline), and `echo` three
//! times, writing nothing (the floor). Each client has a story of its own,
//! with its brief written before the load starts.
//!
//! As in `warren bench api`: an open loop at `rate` flows a second (a
//! latency counts from when its request was due) and a closed loop for
//! the most flows a second.

use std::path::PathBuf;

use serde_json::json;

use super::api::{Connection, Load, Outcome, request};
use super::serve_child::ServeChild;
use super::{Measurement, millis};

#[derive(Debug, Clone)]
pub struct FlowsBenchOptions {
    /// Folder holding `analyst`, `writer`, `reviewer`, `wordcount` and
    /// `echo`.
    pub plugins_dir: PathBuf,
    /// Clients sending at once, each on its own connection and story.
    pub clients: usize,
    /// Flows of each kind and loop.
    pub requests: usize,
    /// Flows a second all clients together offer in the open loop.
    pub rate: f64,
}

impl Default for FlowsBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            clients: 100,
            requests: 5_000,
            rate: 500.0,
        }
    }
}

/// The flow every server offers (see `serve::DEMO_FLOW`).
const AGENT_FLOW: &str = "brief-to-review";

pub async fn run(options: &FlowsBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    anyhow::ensure!(
        options.rate.is_finite() && options.rate > 0.0 && options.clients > 0,
        "the rate and the clients must be positive"
    );
    let data = super::tempdir()?;
    let plugins = super::plugins_folder(
        &data,
        &options.plugins_dir,
        &["analyst", "writer", "reviewer", "wordcount", "echo"],
    )?;
    let server = ServeChild::start(&data.join("data"), &plugins).await?;
    let addr = server.addr;
    let mut setup = Connection::open(addr).await?;
    for plugin in ["wordcount", "echo"] {
        let plain = json!({"name": plugin, "pipeline": {"jobs": {
            "a": {"plugin": plugin},
            "b": {"plugin": plugin, "needs": ["a"]},
            "c": {"plugin": plugin, "needs": ["b"]},
        }}});
        let created = setup
            .exchange(&request(
                addr,
                "POST",
                "/v1/templates",
                Some(&plain.to_string()),
            ))
            .await?;
        anyhow::ensure!(created == 201, "creating the {plugin} template: {created}");
    }
    // The demo flow is added once the folder is examined.
    let flow_path = format!("/v1/templates/{AGENT_FLOW}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while setup
        .exchange(&request(addr, "GET", &flow_path, None))
        .await?
        != 200
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the server never offered {AGENT_FLOW}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for client in 0..options.clients {
        let brief = json!(format!(
            "Client {client} writes about rivers, bridges and harbours. Rivers meet harbours."
        ));
        let path = format!("/v1/stories/bench-{client}/documents/brief");
        let status = setup
            .exchange(&request(addr, "PUT", &path, Some(&brief.to_string())))
            .await?;
        anyhow::ensure!(
            status == 201,
            "writing the brief of story {client}: {status}"
        );
    }

    let flow = |body: serde_json::Value| request(addr, "POST", "/v1/run", Some(&body.to_string()));
    let agents = Load {
        addr,
        requests: (0..options.clients)
            .map(|c| {
                flow(json!({"input": {}, "story_id": format!("bench-{c}"), "wait_ms": 10_000}))
            })
            .collect(),
        expect: 200,
    };
    let text = "Rivers meet harbours; bridges span rivers.";
    let jobs = Load {
        addr,
        requests: vec![flow(
            json!({"flow": "wordcount", "input": {"text": text}, "wait_ms": 10_000}),
        )],
        expect: 200,
    };
    let floor = Load {
        addr,
        requests: vec![flow(
            json!({"flow": "echo", "input": {}, "wait_ms": 10_000}),
        )],
        expect: 200,
    };
    let (clients, requests, rate) = (options.clients, options.requests, options.rate);
    // Warm every path, then the open loops, then the closed ones.
    for load in [&floor, &jobs, &agents] {
        load.closed_loop(clients, clients).await?;
    }
    let jobs_at_rate = jobs.open_loop(clients, rate, requests).await?;
    let agents_at_rate = agents.open_loop(clients, rate, requests).await?;
    let floor_saturated = floor.closed_loop(clients, requests).await?;
    let jobs_saturated = jobs.closed_loop(clients, requests).await?;
    let agents_saturated = agents.closed_loop(clients, requests).await?;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&data);

    let latency = |name: &str, p: f64, value: &Outcome, baseline: &Outcome| {
        Measurement::new(name, millis(value.latencies.percentile(p)), "ms")
            .against(millis(baseline.latencies.percentile(p)))
    };
    Ok(vec![
        Measurement::new(
            &format!("agent_flows_per_s_offered_{rate}_per_s"),
            agents_at_rate.per_second(),
            "1/s",
        )
        .against(rate),
        latency(
            &format!("agent_flow_latency_p50_at_{rate}_per_s"),
            0.5,
            &agents_at_rate,
            &jobs_at_rate,
        ),
        latency(
            &format!("agent_flow_latency_p99_at_{rate}_per_s"),
            0.99,
            &agents_at_rate,
            &jobs_at_rate,
        ),
        latency(
            &format!("agent_flow_latency_max_at_{rate}_per_s"),
            1.0,
            &agents_at_rate,
            &jobs_at_rate,
        ),
        Measurement::new(
            &format!("agent_flows_per_s_{clients}_clients"),
            agents_saturated.per_second(),
            "1/s",
        )
        .against(jobs_saturated.per_second()),
        Measurement::new(
            &format!("agent_flows_per_s_{clients}_clients_vs_echo"),
            agents_saturated.per_second(),
            "1/s",
        )
        .against(floor_saturated.per_second()),
        latency(
            "saturated_agent_flow_latency_p50",
            0.5,
            &agents_saturated,
            &jobs_saturated,
        ),
        latency(
            "saturated_agent_flow_latency_p99",
            0.99,
            &agents_saturated,
            &jobs_saturated,
        ),
    ])
}

//! Run budgets through a real server: each kind stops a run with its
//! reason, and the run shows what it used and what remains.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{TestServer, admin_and_client};

async fn submit(server: &TestServer, body: Value) -> String {
    let (status, created) = server.post("/v1/runs", &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

fn job<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job {name}: {run}"))
}

/// The reason the run's last event gives.
async fn ending_reason(server: &TestServer, id: &str) -> String {
    let events = crate::api::follow_events(server, id).await;
    events
        .iter()
        .rev()
        .find(|e| e["kind"] == "run")
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn sleep(ms: u64) -> Value {
    json!([{"op": "sleep_ms", "ms": ms}])
}

#[tokio::test]
async fn each_budget_stops_its_run_with_the_reason_and_the_run_shows_its_use() {
    let server = TestServer::start_with(admin_and_client(), |_| {}).await;

    // Fuel: the attempt gets what is left, spends it, and the run stops.
    const FUEL: u64 = 50_000_000;
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "burn": {"plugin": "spin-forever"},
            "slow": {"plugin": "toolbox", "input": sleep(20_000)},
        }}, "budget": {"max_fuel": FUEL}}),
    )
    .await;
    let started = Instant::now();
    let run = server.ended(&id).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the slow job was stopped"
    );
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["budget_exceeded"], "fuel", "{run}");
    assert_eq!(job(&run, "slow")["state"], "cancelled", "{run}");
    assert_eq!(run["budget"], json!({"max_fuel": FUEL}));
    let used = run["used"]["fuel"].as_u64().expect("fuel used");
    assert!((FUEL..FUEL + 20_000_000).contains(&used), "{run}");
    assert_eq!(run["remaining"]["max_fuel"], 0, "{run}");
    assert_eq!(run["used"]["jobs"], 2);
    assert_eq!(ending_reason(&server, &id).await, "budget_exceeded: fuel");

    // Wall time, from submission.
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "slow": {"plugin": "toolbox", "input": sleep(20_000)},
            "after": {"plugin": "echo", "needs": ["slow"]},
        }, "budget": {"max_wall_ms": 400}}}),
    )
    .await;
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["budget_exceeded"], "wall_ms", "{run}");
    assert_eq!(job(&run, "after")["state"], "cancelled", "{run}");
    let wall = run["used"]["wall_ms"].as_u64().expect("wall");
    assert!((400..5_000).contains(&wall), "{run}");
    assert_eq!(
        ending_reason(&server, &id).await,
        "budget_exceeded: wall_ms"
    );

    // Jobs, spawned ones included.
    let spawn = |n: usize| {
        (0..n)
            .map(|i| json!({"op": "spawn", "plugin": "toolbox", "input": sleep(20_000), "reason": format!("child {i}")}))
            .collect::<Vec<_>>()
    };
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "parent": {"plugin": "toolbox", "input": spawn(3)},
            "slow": {"plugin": "toolbox", "input": sleep(20_000)},
        }}, "budget": {"max_jobs": 4}}),
    )
    .await;
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["budget_exceeded"], "jobs", "{run}");
    assert_eq!(run["used"]["jobs"], 5, "{run}");
    assert_eq!(job(&run, "slow")["state"], "cancelled", "{run}");
    assert_eq!(ending_reason(&server, &id).await, "budget_exceeded: jobs");

    // Artifact bytes the run's jobs kept.
    let put = |name: &str| json!([{"op": "put", "name": name, "data": "x".repeat(300)}]);
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "one": {"plugin": "toolbox", "input": put("one")},
            "two": {"plugin": "toolbox", "input": put("two"), "needs": ["one"]},
            "three": {"plugin": "toolbox", "input": put("three"), "needs": ["two"]},
        }}, "budget": {"max_artifact_bytes": 500}}),
    )
    .await;
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["budget_exceeded"], "artifact_bytes", "{run}");
    assert_eq!(run["used"]["artifact_bytes"], 600, "{run}");
    assert_eq!(job(&run, "three")["state"], "cancelled", "{run}");

    // A run without a budget shows what it used and no limits.
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}}}),
    )
    .await;
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert!(
        run["budget"].is_null() && run["remaining"].is_null(),
        "{run}"
    );
    assert!(run["budget_exceeded"].is_null(), "{run}");
    assert!(run["used"]["fuel"].as_u64().expect("fuel") > 0, "{run}");

    // More jobs than the budget allows, or a limit of 0, is refused.
    for bad in [
        json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}, "b": {"plugin": "echo"}}}, "budget": {"max_jobs": 1}}),
        json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}, "budget": {"max_fuel": 0}}}),
        json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}}, "budget": {"max_wall_ms": 0}}),
    ] {
        let (status, body) = server.post("/v1/runs", &bad).await;
        assert_eq!(
            (status, &body["code"]),
            (422, &json!("invalid_pipeline")),
            "{bad}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_operators_cap_and_the_submission_tighten_the_pipelines_budget() {
    let server = TestServer::start_with(admin_and_client(), |config| {
        config.policy.max_run_budget.max_jobs = Some(3);
        config.policy.max_run_budget.max_fuel = Some(1_000_000_000);
    })
    .await;
    let four = json!({"a": {"plugin": "echo"}, "b": {"plugin": "echo"}, "c": {"plugin": "echo"}, "d": {"plugin": "echo"}});
    let (status, body) = server
        .post("/v1/runs", &json!({"pipeline": {"jobs": four}}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("invalid_pipeline")),
        "{body}"
    );
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}, "budget": {"max_fuel": 2_000_000_000_u64, "max_wall_ms": 60_000}},
               "budget": {"max_wall_ms": 30_000}}),
    )
    .await;
    let run = server.ended(&id).await;
    assert_eq!(
        run["budget"],
        json!({"max_fuel": 1_000_000_000, "max_wall_ms": 30_000, "max_jobs": 3}),
        "{run}"
    );
    assert_eq!(run["state"], "completed");
    server.stop().await;
}

fn fail() -> Value {
    json!([{"op": "fail", "kind": "permanent", "message": "broken"}])
}

fn succeed() -> Value {
    json!([{"op": "log", "message": "fine"}])
}

#[tokio::test]
async fn a_plugins_breaker_opens_holds_its_jobs_probes_and_closes() {
    let server = TestServer::start_with(admin_and_client(), |config| {
        let dir = config.plugins_dir.clone().expect("plugins folder");
        let toolbox = crate::support::guest_path("toolbox");
        for (name, manifest) in [
            ("flaky", "[breaker]\nfailures = 2\ncooldown_ms = 700\n"),
            (
                "brittle",
                "[breaker]\nfailures = 1\ncooldown_ms = 60000\nfail_fast = true\n",
            ),
        ] {
            std::fs::copy(&toolbox, dir.join(format!("{name}.wasm"))).expect("copy");
            std::fs::write(dir.join(format!("{name}.toml")), manifest).expect("manifest");
        }
    })
    .await;
    let one = |plugin: &str, input: Value| json!({"pipeline": {"jobs": {"x": {"plugin": plugin, "input": input}}}});
    let (_, plugin) = server.get("/v1/plugins/flaky").await;
    assert_eq!(
        plugin["versions"][0]["grants"]["breaker"],
        json!({"failures": 2, "cooldown_ms": 700, "fail_fast": false}),
        "{plugin}"
    );
    assert!(plugin["breaker"].is_null(), "{plugin}");

    for _ in 0..2 {
        let id = submit(&server, one("flaky", fail())).await;
        assert_eq!(server.ended(&id).await["state"], "failed");
    }
    let (_, plugin) = server.get("/v1/plugins/flaky").await;
    let breaker = &plugin["breaker"];
    assert_eq!(
        (
            &breaker["state"],
            &breaker["failures_in_a_row"],
            &breaker["opened"]
        ),
        (&json!("open"), &json!(2), &json!(1)),
        "{plugin}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("warren_plugin_breaker_open{plugin=\"flaky\"} 1"),
        "{metrics}"
    );

    // A new job waits (the event says why), then runs as the probe, and
    // its success closes the breaker.
    let held_at = Instant::now();
    let id = submit(&server, one("flaky", succeed())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, waiting) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(job(&waiting, "x")["state"], "ready", "{waiting}");
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert!(
        held_at.elapsed() >= Duration::from_millis(400),
        "ran after {:?}, before the cool-down",
        held_at.elapsed()
    );
    let events = crate::api::follow_events(&server, &id).await;
    assert!(
        events.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("circuit breaker is open"))),
        "{events:?}"
    );
    let (_, plugin) = server.get("/v1/plugins/flaky").await;
    assert!(plugin["breaker"].is_null(), "closed: {plugin}");
    assert!(!server.metrics().await.contains("plugin=\"flaky\""));

    // With fail_fast, a job fails at once while the breaker is open.
    let id = submit(&server, one("brittle", fail())).await;
    assert_eq!(server.ended(&id).await["state"], "failed");
    let started = Instant::now();
    let id = submit(&server, one("brittle", succeed())).await;
    let run = server.ended(&id).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let error = &job(&run, "x")["error"];
    assert_eq!(error["type"], "breaker_open", "{run}");
    assert_eq!(job(&run, "x")["attempts"], 0, "{run}");
    server.stop().await;
}

#[tokio::test]
async fn a_wall_budget_runs_out_for_a_run_waiting_as_a_row_across_a_restart() {
    let mut server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "gated": {"plugin": "echo", "approval": {"required": true}},
            "after": {"plugin": "echo", "needs": ["gated"]},
        }}, "budget": {"max_wall_ms": 2_000}}),
    )
    .await;
    let run = server.wait_for_state(&id, "waiting_approval").await;
    assert_eq!(run["state"], "waiting_approval", "{run}");
    server.restart().await;
    let run = server.ended(&id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["budget_exceeded"], "wall_ms", "{run}");
    assert_eq!(job(&run, "gated")["state"], "cancelled", "{run}");
    assert_eq!(
        ending_reason(&server, &id).await,
        "budget_exceeded: wall_ms"
    );
    server.stop().await;
}

//! The status view through a real server: stories with their latest run,
//! and the latest status of each agent across a story's runs, with the
//! summaries plugins reported.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{TestServer, admin_and_client};

async fn run_to_end(server: &TestServer, body: Value) -> Value {
    let (status, created) = server.post("/v1/runs", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
        if ["completed", "failed", "cancelled"].contains(&run["state"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} never ended: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn progress(summary: &str) -> Value {
    json!([{"op": "progress", "percent": 100, "summary": summary}])
}

#[tokio::test]
async fn the_status_view_shows_each_agents_latest_status_across_runs() {
    let server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let first = run_to_end(
        &server,
        json!({"story_id": "tracker", "pipeline": {"jobs": {
            "plan": {"plugin": "toolbox", "input": progress("planned 3 tasks")},
            "build": {"plugin": "toolbox", "needs": ["plan"], "input": progress("built v1")},
        }}}),
    )
    .await;
    assert_eq!(first["state"], "completed", "{first}");
    let second = run_to_end(
        &server,
        json!({"story_id": "tracker", "pipeline": {"jobs": {
            "build": {"plugin": "toolbox", "input": [
                {"op": "progress", "percent": 40, "summary": "built half"},
                {"op": "fail", "kind": "permanent", "message": "disk full"},
            ]},
            "test": {"plugin": "echo", "needs": ["build"]},
        }}}),
    )
    .await;
    assert_eq!(second["state"], "failed", "{second}");
    run_to_end(
        &server,
        json!({"story_id": "other", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}}),
    )
    .await;

    // Times on runs and jobs.
    for run in [&first, &second] {
        let started = run["started_at"].as_i64().expect("started_at");
        let ended = run["ended_at"].as_i64().expect("ended_at");
        assert!(run["created_at"].as_i64().expect("created") <= started && started <= ended);
        assert!(
            run["updated_at"].as_i64().expect("updated_at") >= ended,
            "{run}"
        );
    }
    let plan = &first["jobs"][1];
    assert_eq!(plan["name"], "plan");
    assert_eq!(plan["summary"], "planned 3 tasks");
    assert!(
        plan["started_at"].as_i64().expect("started") <= plan["ended_at"].as_i64().expect("ended")
    );
    let skipped = &second["jobs"][1];
    assert_eq!(
        (&skipped["name"], &skipped["state"]),
        (&json!("test"), &json!("skipped"))
    );
    assert!(skipped["started_at"].is_null(), "never ran: {skipped}");
    assert!(skipped["ended_at"].is_i64(), "{skipped}");

    let (status, view) = server.get("/v1/stories/tracker/status").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["story_id"], "tracker");
    let agents = view["agent_statuses"].as_object().expect("statuses");
    assert_eq!(
        agents.keys().collect::<Vec<_>>(),
        ["build", "plan", "test"],
        "{view}"
    );
    let (first_id, second_id) = (first["id"].clone(), second["id"].clone());
    assert_eq!(agents["plan"]["status"], "completed");
    assert_eq!(agents["plan"]["output_summary"], "planned 3 tasks");
    assert_eq!(agents["plan"]["run_id"], first_id);
    // The latest `build` is the second run's, failed, with its summary.
    assert_eq!(agents["build"]["status"], "failed");
    assert_eq!(agents["build"]["output_summary"], "built half");
    assert_eq!(agents["build"]["run_id"], second_id);
    assert!(agents["build"]["last_execution"].is_i64(), "{view}");
    assert_eq!(agents["test"]["status"], "skipped");
    assert!(agents["test"]["last_execution"].is_null(), "{view}");
    let latest = agents
        .values()
        .map(|a| a["updated_at"].as_i64().expect("updated_at"))
        .max();
    assert_eq!(view["updated_at"].as_i64(), latest);
    assert_eq!(view["truncated"], false);

    let (status, body) = server.get("/v1/stories/nobody/status").await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, body) = server.get("/v1/stories/bad%20id/status").await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("invalid_id")),
        "{body}"
    );

    // The list: each story with its latest run, a page at a time.
    let (_, page) = server.get("/v1/stories").await;
    let stories = page["stories"].as_array().expect("stories");
    assert_eq!(stories.len(), 2, "{page}");
    assert_eq!(stories[1]["story_id"], "tracker");
    assert_eq!(stories[1]["latest_run"]["id"], second_id);
    assert_eq!(stories[1]["latest_run"]["state"], "failed");
    assert_eq!(stories[1]["runs"], 2);
    let (_, failed) = server.get("/v1/stories?state=failed").await;
    assert_eq!(
        failed["stories"].as_array().map(Vec::len),
        Some(1),
        "{failed}"
    );
    let (_, one) = server.get("/v1/stories?limit=1").await;
    assert_eq!(one["stories"][0]["story_id"], "other");
    assert_eq!(one["next"], "other");
    let (_, rest) = server.get("/v1/stories?limit=1&after=other").await;
    assert_eq!(rest["stories"][0]["story_id"], "tracker", "{rest}");
    let (status, _) = server.get("/v1/stories?after=bad%20id").await;
    assert_eq!(status, 400);
    server.stop().await;
}

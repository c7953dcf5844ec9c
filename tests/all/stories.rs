//! The status view through a real server: stories with their latest run,
//! and the latest status of each agent across a story's runs, with the
//! summaries plugins reported.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{TestServer, admin_and_client};

async fn run_to_end(server: &TestServer, body: Value) -> Value {
    let (status, created) = server.post("/v1/runs", &body).await;
    assert_eq!(status, 201, "{created}");
    server.ended(created["id"].as_str().expect("id")).await
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

/// `PUT`s `report` as the status of job `job`.
async fn report(server: &TestServer, job: &str, report: Value) -> (u16, Value) {
    let response = server
        .request(reqwest::Method::PUT, &format!("/v1/jobs/{job}/status"))
        .json(&report)
        .send()
        .await
        .expect("PUT");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn job_id(run: &Value, name: &str) -> String {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .and_then(|j| j["id"].as_str())
        .unwrap_or_else(|| panic!("no job {name}: {run}"))
        .to_owned()
}

#[tokio::test]
async fn outside_systems_report_external_jobs_and_dependents_react() {
    let server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"story_id": "tracked", "pipeline": {"jobs": {
                "scan": {"external": true},
                "lint": {"external": true},
                "a": {"external": true},
                "b": {"external": true},
                "report": {"plugin": "echo", "needs": ["scan"]},
                "later": {"external": true, "needs": ["lint"]},
            }}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(
        run["state"], "pending",
        "nothing runs until reported: {run}"
    );
    let job = |name: &str| job_id(&run, name);

    let (status, body) = report(
        &server,
        &job("scan"),
        json!({"status": "running", "output_summary": "scanning 3 repositories"}),
    )
    .await;
    assert_eq!((status, &body["state"]), (200, &json!("running")), "{body}");
    let (_, now) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(now["state"], "running", "{now}");
    let (status, body) = report(
        &server,
        &job("scan"),
        json!({"status": "completed", "output": {"found": 2}, "output_summary": "2 findings"}),
    )
    .await;
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("completed")),
        "{body}"
    );

    // Transitions are checked.
    for (name, sent, says) in [
        ("scan", json!({"status": "running"}), "it is completed"),
        (
            "later",
            json!({"status": "running"}),
            "waits for its dependencies",
        ),
        ("report", json!({"status": "running"}), "only external jobs"),
    ] {
        let (status, body) = report(&server, &job(name), sent).await;
        assert_eq!(
            (status, &body["code"]),
            (409, &json!("conflict")),
            "{name}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    }
    for (sent, status) in [
        (json!({"status": "running", "output": 1}), 422),
        (json!({"status": "paused"}), 422),
        (
            json!({"status": "running", "output_summary": "x".repeat(5000)}),
            422,
        ),
    ] {
        let (got, body) = report(&server, &job("lint"), sent.clone()).await;
        assert_eq!(got, status, "{sent}: {body}");
    }
    let (status, _) = report(
        &server,
        "00000000-0000-4000-8000-000000000000",
        json!({"status": "running"}),
    )
    .await;
    assert_eq!(status, 404);

    // Two reporters of two jobs at once: neither overwrites the other.
    let reports = (0..10).map(|i| {
        let (name, other) = if i % 2 == 0 { ("a", "A") } else { ("b", "B") };
        let summary = format!("{other} step {i}");
        let job = job(name);
        let server = &server;
        async move {
            report(
                server,
                &job,
                json!({"status": "running", "output_summary": summary}),
            )
            .await
        }
    });
    for (status, body) in futures_util::future::join_all(reports).await {
        assert_eq!(status, 200, "{body}");
    }
    let (job_a, job_b) = (job("a"), job("b"));
    let (a, b) = tokio::join!(
        report(
            &server,
            &job_a,
            json!({"status": "completed", "output": "from A", "output_summary": "A done"})
        ),
        report(
            &server,
            &job_b,
            json!({"status": "completed", "output": "from B", "output_summary": "B done"})
        ),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");

    let (status, body) = report(
        &server,
        &job("lint"),
        json!({"status": "failed", "output_summary": "lint failed"}),
    )
    .await;
    assert_eq!((status, &body["state"]), (200, &json!("failed")), "{body}");

    let ended = server.ended(&id).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let find = |name: &str| {
        ended["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("scan")["output"], json!({"found": 2}));
    assert_eq!(
        find("report")["state"],
        "completed",
        "dependents react: {ended}"
    );
    assert_eq!(find("a")["output"], "from A");
    assert_eq!(find("b")["output"], "from B");
    assert_eq!(find("a")["summary"], "A done");
    assert_eq!(find("b")["summary"], "B done");
    assert_eq!(
        find("lint")["error"],
        json!({"type": "reported", "message": "lint failed"})
    );
    assert_eq!(find("later")["state"], "skipped");

    // Each report is an event, saying who reported.
    let events = crate::api::follow_events(&server, &id).await;
    let reported: Vec<&str> = events
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .filter(|r| r.starts_with("reported"))
        .collect();
    assert_eq!(reported.len(), 15, "{reported:?}");
    assert!(
        reported.contains(&"reported running by ops"),
        "{reported:?}"
    );

    let (_, view) = server.get("/v1/stories/tracked/status").await;
    assert_eq!(view["agent_statuses"]["scan"]["status"], "completed");
    assert_eq!(
        view["agent_statuses"]["scan"]["output_summary"],
        "2 findings"
    );
    assert_eq!(
        view["agent_statuses"]["lint"]["output_summary"],
        "lint failed"
    );

    // A run cancelled while an external job runs ends: the job is
    // cancelled, as there is no attempt to stop.
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"outside": {"external": true}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let cancelled_id = created["id"].as_str().expect("id").to_owned();
    let (_, run) = server.get(&format!("/v1/runs/{cancelled_id}")).await;
    let (status, _) = report(
        &server,
        &job_id(&run, "outside"),
        json!({"status": "running"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post(&format!("/v1/runs/{cancelled_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = server.ended(&cancelled_id).await;
    assert_eq!(run["state"], "cancelled", "{run}");

    // An external job names no plugin, gate or screening.
    for bad in [
        json!({"external": true, "plugin": "echo"}),
        json!({"external": true, "approval": {"required": true}}),
    ] {
        let (status, body) = server
            .post("/v1/runs", &json!({"pipeline": {"jobs": {"x": bad}}}))
            .await;
        assert_eq!(
            (status, &body["code"]),
            (422, &json!("invalid_pipeline")),
            "{body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_late_follower_gets_the_running_attempts_earlier_lines_first() {
    let server = TestServer::start_with(admin_and_client(), |config| {
        config.max_body_bytes = 1 << 20;
    })
    .await;
    // 100 lines of 1 KiB: more than the 64 KiB kept for late followers.
    let mut ops: Vec<Value> = (0..100)
        .map(|i| json!({"op": "log", "message": format!("{i:04} {}", "x".repeat(1019))}))
        .collect();
    ops.extend([
        json!({"op": "log", "message": "last before the wait"}),
        json!({"op": "sleep_ms", "ms": 3000}),
        json!({"op": "log", "message": "after the wait"}),
    ]);
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"chatty": {"plugin": "toolbox", "input": ops}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
    let job = job_id(&run, "chatty");
    // A first follower sees the wait's line, so all before it are written.
    let seen = server
        .followed_log(&job, Some("last before the wait"))
        .await;
    assert!(
        seen.iter()
            .any(|(_, d)| d["message"] == "last before the wait"),
        "{seen:?}"
    );

    // A second one, come later, gets the latest of them first, in order,
    // told how many earlier ones it does not get, then the rest live.
    let events = server.followed_log(&job, None).await;
    let (first, data) = &events[0];
    assert_eq!(first, "lagged", "{data}");
    let skipped = data["skipped"].as_u64().expect("skipped");
    let lines: Vec<&Value> = events
        .iter()
        .filter(|(event, _)| event == "line")
        .map(|(_, data)| data)
        .collect();
    let before_the_wait = lines
        .iter()
        .position(|l| l["message"] == "last before the wait")
        .expect("the last line before the wait");
    // Every line written before the wait is either told as skipped or sent.
    assert_eq!(skipped + before_the_wait as u64 + 1, 101, "{events:?}");
    assert!(
        (50..=70).contains(&(before_the_wait + 1)),
        "about 64 KiB of 1 KiB lines: {}",
        before_the_wait + 1
    );
    assert!(lines.iter().all(|l| l["attempt"] == 1));
    assert_eq!(lines[before_the_wait + 1]["message"], "after the wait");
    assert_eq!(lines.len(), before_the_wait + 2, "each line once");
    assert_eq!(events.last().expect("end").0, "end");
    server.stop().await;
}

#[tokio::test]
async fn a_running_attempts_log_lines_arrive_before_it_ends() {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;

    let server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"slow": {"plugin": "toolbox", "input": [
                {"op": "sleep_ms", "ms": 300},
                {"op": "log", "message": "first line"},
                {"op": "sleep_ms", "ms": 1500},
                {"op": "log", "message": "second line"},
            ]}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
    let job = job_id(&run, "slow");
    let response = server
        .request(
            reqwest::Method::GET,
            &format!("/v1/jobs/{job}/logs?follow=true"),
        )
        .send()
        .await
        .expect("follow");
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream().eventsource();
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a line in time")
        .expect("an event")
        .expect("an event");
    assert_eq!(first.event, "line", "{first:?}");
    let line: Value = serde_json::from_str(&first.data).expect("json");
    assert_eq!(
        (&line["message"], &line["attempt"]),
        (&json!("first line"), &json!(1))
    );
    // The attempt still runs: nothing of its log is stored yet.
    let (_, now) = server.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(now["state"], "running", "{now}");
    let (_, stored) = server.get(&format!("/v1/jobs/{job}/logs")).await;
    assert_eq!(stored["attempts"][0]["state"], "running", "{stored}");

    let mut rest = Vec::new();
    while let Some(Ok(event)) = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the stream ends")
    {
        rest.push((event.event.clone(), event.data.clone()));
    }
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(rest[0].0, "line");
    assert!(rest[0].1.contains("second line"), "{rest:?}");
    assert_eq!(rest[1], ("end".into(), r#"{"state":"completed"}"#.into()));

    // The command line prints them too, then the stored log.
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"slow": {"plugin": "toolbox", "input": [
                {"op": "sleep_ms", "ms": 500},
                {"op": "log", "message": "live one"},
                {"op": "sleep_ms", "ms": 500},
            ]}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, run) = server
        .get(&format!("/v1/runs/{}", created["id"].as_str().expect("id")))
        .await;
    let job = job_id(&run, "slow");
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["logs", &job, "--follow", "--server", &base, "--token"])
            .arg(crate::api::ADMIN)
            .output()
    })
    .await
    .expect("joined")
    .expect("warren logs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("--- attempt 1 (live)"), "{stdout}");
    assert!(stdout.contains("live one"), "{stdout}");

    let (status, _) = server
        .get("/v1/jobs/00000000-0000-4000-8000-000000000000/logs?follow=true")
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

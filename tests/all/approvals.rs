//! People in a run, through a real `warren serve`: approval gates
//! (approve, reject and rework, rework used up, a final rejection,
//! timeouts), input given to a job that waits for it, roles, restarts,
//! and the record each decision leaves.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warren::config::{Role, Token};

use crate::api::{ADMIN, CLIENT, TestServer, admin_and_client, follow_events};
use crate::support::plugin_path;

const APPROVER: &str = "approver-token-0123456789";

/// A server whose plugins folder holds `speckit` and `echo`.
async fn start(tokens: Vec<Token>) -> TestServer {
    TestServer::start_with(tokens, |config| {
        let dir = config
            .plugins_dir
            .clone()
            .expect("the test server has a plugins folder");
        std::fs::copy(plugin_path("speckit"), dir.join("speckit.wasm")).expect("copy speckit");
        config.request_timeout = Duration::from_secs(10);
    })
    .await
}

/// The gated `specify` phase, and `after`, which needs it as `condition`.
fn gated(gate: Value, condition: &str) -> Value {
    json!({"jobs": {
        "specify": {"plugin": "speckit", "approval": gate},
        "after": {"plugin": "echo", "needs": [{"job": "specify", "when": condition}]},
    }})
}

async fn submit(server: &TestServer, pipeline: Value, input: Value) -> String {
    let (status, body) = server
        .post("/v1/runs", &json!({"pipeline": pipeline, "input": input}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("run id").to_owned()
}

fn job<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job {name} in {run}"))
}

fn job_id(run: &Value, name: &str) -> String {
    job(run, name)["id"].as_str().expect("job id").to_owned()
}

async fn decide(server: &TestServer, job_id: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/v1/jobs/{job_id}/decision"), &body)
        .await
}

/// Waits until job `name` of the run is in `state` (a job may pass through
/// a state the run's does not show).
async fn job_reaches(server: &TestServer, run_id: &str, name: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
        if job(&run, name)["state"] == state {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} never reached {state}: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_approved_job_completes_and_its_dependents_see_the_reviewers_addition() {
    let server = start(Vec::new()).await;
    let pipeline = json!({"jobs": {
        "specify": {"plugin": "speckit", "approval": {"required": true}},
        "plan": {"plugin": "speckit", "input": {"phase": "plan"}, "needs": ["specify"]},
    }});
    let run_id = submit(&server, pipeline, json!({"feature": "export to CSV"})).await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    assert_eq!(run["state"], "waiting_approval", "{run}");
    let specify = job(&run, "specify");
    assert_eq!(specify["state"], "waiting_approval");
    // The output is there for the reviewer; the dependent waits.
    assert_eq!(specify["output"]["revision"], 1, "{specify}");
    assert_eq!(job(&run, "plan")["state"], "pending");
    let id = job_id(&run, "specify");

    let (status, answer) = decide(
        &server,
        &id,
        json!({"decision": "approve", "comments": "good", "data": "keep it under 1 MB"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "completed");
    assert_eq!(answer["review"]["decision"], "approve");
    assert_eq!(answer["review"]["attempt"], 1);
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    let plan = job(&run, "plan")["output"]["text"]
        .as_str()
        .expect("plan text")
        .to_owned();
    assert!(
        plan.contains("From the approval before: keep it under 1 MB"),
        "{plan}"
    );
    assert!(
        plan.contains("Design for: As a user, I can export to CSV."),
        "{plan}"
    );

    // On record: the job lists its review, the history has the decision.
    let (_, detail) = server.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        detail["reviews"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    assert_eq!(detail["reviews"][0]["comments"], "good");
    assert_eq!(detail["reviews"][0]["data"], "keep it under 1 MB");
    assert_eq!(detail["approval"]["max_rework"], 3);
    let events = follow_events(&server, &run_id).await;
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["to_state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for wanted in [
        ("job", "waiting_approval"),
        ("run", "waiting_approval"),
        ("review", "approve"),
        ("run", "running"),
        ("run", "completed"),
    ] {
        assert!(
            kinds.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "no {wanted:?} in {kinds:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_rejection_sends_the_job_back_and_the_rework_takes_the_comments_in() {
    let server = start(Vec::new()).await;
    let run_id = submit(
        &server,
        gated(json!({"required": true}), "on_success"),
        json!({"feature": "dark mode"}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let id = job_id(&run, "specify");
    let (_, detail) = server.get(&format!("/v1/jobs/{id}")).await;
    let first_wait = detail["waiting_since"].as_i64().expect("waiting since");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, answer) = decide(
        &server,
        &id,
        json!({"decision": "reject", "comments": "cover the contrast ratio"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "ready", "sent back for rework");
    let run = job_reaches(&server, &run_id, "specify", "waiting_approval").await;
    let specify = job(&run, "specify");
    assert_eq!(specify["attempts"], 2, "{specify}");
    // The second wait counts from its own start (a timeout would too).
    let (_, detail) = server.get(&format!("/v1/jobs/{id}")).await;
    let second_wait = detail["waiting_since"].as_i64().expect("waiting since");
    assert!(second_wait > first_wait, "{first_wait} then {second_wait}");
    assert_eq!(specify["output"]["revision"], 2, "{specify}");
    assert_eq!(
        specify["output"]["addressed"],
        json!(["cover the contrast ratio"])
    );
    assert!(
        specify["output"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("As asked in review: cover the contrast ratio"),
        "{specify}"
    );
    let (status, answer) = decide(&server, &id, json!({"decision": "approve"})).await;
    assert_eq!((status, answer["state"].clone()), (200, json!("completed")));
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(job(&run, "after")["state"], "completed");
    let (_, detail) = server.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(detail["reworks"], 1);
    let decisions: Vec<&str> = detail["reviews"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["decision"].as_str())
        .collect();
    assert_eq!(decisions, ["reject", "approve"]);
    server.stop().await;
}

#[tokio::test]
async fn rework_used_up_fails_the_job_and_a_final_rejection_runs_on_failure_dependents() {
    let server = start(Vec::new()).await;
    // max_rework 1: the first rejection sends it back, the second fails it.
    let run_id = submit(
        &server,
        gated(json!({"required": true, "max_rework": 1}), "on_success"),
        json!({"feature": "search"}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let id = job_id(&run, "specify");
    let (_, answer) = decide(
        &server,
        &id,
        json!({"decision": "reject", "comments": "more"}),
    )
    .await;
    assert_eq!(answer["state"], "ready", "{answer}");
    job_reaches(&server, &run_id, "specify", "waiting_approval").await;
    let (_, answer) = decide(
        &server,
        &id,
        json!({"decision": "reject", "comments": "still no"}),
    )
    .await;
    assert_eq!(answer["state"], "failed", "{answer}");
    let run = server.wait_for_state(&run_id, "failed").await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(job(&run, "after")["state"], "skipped");
    let error = &job(&run, "specify")["error"];
    assert_eq!(error["type"], "rejected", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rework used up (1 allowed)")
    );

    // A final rejection fails the job at once: its on_failure dependent runs.
    let run_id = submit(
        &server,
        gated(json!({"required": true}), "on_failure"),
        json!({"feature": "search"}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let id = job_id(&run, "specify");
    let (_, answer) = decide(
        &server,
        &id,
        json!({"decision": "reject", "comments": "out of scope", "final": true}),
    )
    .await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert_eq!(answer["review"]["final"], true);
    let run = server.wait_for_state(&run_id, "failed").await;
    assert_eq!(job(&run, "specify")["attempts"], 1, "no rework: {run}");
    assert_eq!(job(&run, "after")["state"], "completed", "{run}");

    // `final` goes with reject only.
    let (status, body) = decide(&server, &id, json!({"decision": "approve", "final": true})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("invalid_body")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_decision_needs_a_waiting_job_and_an_existing_one() {
    let server = start(Vec::new()).await;
    let run_id = submit(
        &server,
        gated(json!({"required": true}), "on_success"),
        json!({"feature": "tags"}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let waiting = job_id(&run, "specify");
    let after = job_id(&run, "after");
    // `after` is pending: nothing to decide.
    let (status, body) = decide(&server, &after, json!({"decision": "approve"})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not waiting for a decision")
    );
    // Input goes to jobs waiting for input, not to a gate.
    let (status, body) = server
        .post(&format!("/v1/jobs/{waiting}/input"), &json!({"data": 1}))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    let (status, body) = decide(
        &server,
        "00000000-0000-4000-8000-000000000000",
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("not_found")),
        "{body}"
    );
    let (status, body) = decide(&server, &waiting, json!({"decision": "maybe"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = decide(
        &server,
        &waiting,
        json!({"decision": "reject", "comments": "x".repeat(20_000)}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("invalid_body")),
        "{body}"
    );
    let (status, body) = decide(
        &server,
        &waiting,
        json!({"decision": "reject", "data": "x".repeat(300_000)}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (413, json!("payload_too_large")),
        "{body}"
    );
    // A decision naming another attempt than the one waiting is refused.
    let (status, body) = decide(
        &server,
        &waiting,
        json!({"decision": "reject", "comments": "again", "attempt": 2}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("on attempt 2"),
        "{body}"
    );
    // Refusals changed nothing; a decision, then the same one again.
    let (status, _) = decide(
        &server,
        &waiting,
        json!({"decision": "approve", "attempt": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, detail) = server.get(&format!("/v1/jobs/{waiting}")).await;
    assert_eq!(
        detail["reviews_total"], 1,
        "only the decision is on record: {detail}"
    );
    let (status, body) = decide(&server, &waiting, json!({"decision": "approve"})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed");
    server.stop().await;
}

#[tokio::test]
async fn a_gate_times_out_by_failing_or_by_a_rejection_on_record() {
    let server = start(Vec::new()).await;
    let fails = submit(
        &server,
        gated(json!({"required": true, "timeout_ms": 300}), "on_success"),
        json!({"feature": "sync"}),
    )
    .await;
    let rejects = submit(
        &server,
        gated(
            json!({"required": true, "timeout_ms": 300, "on_timeout": "reject", "max_rework": 1}),
            "on_success",
        ),
        json!({"feature": "sync"}),
    )
    .await;
    let run = server.wait_for_state(&fails, "failed").await;
    assert_eq!(run["state"], "failed", "{run}");
    let error = &job(&run, "specify")["error"];
    assert_eq!(error["type"], "approval_timeout", "{error}");
    assert_eq!(job(&run, "specify")["attempts"], 1);

    // reject: Warren rejects on record, the job is reworked once, then the
    // second timeout's rejection uses the rework up.
    let run = server.wait_for_state(&rejects, "failed").await;
    assert_eq!(run["state"], "failed", "{run}");
    let specify = job(&run, "specify");
    assert_eq!(specify["attempts"], 2, "{specify}");
    assert_eq!(specify["error"]["type"], "rejected");
    let (_, detail) = server
        .get(&format!("/v1/jobs/{}", job_id(&run, "specify")))
        .await;
    let reviews = detail["reviews"].as_array().expect("reviews");
    assert_eq!(reviews.len(), 2, "{detail}");
    for review in reviews {
        assert_eq!(review["by"], "warren");
        assert_eq!(review["role"], Value::Null);
        assert_eq!(review["decision"], "reject");
        assert_eq!(review["comments"], "no decision within 300 ms");
    }
    server.stop().await;
}

#[tokio::test]
async fn waits_survive_a_restart_and_a_gates_timeout_fires_after_one() {
    let mut server = start(Vec::new()).await;
    let waiting = submit(
        &server,
        gated(json!({"required": true}), "on_success"),
        json!({"feature": "undo"}),
    )
    .await;
    let timing_out = submit(
        &server,
        gated(json!({"required": true, "timeout_ms": 1500}), "on_success"),
        json!({"feature": "redo"}),
    )
    .await;
    let run = server.wait_for_state(&waiting, "waiting_approval").await;
    server.wait_for_state(&timing_out, "waiting_approval").await;
    let id = job_id(&run, "specify");
    server.restart().await;
    // The gauges say what was recovered before anything else happens.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("warren_runs_waiting{state=\"waiting_approval\"} 2\n"),
        "{metrics}"
    );
    let (_, run) = server.get(&format!("/v1/runs/{waiting}")).await;
    assert_eq!(run["state"], "waiting_approval", "{run}");
    let (_, pending) = server.get("/v1/pending").await;
    assert!(
        pending["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["job_id"] == id.as_str() && j["state"] == "waiting_approval"),
        "{pending}"
    );
    let (status, answer) = decide(&server, &id, json!({"decision": "approve"})).await;
    assert_eq!(status, 200, "{answer}");
    let run = server.wait_for_state(&waiting, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(
        job(&run, "specify")["attempts"],
        1,
        "no attempt ran again: {run}"
    );
    let run = server.wait_for_state(&timing_out, "failed").await;
    assert_eq!(
        job(&run, "specify")["error"]["type"],
        "approval_timeout",
        "{run}"
    );
    server.stop().await;
}

#[tokio::test]
async fn input_given_to_a_job_that_asked_for_it_resumes_it_with_the_input() {
    let server = start(Vec::new()).await;
    let pipeline = json!({"jobs": {"specify": {"plugin": "speckit"}}});
    // No feature: the job asks for one.
    let run_id = submit(&server, pipeline, json!({})).await;
    let run = server.wait_for_state(&run_id, "needs_input").await;
    assert_eq!(run["state"], "needs_input", "{run}");
    let id = job_id(&run, "specify");
    assert_eq!(job(&run, "specify")["state"], "needs_input");
    let (_, pending) = server.get("/v1/pending?state=needs_input").await;
    assert_eq!(pending["jobs"][0]["job_id"], id.as_str(), "{pending}");
    assert_eq!(pending["jobs"][0]["pending_docs"], json!(["feature"]));
    // A decision is not input.
    let (status, _) = decide(&server, &id, json!({"decision": "approve"})).await;
    assert_eq!(status, 409);
    let (status, answer) = server
        .post(
            &format!("/v1/jobs/{id}/input"),
            &json!({"data": {"feature": "offline mode"}, "comments": "from the brief"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "ready");
    assert_eq!(answer["review"]["decision"], "input");
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    let specify = job(&run, "specify");
    assert_eq!(specify["output"]["feature"], "offline mode", "{specify}");
    assert_eq!(specify["attempts"], 2);
    let (status, body) = server
        .post(&format!("/v1/jobs/{id}/input"), &json!({"data": 1}))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn roles_decide_who_may_decide_and_the_record_says_who_did() {
    let mut tokens = admin_and_client();
    tokens.push(Token {
        name: "reviewer-ann".into(),
        token: APPROVER.into(),
        role: Role::Approver,
    });
    let mut server = start(tokens).await;
    let admin_gate = submit(
        &server,
        gated(json!({"required": true, "role": "admin"}), "on_success"),
        json!({"feature": "billing"}),
    )
    .await;
    let approver_gate = submit(
        &server,
        gated(json!({"required": true, "role": "approver"}), "on_success"),
        json!({"feature": "billing"}),
    )
    .await;
    let run = server.wait_for_state(&admin_gate, "waiting_approval").await;
    let admin_job = job_id(&run, "specify");
    let run = server
        .wait_for_state(&approver_gate, "waiting_approval")
        .await;
    let approver_job = job_id(&run, "specify");

    server.token = Some(CLIENT);
    let (status, body) = decide(&server, &admin_job, json!({"decision": "approve"})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs the admin role")
    );
    let (status, _) = decide(&server, &approver_job, json!({"decision": "approve"})).await;
    assert_eq!(status, 403, "a client is below an approver");

    server.token = Some(APPROVER);
    let (status, _) = decide(&server, &admin_job, json!({"decision": "approve"})).await;
    assert_eq!(status, 403, "an approver is below an admin");
    // An approver reads and decides, and does nothing else.
    let (status, _) = server.get("/v1/runs").await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}}}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    let (status, _) = server
        .post(&format!("/v1/runs/{admin_gate}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, answer) = decide(
        &server,
        &approver_job,
        json!({"decision": "approve", "comments": "ship it"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["review"]["by"], "reviewer-ann");
    assert_eq!(answer["review"]["role"], "approver");

    server.token = Some(ADMIN);
    let (status, _) = decide(&server, &admin_job, json!({"decision": "approve"})).await;
    assert_eq!(status, 200);
    for run_id in [&admin_gate, &approver_gate] {
        let run = server.wait_for_state(run_id, "completed").await;
        assert_eq!(run["state"], "completed", "{run}");
    }
    // The decision events say who decided, with which role.
    let events = follow_events(&server, &approver_gate).await;
    let review = events
        .iter()
        .find(|e| e["kind"] == "review")
        .cloned()
        .unwrap_or_else(|| panic!("no review event in {events:?}"));
    assert_eq!(review["detail"]["by"]["name"], "reviewer-ann", "{review}");
    assert_eq!(review["detail"]["by"]["role"], "approver");
    assert_eq!(review["detail"]["comments"], "ship it");
    assert_eq!(review["to_state"], "approve");
    assert!(
        review["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("approved by reviewer-ann (approver): ship it")
    );
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_describes_the_decision_and_input_bodies() {
    let server = start(Vec::new()).await;
    let (_, doc) = server.get("/openapi.json").await;
    let body_ref = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        body_ref("/v1/jobs/{id}/decision"),
        "#/components/schemas/DecisionRequest"
    );
    assert_eq!(
        body_ref("/v1/jobs/{id}/input"),
        "#/components/schemas/InputRequest"
    );
    let decision = &doc["components"]["schemas"]["DecisionRequest"];
    for field in ["decision", "comments", "data", "final"] {
        assert!(
            decision["properties"][field].is_object(),
            "{field} in {decision}"
        );
    }
    assert_eq!(decision["required"], json!(["decision"]));
    let input = &doc["components"]["schemas"]["InputRequest"];
    assert_eq!(input["required"], json!(["data"]), "{input}");
    let gate = &doc["components"]["schemas"]["ApprovalGate"];
    for field in ["required", "timeout_ms", "on_timeout", "max_rework", "role"] {
        assert!(gate["properties"][field].is_object(), "{field} in {gate}");
    }
    for status in ["403", "404", "409"] {
        assert!(
            doc["paths"]["/v1/jobs/{id}/decision"]["post"]["responses"][status].is_object(),
            "{status}"
        );
    }
    server.stop().await;
}

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// A `warren serve` process on a free port over `plugins`; returns it and
/// its address.
fn spawn_server(data: &Path, plugins: &Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .arg("--plugins-dir")
        .arg(plugins)
        .env(
            "WARREN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("warren serve");
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn a_thousand_waiting_runs_hold_no_slot_and_little_memory() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = root.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    for name in ["speckit", "echo"] {
        std::fs::copy(plugin_path(name), plugins.join(format!("{name}.wasm"))).expect("copy");
    }
    let (mut child, base) = spawn_server(&root.path().join("data"), &plugins);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the server never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let submit = |pipeline: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let answer: Value = http
                .post(format!("{base}/v1/runs"))
                .json(&json!({"pipeline": pipeline, "input": {"feature": "x"}}))
                .send()
                .await
                .expect("submit")
                .json()
                .await
                .expect("json");
            answer["id"].as_str().expect("id").to_owned()
        }
    };
    let wait_all = |ids: Vec<String>, state: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            for id in ids {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let run: Value = http
                        .get(format!("{base}/v1/runs/{id}?jobs_limit=1"))
                        .send()
                        .await
                        .expect("get")
                        .json()
                        .await
                        .expect("json");
                    if run["state"] == state {
                        break;
                    }
                    assert!(Instant::now() < deadline, "run {id} never {state}: {run}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    let plain = json!({"jobs": {"a": {"plugin": "echo"}, "b": {"plugin": "echo", "needs": ["a"]}}});
    let gated = json!({"jobs": {
        "specify": {"plugin": "speckit", "approval": {"required": true}},
        "after": {"plugin": "echo", "needs": ["specify"]},
    }});
    // Warm up, then measure: 100 plain runs.
    let mut warm = Vec::new();
    for _ in 0..100 {
        warm.push(submit(plain.clone()).await);
    }
    wait_all(warm, "completed").await;
    let before = rss_bytes(child.id());
    let started = Instant::now();
    let mut alone = Vec::new();
    for _ in 0..100 {
        alone.push(submit(plain.clone()).await);
    }
    wait_all(alone, "completed").await;
    let alone = started.elapsed();

    let mut waiting = Vec::new();
    for _ in 0..1_000 {
        waiting.push(submit(gated.clone()).await);
    }
    wait_all(waiting.clone(), "waiting_approval").await;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("warren_attempts_running 0\n"), "{metrics}");
    // They wait as rows: none of their graphs is held in memory.
    assert!(metrics.contains("warren_runs_in_memory 0\n"), "{metrics}");
    assert!(
        metrics.contains("warren_runs_waiting{state=\"waiting_approval\"} 1000\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warren_jobs{state=\"waiting_approval\"} 1000\n"),
        "{metrics}"
    );

    // Other runs go through while they wait, at their rate: a loose bound,
    // for a shared machine (bench approvals measures it).
    let started = Instant::now();
    let mut others = Vec::new();
    for _ in 0..100 {
        others.push(submit(plain.clone()).await);
    }
    wait_all(others, "completed").await;
    let beside = started.elapsed();
    assert!(
        beside < alone * 4 + Duration::from_secs(1),
        "100 runs took {beside:?} beside 1,000 waiting, {alone:?} alone"
    );
    let after = rss_bytes(child.id());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 50 << 20,
        "RSS grew by {} MiB with 1,000 runs waiting ({} -> {} MiB)",
        grown >> 20,
        before >> 20,
        after >> 20
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the `warren` binary against the test server; returns its exit
/// code and stdout.
async fn warren_cli(server: &TestServer, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    command.args(args).args(["--server", &server.base]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run warren"))
        .await
        .expect("client");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code(), format!("{stdout}{stderr}"))
}

/// The README's walk of the `speckit` template, with the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speckit_phases_are_walked_from_the_cli() {
    let server = start(Vec::new()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get("/v1/templates/speckit").await.0 != 200 {
        assert!(Instant::now() < deadline, "the speckit template never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // --watch follows the run until it waits for a decision.
    let (code, out) = warren_cli(
        &server,
        &[
            "submit",
            "speckit",
            "--input",
            r#"{"feature":"export invoices"}"#,
            "--watch",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("run waiting_approval"), "{out}");
    let run_id = out.lines().next().expect("run id").trim().to_owned();

    let (code, out) = warren_cli(&server, &["pending"]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&run_id))
        .unwrap_or_else(|| panic!("run {run_id} in {out}"));
    assert!(
        line.contains("specify") && line.contains("waiting_approval"),
        "{line}"
    );
    assert!(line.contains("output: "), "{line}");
    let specify = line.split_whitespace().next().expect("job id").to_owned();

    let (code, out) = warren_cli(
        &server,
        &["reject", &specify, "--comment", "name the CSV columns"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("job {specify}: ready")), "{out}");
    let run = job_reaches(&server, &run_id, "specify", "waiting_approval").await;
    assert_eq!(job(&run, "specify")["output"]["revision"], 2, "{run}");

    for phase in ["specify", "plan", "tasks", "implement"] {
        let run = job_reaches(&server, &run_id, phase, "waiting_approval").await;
        let id = job_id(&run, phase);
        let (code, out) = warren_cli(&server, &["approve", &id, "--comment", "fine"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("job {id}: completed")), "{out}");
    }
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    // The comment made it through every phase after the rework.
    let text = job(&run, "implement")["output"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("As asked in review: name the CSV columns"),
        "{text}"
    );
    let (code, out) = warren_cli(&server, &["pending"]).await;
    assert_eq!(code, Some(0));
    assert!(!out.contains(&run_id), "{out}");

    // A final rejection from the CLI fails the phase.
    let (_, out) = warren_cli(
        &server,
        &["submit", "speckit", "--input", r#"{"feature":"x"}"#],
    )
    .await;
    let run_id = out.lines().next().expect("run id").trim().to_owned();
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let id = job_id(&run, "specify");
    let (code, out) = warren_cli(&server, &["reject", &id, "--comment", "no", "--final"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("job {id}: failed")), "{out}");
    let (code, out) = warren_cli(&server, &["approve", &id]).await;
    assert_eq!(code, Some(3), "a conflict is the caller's: {out}");
    assert!(out.contains("conflict"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn a_gated_agents_documents_wait_for_its_approval() {
    let server = TestServer::start_with(Vec::new(), |config| {
        let dir = config.plugins_dir.clone().expect("plugins folder");
        std::fs::copy(
            crate::support::guest_path("agent_ops"),
            dir.join("agent-ops.wasm"),
        )
        .expect("copy agent-ops");
    })
    .await;
    let pipeline = |content: &str| {
        json!({"jobs": {"draft": {
            "plugin": "agent-ops",
            "input": {"ops": [{"op": "write", "name": "spec", "content": content}]},
            "approval": {"required": true},
        }}})
    };
    let submit_in = |pipeline: Value| {
        let server = &server;
        async move {
            let (status, body) = server
                .post(
                    "/v1/runs",
                    &json!({"pipeline": pipeline, "input": {}, "story_id": "held-1"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().expect("id").to_owned()
        }
    };
    let document = |server: &TestServer| {
        let request = server.request(reqwest::Method::GET, "/v1/stories/held-1/documents/spec");
        async move {
            let response = request.send().await.expect("GET");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    // Rejected for good: the draft never becomes a version of the story.
    let run_id = submit_in(pipeline("first draft")).await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    assert_eq!(document(&server).await.0, 404, "held while it waits");
    let id = job_id(&run, "draft");
    let (status, _) = decide(
        &server,
        &id,
        json!({"decision": "reject", "comments": "no", "final": true}),
    )
    .await;
    assert_eq!(status, 200);
    server.wait_for_state(&run_id, "failed").await;
    assert_eq!(
        document(&server).await.0,
        404,
        "a rejected draft is not stored"
    );

    // Approved: stored, written by the job.
    let run_id = submit_in(pipeline("second draft")).await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    assert_eq!(document(&server).await.0, 404);
    let id = job_id(&run, "draft");
    let (status, _) = decide(&server, &id, json!({"decision": "approve"})).await;
    assert_eq!(status, 200);
    server.wait_for_state(&run_id, "completed").await;
    assert_eq!(document(&server).await, (200, "second draft".to_owned()));
    let (_, versions) = server
        .get("/v1/stories/held-1/documents/spec/versions")
        .await;
    let versions = versions["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["writer"]["job_id"], id.as_str(), "{versions:?}");
    server.stop().await;
}

#[tokio::test]
async fn pending_pages_on_even_when_the_last_job_of_a_page_is_decided() {
    let server = start(Vec::new()).await;
    let mut runs = Vec::new();
    for feature in ["a", "b", "c"] {
        let id = submit(
            &server,
            gated(json!({"required": true}), "on_success"),
            json!({"feature": feature}),
        )
        .await;
        server.wait_for_state(&id, "waiting_approval").await;
        runs.push(id);
    }
    let (status, page) = server.get("/v1/pending?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{page}");
    assert_eq!(jobs[0]["run_id"], runs[0].as_str(), "longest waiting first");
    let next = page["next"].as_str().expect("next").to_owned();
    // The page's last job stops waiting before the next page is asked for.
    let last = jobs[1]["job_id"].as_str().expect("id").to_owned();
    let (status, _) = decide(&server, &last, json!({"decision": "approve"})).await;
    assert_eq!(status, 200);
    let (status, page) = server
        .get(&format!("/v1/pending?limit=2&after={next}"))
        .await;
    assert_eq!(status, 200, "{page}");
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{page}");
    assert_eq!(jobs[0]["run_id"], runs[2].as_str());
    assert_eq!(page["next"], Value::Null);
    for bad in ["soon", "12.not-an-id", &last] {
        let (status, body) = server.get(&format!("/v1/pending?after={bad}")).await;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!("invalid_query")),
            "{bad}: {body}"
        );
    }
    let (status, _) = server.get("/v1/pending?state=running").await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn a_run_waiting_as_a_row_can_be_cancelled_retried_and_given_input() {
    let server = start(Vec::new()).await;
    let run_id = submit(
        &server,
        gated(json!({"required": true}), "on_success"),
        json!({"feature": "labels"}),
    )
    .await;
    server.wait_for_state(&run_id, "waiting_approval").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.metrics().await.contains("warren_runs_in_memory 0\n") {
        assert!(
            Instant::now() < deadline,
            "the waiting run stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = server
        .post(&format!("/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = server.wait_for_state(&run_id, "cancelled").await;
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(job(&run, "specify")["state"], "cancelled");
    assert_eq!(job(&run, "after")["state"], "cancelled");

    // A job waiting for input in a parked run is retried as any other.
    let run_id = submit(
        &server,
        json!({"jobs": {"specify": {"plugin": "speckit"}}}),
        json!({}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "needs_input").await;
    let id = job_id(&run, "specify");
    while !server.metrics().await.contains("warren_runs_in_memory 0\n") {
        assert!(
            Instant::now() < deadline,
            "the waiting run stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = server
        .post(&format!("/v1/jobs/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // An agent that asked for a document waits for it again rather than
    // run without it; input lets it go on.
    let run = server.wait_for_state(&run_id, "needs_input").await;
    assert_eq!(
        job(&run, "specify")["pending_docs"],
        json!(["feature"]),
        "{run}"
    );
    let (status, _) = server
        .post(
            &format!("/v1/jobs/{id}/input"),
            &json!({"data": {"feature": "labels"}}),
        )
        .await;
    assert_eq!(status, 200);
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    server.stop().await;
}

#[tokio::test]
async fn a_flow_answers_which_jobs_wait_for_input_or_a_decision() {
    let server = start(Vec::new()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get("/v1/templates/speckit").await.0 != 200 {
        assert!(Instant::now() < deadline, "the speckit template never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, answer) = server
        .post(
            "/v1/flows/speckit/run",
            &json!({"input": {}, "wait_ms": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "needs_input", "{answer}");
    assert_eq!(answer["awaiting_input"][0]["job"], "specify", "{answer}");
    let id = answer["awaiting_input"][0]["job_id"]
        .as_str()
        .expect("job id")
        .to_owned();
    let (status, _) = server
        .post(
            &format!("/v1/jobs/{id}/input"),
            &json!({"data": {"feature": "search"}}),
        )
        .await;
    assert_eq!(status, 200);
    let run_id = answer["run_id"].as_str().expect("run id").to_owned();
    server.wait_for_state(&run_id, "waiting_approval").await;

    let (status, answer) = server
        .post(
            "/v1/flows/speckit/run",
            &json!({"input": {"feature": "tags"}, "wait_ms": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "waiting_approval", "{answer}");
    assert_eq!(answer["awaiting_decision"][0]["job"], "specify", "{answer}");
    assert!(answer.get("awaiting_input").is_none(), "{answer}");
    server.stop().await;
}

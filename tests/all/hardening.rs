//! What a guest hands the host is bounded: error texts, needs-input lists,
//! JSON depth, names echoed back, artifact bytes written; and names cannot
//! hide what they say.

use std::sync::Arc;

use serde_json::{Value, json};
use warren_sandbox::runtime::{AttemptFailure, AttemptOutcome, AttemptRequest, JobFailure};
use warren_vocabulary::text::{MAX_ERROR_BYTES, MAX_NEED_BYTES, MAX_NEEDS};

use crate::support::TestHost;

async fn toolbox(host: &TestHost, request: AttemptRequest) -> AttemptOutcome {
    let plugin = host.guest("toolbox");
    host.runtime.run_attempt(&plugin, request).await
}

fn results(outcome: &AttemptOutcome) -> Vec<Value> {
    let output = outcome.result.as_deref().expect("toolbox succeeds");
    serde_json::from_str(output).expect("results")
}

fn job_failure(outcome: &AttemptOutcome) -> JobFailure {
    match &outcome.result {
        Err(AttemptFailure::Job { error }) => error.clone(),
        other => panic!("expected a job failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_error_message_is_kept_bounded() {
    let host = TestHost::new();
    let ops = json!([{"op": "fail_big", "kind": "permanent", "bytes": 8 << 20}]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    let JobFailure::Permanent(message) = job_failure(&outcome) else {
        panic!("expected a permanent failure");
    };
    assert!(message.len() <= MAX_ERROR_BYTES, "{} bytes", message.len());
    assert!(message.starts_with("xxxx"), "{message:.40}");
    assert!(
        message.ends_with(&format!("… ({} bytes cut)", 8 << 20)),
        "{}",
        &message[message.len() - 40..]
    );
}

#[tokio::test]
async fn a_huge_needs_input_list_is_kept_bounded() {
    let host = TestHost::new();
    let ops = json!([{"op": "fail_big", "kind": "needs_input", "bytes": 10_000, "items": 5_000}]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    let JobFailure::NeedsInput(needs) = job_failure(&outcome) else {
        panic!("expected needs-input");
    };
    assert_eq!(needs.len(), MAX_NEEDS);
    assert!(needs.iter().all(|n| n.len() <= MAX_NEED_BYTES));
    assert!(needs[0].ends_with("… (10000 bytes cut)"), "{}", needs[0]);
}

#[tokio::test]
async fn output_nested_too_deep_is_refused() {
    let host = TestHost::new();
    let ops = json!([{"op": "nest", "depth": 1_000}]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    let JobFailure::Permanent(message) = job_failure(&outcome) else {
        panic!("expected a permanent failure");
    };
    assert!(message.contains("nests 1002 levels deep"), "{message}");

    // 126 arrays inside the results list and the op's object: 128 levels.
    let ops = json!([{"op": "nest", "depth": 126}]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
}

#[tokio::test]
async fn a_spawn_input_nested_too_deep_is_refused() {
    let host = TestHost::new();
    let ops = json!([
        {"op": "spawn_nested", "plugin": "echo", "depth": 1_000},
        {"op": "spawn_nested", "plugin": "echo", "depth": 128},
    ]);
    let mut request = AttemptRequest::new("toolbox", ops.to_string());
    request.plugin_lookup = Some(Arc::new(|name: &str| name == "echo"));
    let outcome = toolbox(&host, request).await;
    let results = results(&outcome);
    let refused = results[0]["err"].as_str().expect("refused");
    assert!(refused.contains("nests 1000 levels deep"), "{refused}");
    assert!(results[1]["ok"].is_string(), "{}", results[1]);
    assert_eq!(outcome.spawned.len(), 1);
}

#[tokio::test]
async fn artifact_names_with_bidirectional_controls_are_refused() {
    let host = TestHost::new();
    let ops = json!([
        {"op": "put", "name": "report\u{202e}txt.exe", "data": "x"},
        {"op": "put", "name": "a\u{2066}b", "data": "x"},
        {"op": "put", "name": "résumé.md", "data": "x"},
    ]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    let results = results(&outcome);
    for refused in &results[..2] {
        let error = refused["err"].as_str().expect("refused");
        assert!(error.contains("bidirectional"), "{error}");
    }
    assert!(results[2]["ok"].is_string());
    let names: Vec<&str> = outcome.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["résumé.md"]);
}

#[tokio::test]
async fn an_error_about_a_huge_name_does_not_echo_it() {
    let host = TestHost::new();
    let name = "n".repeat(1 << 20);
    let ops = json!([
        {"op": "get", "name": name},
        {"op": "put", "name": name, "data": "x"},
    ]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    for result in results(&outcome) {
        let error = result["err"].as_str().expect("refused");
        assert!(error.len() < 300, "{} bytes", error.len());
        assert!(error.contains("(1048576 bytes)"), "{error}");
    }
}

#[tokio::test]
async fn replacing_an_artifact_still_counts_its_bytes() {
    let host = TestHost::new();
    let data = "x".repeat(400 << 10);
    let put = json!({"op": "put", "name": "same.txt", "data": data});
    let ops = json!([put, put, put]);
    let mut request = AttemptRequest::new("toolbox", ops.to_string());
    request.limits.max_artifact_bytes = 1 << 20;
    let outcome = toolbox(&host, request).await;
    let results = results(&outcome);
    assert!(results[0]["ok"].is_string());
    assert!(results[1]["ok"].is_string());
    let refused = results[2]["err"]
        .as_str()
        .expect("the third put is refused");
    assert!(refused.contains("exceed 1048576 bytes"), "{refused}");
}

#[tokio::test]
async fn a_key_prefix_with_nul_finds_its_keys() {
    let host = TestHost::new();
    let ops = json!([
        {"op": "mem_set", "scope": "run", "key": "a\u{0}b", "value": "1"},
        {"op": "mem_set", "scope": "run", "key": "a\u{0}c", "value": "2"},
        {"op": "mem_set", "scope": "run", "key": "a", "value": "3"},
        {"op": "mem_keys", "scope": "run", "prefix": "a\u{0}"},
    ]);
    let outcome = toolbox(&host, AttemptRequest::new("toolbox", ops.to_string())).await;
    assert_eq!(results(&outcome)[3]["ok"], json!(["a\u{0}b", "a\u{0}c"]));
}

#[tokio::test]
async fn a_run_input_nested_too_deep_is_refused_by_the_api() {
    let server = crate::api::TestServer::open().await;
    let nested = |depth: usize| (0..depth).fold(Value::Null, |inner, _| json!([inner]));
    let pipeline = json!({"jobs": {"a": {"plugin": "echo"}}});
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": pipeline, "input": nested(1_000)}),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("invalid_json")),
        "{body}"
    );
    // Within the limit (the body's object holds the input): accepted.
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": pipeline, "input": nested(100)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

#[test]
fn one_process_at_a_time_uses_a_data_directory() {
    let data = tempfile::tempdir().expect("tempdir");
    let first = crate::support::host_builder(data.path())
        .open()
        .expect("first host");
    let error = crate::support::host_builder(data.path())
        .open()
        .expect_err("a second host on the same directory is refused")
        .to_string();
    assert!(
        error.contains("in use by another warren process"),
        "{error}"
    );
    drop(first);
    crate::support::host_builder(data.path())
        .open()
        .expect("the directory is free again");
}

#[tokio::test]
async fn new_runs_are_refused_while_the_disk_is_nearly_full() {
    let server = crate::api::TestServer::start_with(Vec::new(), |config| {
        config.min_free_disk_bytes = u64::MAX;
    })
    .await;
    let pipeline = json!({"jobs": {"a": {"plugin": "echo"}}});
    let (status, body) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("insufficient_storage")),
        "{body}"
    );
    let (status, runs) = server.get("/v1/runs").await;
    assert_eq!(status, 200);
    assert_eq!(runs["runs"], json!([]), "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn story_memory_stops_at_its_byte_quota() {
    let host = TestHost::new();
    let ops = json!([
        {"op": "mem_fill", "scope": "story", "prefix": "k", "count": 80, "bytes": 1_000_000},
    ]);
    let mut request = AttemptRequest::new("toolbox", ops.to_string());
    request.story_id = Some("big-story".into());
    let outcome = toolbox(&host, request).await;
    let report = &results(&outcome)[0]["ok"];
    let quota = warren_sandbox::capabilities::memory::NAMESPACE_QUOTA.max_bytes;
    // Each key holds 1,000,000 bytes and its name.
    assert_eq!(report["stored"], quota / 1_000_002, "{report}");
    let refused = report["refused"].as_str().expect("refused");
    assert!(
        refused.contains(&format!("at most {quota} bytes")),
        "{refused}"
    );
}

//! The runtime with first-party plugins and the toolbox guest: outputs,
//! usage, the compile cache and every capability.

use std::sync::Arc;

use serde_json::{Value, json};
use warren_sandbox::runtime::{
    AttemptFailure, AttemptRequest, CacheOutcome, JobFailure, Runtime, RuntimeConfig,
};

use crate::support::{TestHost, plugin_path};

/// Runs the toolbox guest with `ops` and returns its per-op results.
async fn toolbox(
    host: &TestHost,
    request: AttemptRequest,
) -> (Vec<Value>, warren_sandbox::runtime::AttemptOutcome) {
    let plugin = host.guest("toolbox");
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    let output = outcome.result.clone().expect("toolbox succeeds");
    (serde_json::from_str(&output).expect("results"), outcome)
}

fn ops(ops: Value) -> String {
    ops.to_string()
}

#[tokio::test]
async fn echo_returns_its_input_and_usage_is_measured() {
    let host = TestHost::new();
    let echo = host.plugin("echo");
    assert_eq!(echo.name(), "echo");
    assert!(
        !echo.uses_filesystem(),
        "echo opens no files, so it gets no scratch dirs"
    );
    let outcome = host.run(&echo, r#"{"text":"hello","n":[1,2]}"#).await;
    assert_eq!(
        outcome.result.as_deref(),
        Ok(r#"{"text":"hello","n":[1,2]}"#)
    );
    assert!(outcome.usage.fuel_consumed > 0);
    assert!(
        outcome.usage.peak_memory_bytes >= 64 << 10,
        "at least one wasm page"
    );
    assert!(outcome.usage.wall_time.as_nanos() > 0);
}

#[tokio::test]
async fn wordcount_counts_input_and_inputs_and_writes_its_report_as_an_artifact() {
    let host = TestHost::new();
    let inputs = tempfile::tempdir().expect("tempdir");
    std::fs::write(inputs.path().join("a.txt"), "one two three").expect("write");
    std::fs::create_dir(inputs.path().join("sub")).expect("mkdir");
    std::fs::write(inputs.path().join("sub/b.md"), "four five").expect("write");
    let plugin = host.plugin("wordcount");
    let mut request = AttemptRequest::new("wordcount", r#"{"text":"alpha beta"}"#);
    request.in_dir = Some(inputs.path().to_path_buf());
    let outcome = host.runtime.run_attempt(&plugin, request).await;

    let output: Value = serde_json::from_str(outcome.result.as_deref().expect("ok")).expect("json");
    assert_eq!(output["input_words"], 2);
    assert_eq!(output["total_words"], 7);
    assert_eq!(
        output["files"],
        json!([{"path": "/in/a.txt", "words": 3}, {"path": "/in/sub/b.md", "words": 2}])
    );
    assert_eq!(outcome.artifacts.len(), 1);
    let report = &outcome.artifacts[0];
    assert_eq!(report.name, "report.json");
    assert_eq!(report.producer, "wordcount");
    let stored = host
        .runtime
        .artifact_store()
        .get(&report.sha256, 1 << 20)
        .expect("stored");
    assert_eq!(stored.len() as u64, report.size);
    assert_eq!(
        warren_sandbox::artifact_store::sha256_hex(&stored),
        report.sha256
    );
    let stored: Value = serde_json::from_slice(&stored).expect("report is JSON");
    assert_eq!(stored["total_words"], 7);
    assert_eq!(
        outcome.log.lines.last().map(|l| l.message.as_str()),
        Some("counted 7 words")
    );
}

#[tokio::test]
async fn a_restarted_runtime_loads_compiled_plugins_from_the_cache() {
    let data = tempfile::tempdir().expect("tempdir");
    let first = Runtime::new(RuntimeConfig::new(data.path())).expect("runtime");
    let plugin = first.load_file(&plugin_path("wordcount")).expect("load");
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Compiled);
    drop(first);
    let second = Runtime::new(RuntimeConfig::new(data.path())).expect("runtime");
    let plugin = second.load_file(&plugin_path("wordcount")).expect("load");
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Hit);
    let outcome = second
        .run_attempt(&plugin, AttemptRequest::new("wordcount", "{}"))
        .await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
}

#[test]
fn rejected_plugins_leave_nothing_in_the_cache() {
    let data = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeConfig::new(data.path())).expect("runtime");
    for guest in ["wasi-command", "unknown_import"] {
        assert!(
            runtime
                .load_file(&crate::support::guest_path(guest))
                .is_err()
        );
    }
    let cached = std::fs::read_dir(data.path().join("cache"))
        .expect("cache")
        .count();
    assert_eq!(cached, 0);
}

#[tokio::test]
async fn a_damaged_cache_file_is_recompiled() {
    let data = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeConfig::new(data.path())).expect("runtime");
    runtime.load_file(&plugin_path("echo")).expect("load");
    for entry in std::fs::read_dir(data.path().join("cache")).expect("cache") {
        std::fs::write(entry.expect("entry").path(), b"garbage").expect("damage");
    }
    let plugin = runtime.load_file(&plugin_path("echo")).expect("reload");
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Compiled);
    let outcome = runtime
        .run_attempt(&plugin, AttemptRequest::new("echo", "[1]"))
        .await;
    assert_eq!(outcome.result.as_deref(), Ok("[1]"));
}

#[tokio::test]
async fn story_memory_persists_across_runs_and_run_memory_is_isolated_per_run() {
    let host = TestHost::new();
    let mut first = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "mem_set", "scope": "story", "key": "greeting", "value": "hello"},
            {"op": "mem_set", "scope": "run", "key": "scratch", "value": "mine"},
            {"op": "mem_get", "scope": "run", "key": "scratch"},
        ])),
    );
    first.story_id = Some("story-1".into());
    let (results, _) = toolbox(&host, first).await;
    assert_eq!(results[2], json!({"ok": "mine"}));

    let mut second = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "mem_get", "scope": "story", "key": "greeting"},
            {"op": "mem_get", "scope": "run", "key": "scratch"},
            {"op": "mem_keys", "scope": "story", "prefix": "gr"},
            {"op": "mem_delete", "scope": "story", "key": "greeting"},
            {"op": "mem_delete", "scope": "story", "key": "greeting"},
        ])),
    );
    second.story_id = Some("story-1".into());
    let (results, _) = toolbox(&host, second).await;
    assert_eq!(results[0], json!({"ok": "hello"}), "same story, new run");
    assert_eq!(
        results[1],
        json!({"ok": null}),
        "another run's memory is invisible"
    );
    assert_eq!(results[2], json!({"ok": ["greeting"]}));
    assert_eq!(results[3], json!({"ok": true}));
    assert_eq!(results[4], json!({"ok": false}));

    let mut other_story = AttemptRequest::new(
        "toolbox",
        ops(json!([{"op": "mem_get", "scope": "story", "key": "greeting"}])),
    );
    other_story.story_id = Some("story-2".into());
    let (results, _) = toolbox(&host, other_story).await;
    assert_eq!(results[0], json!({"ok": null}));
}

#[tokio::test]
async fn story_memory_is_denied_without_a_story_and_bad_keys_are_refused() {
    let host = TestHost::new();
    let request = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "mem_get", "scope": "story", "key": "k"},
            {"op": "mem_set", "scope": "run", "key": "", "value": "v"},
            {"op": "mem_set", "scope": "run", "key": "x".repeat(600), "value": "v"},
        ])),
    );
    let (results, _) = toolbox(&host, request).await;
    assert!(
        results[0]["err"]
            .as_str()
            .expect("err")
            .contains("access denied"),
        "{}",
        results[0]
    );
    assert!(
        results[1]["err"].as_str().expect("err").contains("invalid"),
        "{}",
        results[1]
    );
    assert!(
        results[2]["err"].as_str().expect("err").contains("invalid"),
        "{}",
        results[2]
    );
}

#[tokio::test]
async fn artifacts_can_be_put_read_listed_and_left_in_out() {
    let host = TestHost::new();
    let request = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "put", "name": "notes/a.txt", "data": "alpha"},
            {"op": "get", "name": "notes/a.txt"},
            {"op": "put", "name": "../escape", "data": "x"},
            {"op": "get", "name": "missing"},
            {"op": "write_out", "name": "b.txt", "data": "beta"},
            {"op": "list"},
        ])),
    );
    let (results, outcome) = toolbox(&host, request).await;
    assert_eq!(
        results[0]["ok"],
        json!("8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8")
    );
    assert_eq!(results[1], json!({"ok": "alpha"}));
    assert!(
        results[2]["err"]
            .as_str()
            .expect("err")
            .contains("invalid artifact name")
    );
    assert!(
        results[3]["err"]
            .as_str()
            .expect("err")
            .contains("not found")
    );
    assert_eq!(
        results[5],
        json!({"ok": [{"name": "notes/a.txt", "size": 5}]})
    );
    let names: Vec<&str> = outcome.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["notes/a.txt", "b.txt"]);
}

#[tokio::test]
async fn upstream_artifacts_are_readable_by_job_and_name() {
    let host = TestHost::new();
    let (_, producer) = toolbox(
        &host,
        AttemptRequest::new(
            "toolbox",
            ops(json!([{"op": "put", "name": "plan.md", "data": "the plan"}])),
        ),
    )
    .await;
    let mut upstream = producer.artifacts.clone();
    upstream[0].producer = "planner".into();
    let mut request = AttemptRequest::new(
        "toolbox",
        ops(json!([{"op": "get", "name": "planner/plan.md"}, {"op": "list"}])),
    );
    request.upstream_artifacts = upstream;
    let (results, _) = toolbox(&host, request).await;
    assert_eq!(results[0], json!({"ok": "the plan"}));
    assert_eq!(
        results[1],
        json!({"ok": [{"name": "planner/plan.md", "size": 8}]})
    );
}

#[tokio::test]
async fn an_artifact_budget_is_enforced() {
    let host = TestHost::new();
    let mut request = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "put", "name": "a", "data": "x".repeat(600)},
            {"op": "put", "name": "b", "data": "x".repeat(600)},
        ])),
    );
    request.limits.max_artifact_bytes = 1000;
    let (results, outcome) = toolbox(&host, request).await;
    assert!(results[0]["ok"].is_string());
    assert!(
        results[1]["err"]
            .as_str()
            .expect("err")
            .contains("limit exceeded")
    );
    assert_eq!(outcome.artifacts.len(), 1);
}

#[tokio::test]
async fn spawn_records_children_within_depth_and_count_limits() {
    let host = TestHost::new();
    let spawn = |plugin: &str| json!({"op": "spawn", "plugin": plugin, "input": {"n": 1}, "reason": "more work"});
    let mut request = AttemptRequest::new(
        "toolbox",
        ops(json!([
            spawn("echo"),
            spawn("nope"),
            spawn("../echo"),
            spawn("echo")
        ])),
    );
    request.plugin_lookup = Some(Arc::new(|name: &str| name == "echo"));
    request.limits.max_spawned_jobs = 2;
    let (results, outcome) = toolbox(&host, request).await;
    assert!(results[0]["ok"].is_string());
    assert!(
        results[1]["err"]
            .as_str()
            .expect("err")
            .contains("not found")
    );
    assert!(results[2]["err"].as_str().expect("err").contains("invalid"));
    assert!(results[3]["ok"].is_string());
    assert_eq!(outcome.spawned.len(), 2);
    assert_eq!(outcome.spawned[0].plugin, "echo");
    assert_eq!(outcome.spawned[0].input, r#"{"n":1}"#);
    assert_eq!(outcome.spawned[0].reason, "more work");
    assert_eq!(results[0]["ok"], json!(outcome.spawned[0].job_id));

    let mut over = AttemptRequest::new(
        "toolbox",
        ops(json!([spawn("echo"), spawn("echo"), spawn("echo")])),
    );
    over.plugin_lookup = Some(Arc::new(|_: &str| true));
    over.limits.max_spawned_jobs = 2;
    let (results, _) = toolbox(&host, over).await;
    assert!(
        results[2]["err"]
            .as_str()
            .expect("err")
            .contains("at most 2 jobs")
    );

    let mut deep = AttemptRequest::new("toolbox", ops(json!([spawn("echo")])));
    deep.plugin_lookup = Some(Arc::new(|_: &str| true));
    deep.spawn_depth = deep.max_spawn_depth;
    let (results, _) = toolbox(&host, deep).await;
    assert!(results[0]["err"].as_str().expect("err").contains("deep"));
}

#[tokio::test]
async fn progress_logs_and_context_reach_the_host() {
    let host = TestHost::new();
    let mut request = AttemptRequest::new(
        "toolbox",
        ops(json!([
            {"op": "context"},
            {"op": "progress", "percent": 250, "summary": "almost"},
            {"op": "log", "message": "hello host"},
        ])),
    );
    request.attempt = 3;
    request.story_id = Some("s-9".into());
    let (results, outcome) = toolbox(&host, request.clone()).await;
    assert_eq!(results[0]["ok"]["attempt"], 3);
    assert_eq!(results[0]["ok"]["story_id"], "s-9");
    assert_eq!(results[0]["ok"]["run_id"], json!(request.run_id));
    let progress = outcome.progress.expect("progress");
    assert_eq!(
        (progress.percent, progress.summary.as_str()),
        (100, "almost")
    );
    assert!(outcome.log.lines.iter().any(|l| l.message == "hello host"));
}

#[tokio::test]
async fn job_errors_keep_their_kind() {
    let host = TestHost::new();
    let plugin = host.guest("toolbox");
    for (kind, expected) in [
        ("retryable", JobFailure::Retryable("flaky".into())),
        ("permanent", JobFailure::Permanent("flaky".into())),
        ("needs_input", JobFailure::NeedsInput(vec!["flaky".into()])),
    ] {
        let input = ops(json!([{"op": "fail", "kind": kind, "message": "flaky"}]));
        let outcome = host.run(&plugin, &input).await;
        assert_eq!(outcome.result, Err(AttemptFailure::Job { error: expected }));
    }
    // Invalid input is a permanent error from the SDK, not a trap.
    let outcome = host.run(&plugin, r#"{"not": "a list"}"#).await;
    assert!(matches!(
        outcome.result,
        Err(AttemptFailure::Job {
            error: JobFailure::Permanent(ref m)
        }) if m.contains("invalid input")
    ));
}

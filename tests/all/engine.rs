//! The orchestration engine with real plugins and a real SQLite file:
//! dependency conditions, retries, concurrency, artifacts, spawn,
//! cancellation and history.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warren::db::runs::{self, RunRecord};
use warren::scheduler::spec::{PipelineSpec, SpecError};
use warren::scheduler::{Engine, EngineConfig, EngineError, PipelineSource, Submission};
use warren_vocabulary::{JobState, RunState};

use crate::support::{TEST_GUESTS_DIR, host_builder, plugin_path};

struct EngineHost {
    data: tempfile::TempDir,
    engine: Engine,
    store: std::sync::Arc<warren_sandbox::artifact_store::ArtifactStore>,
}

impl EngineHost {
    async fn new(config: EngineConfig) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let host = host_builder(data.path()).open().expect("host");
        let (runtime, plugins) = (&host.runtime, &host.plugins);
        for name in [
            "echo",
            "wordcount",
            "checksum",
            "planner",
            "dev",
            "tester",
            "report",
        ] {
            plugins.insert(runtime.load_file(&plugin_path(name)).expect("plugin"));
        }
        for name in ["toolbox", "spin_forever", "panics"] {
            let path = std::path::Path::new(TEST_GUESTS_DIR).join(format!("{name}.wasm"));
            plugins.insert(runtime.load_file(&path).expect("guest"));
        }
        let engine = host.start_engine(config).await.expect("engine");
        Self {
            data,
            engine,
            store: host.runtime.artifact_store().clone(),
        }
    }

    async fn run(&self, pipeline: Value) -> RunRecord {
        let id = self.submit(pipeline, json!({})).await.expect("submitted");
        self.engine
            .wait(&id, Duration::from_secs(30))
            .await
            .expect("run ends")
    }

    async fn submit(&self, pipeline: Value, input: Value) -> Result<String, EngineError> {
        let spec: PipelineSpec = serde_json::from_value(pipeline).expect("pipeline parses");
        self.engine
            .submit(Submission {
                pipeline: PipelineSource::Inline(spec),
                input,
                story_id: None,
                in_dir: None,
                replay: None,
                budget: None,
            })
            .await
    }

    fn attempts(&self, job_id: &str) -> Vec<runs::AttemptRecord> {
        self.engine
            .database()
            .read(|c| runs::attempts(c, job_id))
            .expect("attempts")
    }
}

fn job<'a>(run: &'a RunRecord, name: &str) -> &'a runs::JobRecord {
    run.jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name} in {:#?}", run.jobs))
}

fn toolbox(ops: Value) -> Value {
    json!({"plugin": "toolbox", "input": ops})
}

#[tokio::test]
async fn dependency_conditions_decide_what_runs_and_what_is_skipped() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {
            "check": toolbox(json!([{"op": "fail", "kind": "permanent", "message": "broken"}])),
            "deploy": {"plugin": "echo", "needs": ["check"]},
            "announce": {"plugin": "echo", "needs": ["deploy"]},
            "alert": {"plugin": "echo", "needs": [{"job": "check", "when": "on_failure"}]},
            "report": {"plugin": "echo", "needs": [{"job": "check", "when": "always"}, {"job": "announce", "when": "always"}]},
            "celebrate": {"plugin": "echo", "needs": [{"job": "alert", "when": "on_failure"}]},
        }}))
        .await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(job(&run, "check").state, JobState::Failed);
    assert_eq!(job(&run, "deploy").state, JobState::Skipped);
    assert_eq!(
        job(&run, "announce").state,
        JobState::Skipped,
        "skips propagate"
    );
    assert_eq!(job(&run, "alert").state, JobState::Completed);
    assert_eq!(job(&run, "report").state, JobState::Completed);
    assert_eq!(job(&run, "celebrate").state, JobState::Skipped);
    assert_eq!(job(&run, "deploy").attempts, 0);
}

#[tokio::test]
async fn outputs_reach_dependents_by_job_name_and_the_run_input_fills_missing_inputs() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let id = host
        .submit(
            json!({"jobs": {
                "first": {"plugin": "echo"},
                "second": {"plugin": "echo", "input": {"fixed": true}},
                "third": toolbox(json!([{"op": "upstream"}])).as_object().cloned().map(|mut o| {
                    o.insert("needs".into(), json!(["first", "second"]));
                    Value::Object(o)
                }).expect("object"),
            }}),
            json!({"from": "run"}),
        )
        .await
        .expect("submitted");
    let run = host
        .engine
        .wait(&id, Duration::from_secs(30))
        .await
        .expect("ends");
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        job(&run, "third").output,
        Some(json!([{"ok": {"first": {"from": "run"}, "second": {"fixed": true}}}]))
    );
}

#[tokio::test]
async fn retryable_failures_are_retried_with_growing_backoff() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {"flaky": {
            "plugin": "toolbox",
            "input": [{"op": "fail_until", "attempt": 3}],
            "retry": {"max_attempts": 4, "initial_backoff_ms": 200, "max_backoff_ms": 5000},
        }}}))
        .await;
    assert_eq!(run.state, RunState::Completed);
    let flaky = job(&run, "flaky");
    assert_eq!(flaky.attempts, 3);
    assert_eq!(flaky.output, Some(json!([{"ok": 3}])));
    let attempts = host.attempts(&flaky.id);
    let states: Vec<&str> = attempts.iter().map(|a| a.state.as_str()).collect();
    assert_eq!(states, ["failed", "failed", "succeeded"]);
    // Backoff before retry n is between half and all of 200 ms * 2^(n-2).
    let gap = |i: usize| attempts[i].started_at - attempts[i - 1].finished_at.expect("finished");
    // The first retry waits 100 to 200 ms, the second 200 to 400 ms (plus
    // scheduling slack): the delay grows.
    assert!((100..=260).contains(&gap(1)), "first gap {} ms", gap(1));
    assert!((200..=460).contains(&gap(2)), "second gap {} ms", gap(2));
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_retries_stop_at_the_maximum() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let retry = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 20});
    let run = host
        .run(json!({"jobs": {
            "permanent": {"plugin": "toolbox", "retry": retry,
                          "input": [{"op": "fail", "kind": "permanent", "message": "no"}]},
            "always_failing": {"plugin": "toolbox", "retry": retry,
                               "input": [{"op": "fail", "kind": "retryable", "message": "again"}]},
            "asks": {"plugin": "toolbox", "retry": retry,
                     "input": [{"op": "fail", "kind": "needs_input", "message": "an approval"}]},
        }}))
        .await;
    assert_eq!(job(&run, "permanent").attempts, 1);
    assert_eq!(job(&run, "permanent").state, JobState::Failed);
    assert_eq!(job(&run, "always_failing").attempts, 3);
    assert_eq!(job(&run, "always_failing").state, JobState::Failed);
    assert_eq!(job(&run, "asks").state, JobState::NeedsInput);
    assert_eq!(job(&run, "asks").attempts, 1);
    assert_eq!(
        job(&run, "asks").error,
        Some(json!({"type": "job", "error": {"kind": "needs_input", "detail": ["an approval"]}}))
    );
}

/// Largest number of attempts running at the same time.
fn max_overlap(attempts: &[runs::AttemptRecord]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for a in attempts {
        edges.push((a.started_at, 1));
        // Ends sort before starts at the same millisecond.
        edges.push((a.finished_at.expect("finished"), -1));
    }
    edges.sort();
    let (mut current, mut max) = (0i32, 0i32);
    for (_, delta) in edges {
        current += delta;
        max = max.max(current);
    }
    max as usize
}

#[tokio::test]
async fn concurrency_limits_are_never_exceeded() {
    let host = EngineHost::new(EngineConfig {
        max_concurrent_jobs: 3,
        ..EngineConfig::default()
    })
    .await;
    let sleepy = |n: usize| -> Value {
        let jobs: serde_json::Map<String, Value> = (0..n)
            .map(|i| {
                (
                    format!("sleep{i}"),
                    toolbox(json!([{"op": "sleep_ms", "ms": 150}])),
                )
            })
            .collect();
        Value::Object(jobs)
    };
    let one = host
        .submit(json!({"max_parallel": 2, "jobs": sleepy(6)}), json!({}))
        .await
        .expect("one");
    let two = host
        .submit(json!({"max_parallel": 2, "jobs": sleepy(6)}), json!({}))
        .await
        .expect("two");
    let mut all = Vec::new();
    for id in [&one, &two] {
        let run = host
            .engine
            .wait(id, Duration::from_secs(30))
            .await
            .expect("ends");
        assert_eq!(run.state, RunState::Completed);
        let attempts: Vec<_> = run.jobs.iter().flat_map(|j| host.attempts(&j.id)).collect();
        assert_eq!(max_overlap(&attempts), 2, "per-run max_parallel");
        all.extend(attempts);
    }
    assert_eq!(max_overlap(&all), 3, "engine-wide limit");
}

#[tokio::test]
async fn artifacts_reach_dependents_under_in_and_their_use_is_recorded() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {
            "write": toolbox(json!([{"op": "write_out", "name": "notes.txt", "data": "one two three four"}])),
            "count": {"plugin": "wordcount", "input": {"text": ""}, "needs": ["write"]},
        }}))
        .await;
    assert_eq!(run.state, RunState::Completed);
    let count = job(&run, "count");
    assert_eq!(
        count.output.as_ref().map(|o| o["files"].clone()),
        Some(json!([{"path": "/in/write/notes.txt", "words": 4}]))
    );
    let write = job(&run, "write");
    let uses = host
        .engine
        .database()
        .read(|c| runs::artifact_uses(c, &count.id))
        .expect("uses");
    assert_eq!(uses, vec![(write.id.clone(), "notes.txt".to_owned(), 1)]);
    let produced = host
        .engine
        .database()
        .read(|c| runs::job_artifacts(c, &write.id))
        .expect("artifacts");
    assert_eq!(produced.len(), 1);
    assert_eq!(
        produced[0].sha256,
        warren_sandbox::artifact_store::sha256_hex(b"one two three four")
    );
}

#[tokio::test]
async fn spawned_jobs_link_to_their_parent_and_hold_back_its_dependents() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {
            "tester": toolbox(json!([{"op": "spawn", "plugin": "toolbox",
                "input": [{"op": "sleep_ms", "ms": 200}], "reason": "the check failed once"}])),
            "report": {"plugin": "echo", "needs": ["tester"]},
        }}))
        .await;
    assert_eq!(run.state, RunState::Completed);
    let tester = job(&run, "tester");
    let child = run
        .jobs
        .iter()
        .find(|j| j.parent_job_id.is_some())
        .expect("a spawned job");
    assert_eq!(child.parent_job_id.as_deref(), Some(tester.id.as_str()));
    assert_eq!(child.spawn_reason.as_deref(), Some("the check failed once"));
    assert_eq!(child.depth, 1);
    assert_eq!(child.state, JobState::Completed);
    assert!(child.name.starts_with("toolbox~"), "{}", child.name);
    assert_eq!(
        tester.output.as_ref().map(|o| o[0]["ok"].clone()),
        Some(json!(child.id))
    );
    let report = job(&run, "report");
    let child_end = host.attempts(&child.id)[0].finished_at.expect("finished");
    let report_start = host.attempts(&report.id)[0].started_at;
    assert!(
        report_start >= child_end,
        "report started before the spawned job ended"
    );
}

#[tokio::test]
async fn cancelling_a_run_stops_an_infinite_loop_within_a_second() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let id = host
        .submit(
            json!({"jobs": {
                "spin": {"plugin": "spin_forever", "limits": {"timeout_ms": 60000}},
                "after": {"plugin": "echo", "needs": ["spin"]},
            }}),
            json!({}),
        )
        .await
        .expect("submitted");
    let started = Instant::now();
    loop {
        let run = host.engine.run(&id).await.expect("read").expect("run");
        if job(&run, "spin").state == JobState::Running {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled_at = Instant::now();
    assert!(host.engine.cancel(&id).await.expect("cancel"));
    let run = host
        .engine
        .wait(&id, Duration::from_secs(5))
        .await
        .expect("ends");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(job(&run, "spin").state, JobState::Cancelled);
    assert_eq!(job(&run, "after").state, JobState::Cancelled);
    assert!(
        !host.engine.cancel(&id).await.expect("cancel again"),
        "already ended"
    );
}

#[tokio::test]
async fn every_state_change_is_in_the_append_only_history() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {"only": {"plugin": "echo"}}}))
        .await;
    let events = host
        .engine
        .database()
        .read(|c| warren::db::reads::events_after(c, Some(&run.id), 0, 1_000))
        .expect("events");
    let transitions: Vec<(Option<&str>, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.from_state.as_deref(),
                e.to_state.as_str(),
                e.kind.as_str(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            (None, "pending", "run"),
            // A job that needs nothing is ready from the start.
            (None, "ready", "job"),
            (Some("pending"), "running", "run"),
            (Some("ready"), "running", "job"),
            (Some("running"), "completed", "job"),
            (Some("running"), "completed", "run"),
        ]
    );
    let tampered = host
        .engine
        .database()
        .write(|c| Ok(c.execute("UPDATE events SET reason = 'edited'", [])?))
        .await;
    assert!(tampered.is_err(), "events must not be rewritten");
}

#[tokio::test]
async fn invalid_pipelines_are_refused_before_anything_is_stored() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let error = host
        .submit(json!({"jobs": {"a": {"plugin": "missing"}}}), json!({}))
        .await
        .expect_err("unknown plugin");
    assert!(
        matches!(error, EngineError::Spec(SpecError::UnknownPlugin { ref job, .. }) if job == "a")
    );
    let error = host
        .submit(
            json!({"jobs": {"a": {"plugin": "echo", "needs": ["a"]}}}),
            json!({}),
        )
        .await
        .expect_err("cycle");
    assert!(matches!(error, EngineError::Spec(SpecError::Cycle(_))));
    let error = host
        .submit(
            json!({"jobs": {"a": {"plugin": "echo", "needs": ["ghost"]}}}),
            json!({}),
        )
        .await
        .expect_err("unknown dependency");
    assert!(
        matches!(error, EngineError::Spec(SpecError::UnknownDependency { ref job, .. }) if job == "a")
    );
    let error = host
        .submit(
            json!({"jobs": {"a": {"plugin": "echo", "limits": {"memory_mb": 1000000}}}}),
            json!({}),
        )
        .await
        .expect_err("bad limits");
    assert!(matches!(error, EngineError::Spec(SpecError::BadLimits { ref job, .. }) if job == "a"));
    let bad: PipelineSpec =
        serde_json::from_value(json!({"jobs": {"a": {"plugin": "nope"}}})).expect("spec");
    let error = host
        .engine
        .create_template("t", &bad)
        .await
        .expect_err("template");
    assert!(matches!(
        error,
        EngineError::Spec(SpecError::UnknownPlugin { .. })
    ));
    let stored: i64 = host
        .engine
        .database()
        .read(|c| Ok(c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn runs_record_the_template_version_they_used() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let v1: PipelineSpec =
        serde_json::from_value(json!({"jobs": {"a": {"plugin": "echo"}}})).expect("spec");
    let v2: PipelineSpec =
        serde_json::from_value(json!({"jobs": {"a": {"plugin": "echo"}, "b": {"plugin": "echo"}}}))
            .expect("spec");
    assert_eq!(
        host.engine.create_template("greet", &v1).await.expect("v1"),
        1
    );
    assert_eq!(
        host.engine.create_template("greet", &v2).await.expect("v2"),
        2
    );
    let submit = |version| Submission {
        pipeline: PipelineSource::Template {
            name: "greet".into(),
            version,
        },
        input: json!({"hi": 1}),
        story_id: Some("story-7".into()),
        in_dir: None,
        replay: None,
        budget: None,
    };
    let latest = host.engine.submit(submit(None)).await.expect("latest");
    let first = host.engine.submit(submit(Some(1))).await.expect("v1");
    let latest = host
        .engine
        .wait(&latest, Duration::from_secs(30))
        .await
        .expect("ends");
    let first = host
        .engine
        .wait(&first, Duration::from_secs(30))
        .await
        .expect("ends");
    assert_eq!((latest.template_version, latest.jobs.len()), (Some(2), 2));
    assert_eq!((first.template_version, first.jobs.len()), (Some(1), 1));
    assert_eq!(first.story_id.as_deref(), Some("story-7"));
}

/// The example in `examples/pipelines`: a flaky dev job retried, a tester
/// whose first check fails and spawns a fix (which spawns a re-check), a
/// report that waits for all of it, and an alert that is skipped.
#[tokio::test]
async fn the_example_pipeline_closes_its_feedback_loop() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/pipelines/build-and-check.json"
    );
    let pipeline: Value =
        serde_json::from_str(&std::fs::read_to_string(example).expect("example")).expect("json");
    let id = host
        .submit(pipeline, json!({"goal": "a word counter"}))
        .await
        .expect("submitted");
    let run = host
        .engine
        .wait(&id, Duration::from_secs(60))
        .await
        .expect("ends");
    assert_eq!(run.state, RunState::Completed, "{:#?}", run.jobs);

    assert_eq!(job(&run, "plan").state, JobState::Completed);
    assert_eq!(
        job(&run, "dev").attempts,
        2,
        "the flaky first attempt was retried"
    );
    let test = job(&run, "test");
    assert_eq!(
        test.output.as_ref().map(|o| o["passed"].clone()),
        Some(json!(false))
    );
    let fix = run
        .jobs
        .iter()
        .find(|j| j.plugin == "dev" && j.depth == 1)
        .expect("spawned fix");
    assert_eq!(fix.parent_job_id.as_deref(), Some(test.id.as_str()));
    assert_eq!(
        fix.spawn_reason.as_deref(),
        Some("check failed: empty input is not handled")
    );
    assert_eq!(
        fix.output.as_ref().map(|o| o["revision"].clone()),
        Some(json!(2)),
        "run memory counted revisions"
    );
    let retest = run
        .jobs
        .iter()
        .find(|j| j.plugin == "tester" && j.depth == 2)
        .expect("spawned re-check");
    assert_eq!(retest.parent_job_id.as_deref(), Some(fix.id.as_str()));
    assert_eq!(
        retest.output.as_ref().map(|o| o["passed"].clone()),
        Some(json!(true))
    );

    let report = job(&run, "report");
    let waited_for: Vec<&str> = report
        .output
        .as_ref()
        .and_then(|o| o["jobs"].as_array())
        .expect("jobs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        waited_for,
        [test.name.as_str(), fix.name.as_str(), retest.name.as_str()]
    );
    let report_artifacts = host
        .engine
        .database()
        .read(|c| runs::job_artifacts(c, &report.id))
        .expect("artifacts");
    assert_eq!(
        report_artifacts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["report.md"]
    );
    assert_eq!(job(&run, "alert").state, JobState::Skipped);
}

#[tokio::test]
async fn spawning_is_limited_in_depth_and_per_run() {
    let host = EngineHost::new(EngineConfig {
        max_spawn_depth: 1,
        max_spawned_per_run: 2,
        ..EngineConfig::default()
    })
    .await;
    let spawn = |plugin: &str, input: Value| json!({"op": "spawn", "plugin": plugin, "input": input, "reason": "r"});
    let run = host
        .run(json!({"jobs": {
            "parent": toolbox(json!([
                spawn("toolbox", json!([spawn("echo", json!({}))])),
                spawn("echo", json!({})),
                spawn("echo", json!({})),
            ])),
        }}))
        .await;
    assert_eq!(run.state, RunState::Completed);
    let parent = job(&run, "parent").output.clone().expect("output");
    assert!(parent[0]["ok"].is_string());
    assert!(parent[1]["ok"].is_string());
    assert!(
        parent[2]["err"]
            .as_str()
            .expect("third spawn refused")
            .contains("as many jobs as it may"),
        "{parent}"
    );
    let child = run
        .jobs
        .iter()
        .find(|j| j.plugin == "toolbox" && j.depth == 1)
        .expect("child");
    let grandchild_attempt = child.output.clone().expect("output");
    assert!(
        grandchild_attempt[0]["err"]
            .as_str()
            .expect("too deep")
            .contains("nest at most 1 deep"),
        "{grandchild_attempt}"
    );
    assert_eq!(run.jobs.len(), 3, "the parent and two children");
}

#[tokio::test]
async fn traps_and_deadlines_are_retried() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let retry = json!({"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20});
    let run = host
        .run(json!({"jobs": {
            "trap": {"plugin": "panics", "retry": retry},
            "slow": {"plugin": "spin_forever", "retry": retry, "limits": {"timeout_ms": 100}},
        }}))
        .await;
    for name in ["trap", "slow"] {
        assert_eq!(job(&run, name).attempts, 2, "{name} was retried");
        assert_eq!(job(&run, name).state, JobState::Failed);
    }
    let slow = host.attempts(&job(&run, "slow").id);
    assert!(slow.iter().all(|a| {
        a.error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("deadline"))
    }));
}

#[tokio::test]
async fn run_memory_is_deleted_when_its_run_ends() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let set = |scope: &str| json!({"op": "mem_set", "scope": scope, "key": "k", "value": "v"});
    let run = host
        .run(json!({"jobs": {
            "writer": toolbox(json!([set("run")])),
            "reader": {"plugin": "toolbox", "needs": ["writer"],
                       "input": [{"op": "mem_get", "scope": "run", "key": "k"}]},
        }}))
        .await;
    assert_eq!(run.state, RunState::Completed);
    // The second job saw the first one's memory while the run was alive.
    let read = job(&run, "reader").output.clone().expect("output");
    assert_eq!(read[0]["ok"], "v");
    let left: i64 = host
        .engine
        .database()
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM memory WHERE namespace = ?1",
                [format!("run:{}", run.id)],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(left, 0, "the ended run's memory is gone");
}

#[tokio::test]
async fn a_huge_guest_error_is_stored_and_told_bounded() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {
            "loud": toolbox(json!([{"op": "fail_big", "kind": "permanent", "bytes": 8 << 20}])),
            "needy": toolbox(json!([{"op": "fail_big", "kind": "needs_input", "bytes": 10_000, "items": 5_000}])),
        }}))
        .await;
    // `loud` failed; `needy` waits for input (what it asks for is no
    // document, so only a person can give it).
    assert_eq!(run.state, RunState::NeedsInput);
    assert_eq!(job(&run, "loud").state, JobState::Failed);
    assert_eq!(job(&run, "needy").state, JobState::NeedsInput);
    let (errors, reasons): (i64, i64) = host
        .engine
        .database()
        .read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT max(length(error)) FROM jobs WHERE run_id = ?1),
                        (SELECT max(length(reason)) FROM events WHERE run_id = ?1)",
                [&run.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("sizes");
    assert!(
        (4_000..=16_384).contains(&errors),
        "the longest stored error is {errors} bytes"
    );
    assert!(
        (4_000..=8_192).contains(&reasons),
        "the longest event reason is {reasons} bytes"
    );
}

/// Every blob file under the artifact store's `sha256/` folder.
fn blobs(host: &EngineHost) -> Vec<String> {
    let root = host.data.path().join("artifacts").join("sha256");
    let mut found: Vec<String> = std::fs::read_dir(&root)
        .expect("sha256 folder")
        .flat_map(|shard| std::fs::read_dir(shard.expect("shard").path()).expect("shard"))
        .map(|blob| {
            blob.expect("blob")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    found
}

fn staged_entries(host: &EngineHost) -> usize {
    std::fs::read_dir(host.data.path().join("artifacts").join("staging"))
        .expect("staging folder")
        .count()
}

#[tokio::test]
async fn a_failed_attempt_and_a_refused_out_leave_no_blob() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let run = host
        .run(json!({"jobs": {
            "fails": toolbox(json!([
                {"op": "put", "name": "a.txt", "data": "written before failing"},
                {"op": "fail", "kind": "permanent", "message": "then fails"},
            ])),
            "too_much_out": {"plugin": "toolbox", "limits": {"max_artifact_bytes": 100_000},
                "input": [
                    {"op": "put", "name": "b.txt", "data": "put before /out is refused"},
                    {"op": "write_out", "name": "big.bin", "data": "x", "repeat": 200_000},
                ]},
        }}))
        .await;
    assert_eq!(job(&run, "fails").state, JobState::Failed);
    assert_eq!(job(&run, "too_much_out").state, JobState::Failed);
    assert_eq!(blobs(&host), Vec::<String>::new());
    assert_eq!(staged_entries(&host), 0);
}

#[tokio::test]
async fn an_attempt_stopped_during_a_put_leaves_no_staging_folder() {
    let host = EngineHost::new(EngineConfig::default()).await;
    // Each put hashes 4 MiB on a blocking thread (and writes them when the
    // staging folder lacks them), so the guest is almost always inside one
    // when its deadline stops it; 1 GiB lets 256 puts through, more than
    // 300 ms take.
    let run = host
        .run(json!({"jobs": {"writer": {
            "plugin": "toolbox",
            "limits": {"timeout_ms": 300, "max_artifact_bytes": 1 << 30},
            "input": [{"op": "put_loop", "name": "big.bin", "bytes": 4 << 20, "times": 1_000}],
        }}}))
        .await;
    let writer = job(&run, "writer");
    assert_eq!(writer.state, JobState::Failed);
    assert!(
        writer
            .error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("deadline")),
        "stopped by its deadline: {:?}",
        writer.error
    );
    // A put cut off by the deadline went on writing on its blocking
    // thread; give it the time it needs, then nothing may be left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(staged_entries(&host), 0);
    assert_eq!(blobs(&host), Vec::<String>::new());
}

#[tokio::test]
async fn the_collector_removes_orphans_and_never_a_referenced_blob_under_concurrent_commits() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let orphan = host.store.put(b"nothing refers to me").expect("orphan");
    let db = host.engine.database().clone();

    // Runs commit artifacts while the collector runs again and again.
    let submitted: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..40 {
            let ops = json!([{"op": "put", "name": "out.txt", "data": format!("content {i}")}]);
            ids.push(
                host.submit(json!({"jobs": {"a": toolbox(ops)}}), json!({}))
                    .await
                    .expect("submitted"),
            );
        }
        ids
    };
    let collector = {
        let (db, store) = (db.clone(), host.store.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                warren::upkeep::collect_artifacts(db.clone(), store.clone())
                    .await
                    .expect("collected");
                tokio::task::yield_now().await;
            }
        })
    };
    for id in &submitted {
        let run = host
            .engine
            .wait(id, Duration::from_secs(30))
            .await
            .expect("run ends");
        assert_eq!(run.state, RunState::Completed);
    }
    collector.await.expect("collector");
    assert!(!blobs(&host).contains(&orphan), "the orphan was collected");
    warren::upkeep::collect_artifacts(db.clone(), host.store.clone())
        .await
        .expect("collected");

    // Every referenced blob is there, and nothing else.
    let mut referenced: Vec<String> = db
        .read(|c| {
            let mut stmt = c.prepare("SELECT DISTINCT sha256 FROM artifacts")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .expect("digests");
    referenced.sort();
    assert_eq!(referenced.len(), 40);
    assert_eq!(blobs(&host), referenced);
    assert!(!blobs(&host).contains(&orphan));
}

#[tokio::test]
async fn what_a_previous_process_staged_is_swept_at_start() {
    let data = tempfile::tempdir().expect("tempdir");
    let staged = data.path().join("artifacts/staging/0193a1b2-dead-beef");
    std::fs::create_dir_all(&staged).expect("staging");
    std::fs::write(staged.join("0".repeat(64)), "left by a crash").expect("write");
    std::fs::create_dir_all(data.path().join("artifacts/tmp")).expect("tmp");
    std::fs::write(data.path().join("artifacts/tmp/half"), "half written").expect("write");
    let host = host_builder(data.path()).open().expect("host");
    let _engine = host
        .start_engine(EngineConfig::default())
        .await
        .expect("engine");
    let left = |folder: &str| {
        std::fs::read_dir(data.path().join("artifacts").join(folder))
            .expect("folder")
            .count()
    };
    assert_eq!(left("staging"), 0);
    assert_eq!(left("tmp"), 0);
}

/// Rows about `run_id` in each table that records runs.
fn rows_about(db: &warren::db::Database, run_id: &str) -> Vec<i64> {
    let run_id = run_id.to_owned();
    db.read(move |c| {
        let count = |sql: &str| -> Result<i64, warren::db::DbError> {
            Ok(c.query_row(sql, [&run_id], |r| r.get(0))?)
        };
        let jobs = "SELECT id FROM jobs WHERE run_id = ?1";
        Ok(vec![
            count("SELECT count(*) FROM runs WHERE id = ?1")?,
            count("SELECT count(*) FROM jobs WHERE run_id = ?1")?,
            count(&format!(
                "SELECT count(*) FROM attempts WHERE job_id IN ({jobs})"
            ))?,
            count(&format!(
                "SELECT count(*) FROM artifacts WHERE job_id IN ({jobs})"
            ))?,
            count("SELECT count(*) FROM events WHERE run_id = ?1")?,
        ])
    })
    .expect("counts")
}

#[tokio::test]
async fn retention_deletes_old_ended_runs_with_their_history_and_blobs() {
    let host = EngineHost::new(EngineConfig::default()).await;
    let put = |text: &str| toolbox(json!([{"op": "put", "name": "a.txt", "data": text}]));
    let old = host
        .run(json!({"jobs": {"a": put("old content"), "b": {"plugin": "echo", "needs": ["a"]}}}))
        .await;
    let new = host.run(json!({"jobs": {"a": put("new content")}})).await;
    let db = host.engine.database().clone();
    let old_id = old.id.clone();
    db.write(move |c| {
        c.execute(
            "UPDATE runs SET finished_at = finished_at - 3 * 86400000 WHERE id = ?1",
            [&old_id],
        )?;
        Ok(())
    })
    .await
    .expect("backdated");
    let before = blobs(&host);
    assert_eq!(before.len(), 2);

    let report = warren::upkeep::upkeep(
        db.clone(),
        host.store.clone(),
        Some(Duration::from_secs(86_400)),
    )
    .await
    .expect("upkeep");
    assert_eq!(report.runs_deleted, 1);
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(rows_about(&db, &old.id), [0, 0, 0, 0, 0]);
    let kept = rows_about(&db, &new.id);
    assert_eq!(&kept[..4], [1, 1, 1, 1]);
    assert!(kept[4] >= 4, "the kept run's events stay: {kept:?}");
    assert_eq!(blobs(&host).len(), 1);
    // History stays append-only for runs that exist.
    let new_id = new.id.clone();
    let tampered = db
        .write(move |c| Ok(c.execute("DELETE FROM events WHERE run_id = ?1", [&new_id])?))
        .await;
    assert!(tampered.is_err(), "a kept run's events cannot be deleted");
}

#[tokio::test]
async fn a_run_holds_a_bounded_total_of_inputs_and_outputs() {
    let host = EngineHost::new(EngineConfig {
        max_run_data_bytes: 100_000,
        ..EngineConfig::default()
    })
    .await;
    let text = |n: usize| json!({"text": "x".repeat(n)});
    let refused = host
        .submit(
            json!({"jobs": {"a": {"plugin": "echo", "input": text(60_000)},
                            "b": {"plugin": "echo", "input": text(60_000)}}}),
            json!({}),
        )
        .await
        .expect_err("inputs alone are over the total");
    assert!(
        matches!(refused, EngineError::TooLarge(ref m) if m.contains("more than the 100000")),
        "{refused}"
    );

    // Inputs 60 KB; the first output brings 90 KB, the second would pass.
    let run = host
        .run(json!({"jobs": {
            "a": {"plugin": "echo", "input": text(30_000)},
            "b": {"plugin": "echo", "input": text(30_000), "needs": ["a"]},
        }}))
        .await;
    assert_eq!(job(&run, "a").state, JobState::Completed);
    assert_eq!(job(&run, "b").state, JobState::Failed);
    let attempts = host.attempts(&job(&run, "b").id);
    let error = attempts[0].error.clone().expect("error");
    assert_eq!(
        error["hit"],
        json!({"limit": "run_data", "limit_bytes": 100_000}),
        "{error}"
    );
}

//! The `warren` binary: exit codes, `--json` reports, spawned jobs and the
//! `warren new` scaffolds, built and run as a plugin author would.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{guest_path, plugin_path};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

fn warren(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(WARREN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run warren")
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_prints_the_output_on_stdout_and_logs_on_stderr() {
    let data = tempfile::tempdir().expect("tempdir");
    let wordcount = plugin_path("wordcount");
    let output = warren(
        data.path(),
        &[
            "run",
            path_arg(&wordcount),
            "--input",
            r#"{"text":"a b c"}"#,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON output");
    assert_eq!(stdout["total_words"], 3);
    let err = stderr(&output);
    assert!(err.contains("counted 3 words"), "{err}");
    assert!(err.contains("artifact report.json sha256:"), "{err}");
}

#[test]
fn first_party_plugins_run_by_name() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = Command::new(WARREN)
        .args([
            "run",
            "checksum",
            "--input",
            r#"{"text":"abc"}"#,
            "--data-dir",
        ])
        .arg(data.path())
        // From a folder without an `checksum` file, so the name is not a path.
        .current_dir(data.path())
        .output()
        .expect("run warren");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout: Value = serde_json::from_slice(&output.stdout).expect("output");
    assert_eq!(
        stdout["text_sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn input_can_be_read_from_a_file() {
    let data = tempfile::tempdir().expect("tempdir");
    let input = data.path().join("input.json");
    std::fs::write(&input, r#"{"from":"file"}"#).expect("write");
    let at_input = format!("@{}", input.display());
    let output = warren(
        data.path(),
        &["run", path_arg(&plugin_path("echo")), "--input", &at_input],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        r#"{"from":"file"}"#
    );
}

#[test]
fn json_reports_output_usage_artifacts_and_log() {
    let data = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    std::fs::write(inputs.path().join("x.txt"), "four words in here").expect("write");
    let output = warren(
        data.path(),
        &[
            "run",
            path_arg(&plugin_path("wordcount")),
            "--in",
            path_arg(inputs.path()),
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["output"]["total_words"], 4);
    assert_eq!(report["error"], Value::Null);
    assert!(report["usage"]["fuel_consumed"].as_u64().expect("fuel") > 0);
    assert!(
        report["usage"]["peak_memory_bytes"]
            .as_u64()
            .expect("memory")
            > 0
    );
    assert!(report["usage"]["wall_time_us"].as_u64().is_some());
    let artifact = &report["artifacts"][0];
    assert_eq!(artifact["name"], "report.json");
    assert_eq!(artifact["sha256"].as_str().expect("sha").len(), 64);
    assert!(artifact["size"].as_u64().expect("size") > 0);
    assert_eq!(report["log"]["lines"][0]["message"], "counted 4 words");
    assert_eq!(report["log"]["lines"][0]["level"], "info");
}

#[test]
fn exit_codes_tell_job_errors_limits_and_invalid_plugins_apart() {
    let data = tempfile::tempdir().expect("tempdir");
    let toolbox = guest_path("toolbox");
    let fail = json!([{"op": "fail", "kind": "permanent", "message": "no"}]).to_string();
    let output = warren(data.path(), &["run", path_arg(&toolbox), "--input", &fail]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("job failed: no"));

    let spin = guest_path("spin_forever");
    let output = warren(
        data.path(),
        &["run", path_arg(&spin), "--timeout-ms", "200"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("deadline of 200 ms exceeded"),
        "{}",
        stderr(&output)
    );

    let output = warren(data.path(), &["run", path_arg(&spin), "--fuel", "100000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("out of fuel"),
        "{}",
        stderr(&output)
    );

    let bomb = guest_path("memory_bomb");
    let output = warren(data.path(), &["run", path_arg(&bomb), "--memory-mb", "16"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("memory limit of 16777216 bytes exceeded"),
        "{}",
        stderr(&output)
    );

    let output = warren(data.path(), &["run", path_arg(&guest_path("panics"))]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("guest panicked: boom"),
        "{}",
        stderr(&output)
    );

    let output = warren(data.path(), &["run", path_arg(&guest_path("wasi-command"))]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("exports neither"),
        "{}",
        stderr(&output)
    );

    let garbage = data.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let output = warren(data.path(), &["run", path_arg(&garbage)]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("not a WebAssembly file"));

    let echo = plugin_path("echo");
    let output = warren(data.path(), &["run", path_arg(&echo), "--input", "{broken"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("--input is not valid JSON"));

    let output = warren(data.path(), &["run", path_arg(&echo), "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn spawned_jobs_run_after_their_parent_in_the_same_run() {
    let data = tempfile::tempdir().expect("tempdir");
    // Spawned plugins are found beside the plugin being run.
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::copy(guest_path("toolbox"), plugins.path().join("toolbox.wasm")).expect("copy");
    std::fs::copy(plugin_path("echo"), plugins.path().join("echo.wasm")).expect("copy");
    let input = json!([
        {"op": "spawn", "plugin": "echo", "input": {"child": 1}, "reason": "check it"},
        {"op": "spawn", "plugin": "toolbox", "input": [{"op": "spawn", "plugin": "echo", "input": {"grandchild": true}, "reason": "deeper"}], "reason": "nest"},
    ])
    .to_string();
    let toolbox = plugins.path().join("toolbox.wasm");
    let output = warren(
        data.path(),
        &["run", path_arg(&toolbox), "--input", &input, "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    let children = report["children"].as_array().expect("children");
    assert_eq!(children.len(), 3);
    assert_eq!(children[0]["plugin"], "echo");
    assert_eq!(children[0]["reason"], "check it");
    assert_eq!(children[0]["output"], json!({"child": 1}));
    assert_eq!(children[0]["job_id"], report["output"][0]["ok"]);
    assert_eq!(children[1]["plugin"], "toolbox");
    assert_eq!(children[2]["output"], json!({"grandchild": true}));
    assert_eq!(children[2]["reason"], "deeper");
}

#[test]
fn story_memory_survives_between_cli_runs() {
    let data = tempfile::tempdir().expect("tempdir");
    let toolbox = guest_path("toolbox");
    let set = json!([{"op": "mem_set", "scope": "story", "key": "k", "value": "kept"}]).to_string();
    let output = warren(
        data.path(),
        &["run", path_arg(&toolbox), "--story", "s1", "--input", &set],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let get = json!([{"op": "mem_get", "scope": "story", "key": "k"}]).to_string();
    let output = warren(
        data.path(),
        &["run", path_arg(&toolbox), "--story", "s1", "--input", &get],
    );
    let stdout: Value = serde_json::from_slice(&output.stdout).expect("output");
    assert_eq!(stdout, json!([{"ok": "kept"}]));
}

/// A plugin author's path: scaffold, build for wasm32-wasip2, run.
#[test]
fn new_job_and_new_agent_build_and_run_as_they_stand() {
    let work = tempfile::tempdir().expect("tempdir");
    // One target dir for both crates, so their dependencies build once.
    let target = work.path().join("target");
    for (kind, name, input) in [
        ("job", "demo", r#"{"text":"one two three"}"#),
        ("agent", "helper", r#"{"question":"why?"}"#),
    ] {
        let created = Command::new(WARREN)
            .args(["new", kind, name, "--dir"])
            .arg(work.path())
            .output()
            .expect("warren new");
        assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
        let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(work.path().join(name))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("cargo build");
        assert!(build.status.success(), "{}", stderr(&build));
        let wasm = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
        let output = warren(
            &work.path().join("data"),
            &["run", path_arg(&wasm), "--input", input, "--json"],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).expect("report");
        match kind {
            "job" => assert_eq!(
                report["output"],
                json!({"text": "one two three", "words": 3})
            ),
            _ => {
                assert_eq!(
                    report["output"],
                    json!({"answer": "You asked: why?", "questions_in_this_run": 1})
                );
                assert_eq!(report["artifacts"][0]["name"], "documents/answer.md");
            }
        }
    }
}

/// Copies a test guest into `dir` with `manifest` beside it.
fn guest_with_manifest(dir: &Path, guest: &str, manifest: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{guest}.wasm"));
    std::fs::copy(guest_path(guest), &path).expect("copy guest");
    std::fs::write(dir.join(format!("{guest}.toml")), manifest).expect("manifest");
    path
}

#[test]
fn run_applies_the_manifest_and_caps_it_with_the_operator_policy() {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let config = plugins.path().join("warren.toml");
    std::fs::write(
        &config,
        "[policy]\nmemory = [\"run\", \"story\"]\nspawn = false\n\n[policy.max_limits]\nfuel = 50_000_000\n",
    )
    .expect("config");
    // The manifest leaves out story memory and asks for spawning, which
    // the policy refuses.
    let toolbox = guest_with_manifest(
        plugins.path(),
        "toolbox",
        "memory = [\"run\"]\nspawn = true\n",
    );
    let input = json!([
        {"op": "mem_set", "scope": "run", "key": "k", "value": "v"},
        {"op": "mem_set", "scope": "story", "key": "k", "value": "v"},
        {"op": "spawn", "plugin": "toolbox", "input": [], "reason": "try"},
    ])
    .to_string();
    let output = warren(
        data.path(),
        &[
            "run",
            path_arg(&toolbox),
            "--config",
            path_arg(&config),
            "--story",
            "s1",
            "--input",
            &input,
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    let results = &report["output"];
    assert_eq!(results[0], json!({"ok": null}));
    let story = results[1]["err"].as_str().expect("story memory refused");
    assert!(story.contains("not granted story memory"), "{story}");
    let spawn = results[2]["err"].as_str().expect("spawn refused");
    assert!(spawn.contains("not granted spawn"), "{spawn}");
    assert_eq!(report["children"], json!([]));

    // A manifest asking for more fuel than the policy allows gets the
    // policy's maximum: the loop runs out of fuel there.
    let spin = guest_with_manifest(
        plugins.path(),
        "spin_forever",
        "[limits]\nfuel = 5_000_000_000_000\n",
    );
    let output = warren(
        data.path(),
        &[
            "run",
            path_arg(&spin),
            "--config",
            path_arg(&config),
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(
        report["error"],
        json!({"type": "limit", "hit": {"limit": "fuel", "budget": 50_000_000}})
    );

    // Asking the command line for more than the policy allows is refused.
    let output = warren(
        data.path(),
        &[
            "run",
            path_arg(&spin),
            "--config",
            path_arg(&config),
            "--fuel",
            "60000000",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("fuel is 60000000"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_spawned_job_reads_its_parents_artifacts_under_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let toolbox = plugins.path().join("toolbox.wasm");
    std::fs::copy(guest_path("toolbox"), &toolbox).expect("copy");
    let input = json!([
        {"op": "write_out", "name": "note.txt", "data": "from the parent"},
        {"op": "spawn", "plugin": "toolbox", "input": [
            {"op": "read_file", "path": "/in/toolbox/note.txt"},
            {"op": "list"},
        ], "reason": "read it"},
    ])
    .to_string();
    let output = warren(
        data.path(),
        &["run", path_arg(&toolbox), "--input", &input, "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(report["artifacts"][0]["name"], "note.txt");
    let child = &report["children"][0];
    assert_eq!(child["output"][0], json!({"ok": "from the parent"}));
    assert_eq!(
        child["output"][1],
        json!({"ok": [{"name": "toolbox/note.txt", "size": 15}]})
    );
}

#[test]
fn pipeline_run_applies_manifests_and_the_operator_policy() {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    guest_with_manifest(plugins.path(), "toolbox", "memory = [\"run\"]\n");
    let config = plugins.path().join("warren.toml");
    std::fs::write(&config, "[policy]\nspawn = false\n").expect("config");
    let pipeline = plugins.path().join("pipeline.json");
    let ops = json!([
        {"op": "mem_set", "scope": "story", "key": "k", "value": "v"},
        {"op": "spawn", "plugin": "toolbox", "input": [], "reason": "try"},
    ]);
    std::fs::write(
        &pipeline,
        json!({"jobs": {"box": {"plugin": "toolbox", "input": ops}}}).to_string(),
    )
    .expect("pipeline");
    let output = warren(
        data.path(),
        &[
            "pipeline",
            "run",
            path_arg(&pipeline),
            "--plugins-dir",
            path_arg(plugins.path()),
            "--config",
            path_arg(&config),
            "--story",
            "s1",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run: Value = serde_json::from_slice(&output.stdout).expect("run");
    let results = &run["jobs"][0]["output"];
    let story = results[0]["err"].as_str().expect("story memory refused");
    assert!(story.contains("not granted story memory"), "{story}");
    let spawn = results[1]["err"].as_str().expect("spawn refused");
    assert!(spawn.contains("not granted spawn"), "{spawn}");
}

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
fn run_describes_an_agent_and_says_which_documents_it_waits_for() {
    let data = tempfile::tempdir().expect("tempdir");
    let analyst = plugin_path("analyst");
    let output = warren(data.path(), &["run", path_arg(&analyst), "--story", "s1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("analyst: job needs input: brief"),
        "{stderr}"
    );
    let trap = guest_path("describe_trap");
    let output = warren(data.path(), &["run", path_arg(&trap)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("describe() failed: trap: guest panicked: no description today"),
        "{stderr}"
    );
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
        stderr(&output).contains("exports none of"),
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

/// Variables of this test's own build that a plugin author's shell would
/// not have: flags, target and target dir, profile overrides, and what
/// cargo sets for the test binary. Network and registry settings stay.
fn is_outer_build_variable(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "CARGO_BUILD_",
        "CARGO_TARGET_",
        "CARGO_ENCODED_",
        "CARGO_PROFILE_",
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_",
    ];
    matches!(
        name,
        "RUSTFLAGS" | "RUSTDOCFLAGS" | "CARGO_INCREMENTAL" | "OUT_DIR"
    ) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// `cargo build --release` in `dir`, as a plugin author runs it there
/// (into `target_dir` if given, else the crate's own `target/`).
fn author_cargo_build(dir: &Path, target_dir: Option<&Path>) -> Output {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["build", "--release"]).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_outer_build_variable) {
            command.env_remove(name);
        }
    }
    if let Some(target_dir) = target_dir {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    command.output().expect("cargo build")
}

/// `warren new ...` run from `cwd`.
fn warren_new(cwd: &Path, args: &[&str]) -> Output {
    Command::new(WARREN)
        .arg("new")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("warren new")
}

/// A plugin author's path: in a folder outside any checkout, scaffold
/// against a local SDK, `cargo build --release`, run the component.
#[test]
fn new_job_and_new_agent_build_with_cargo_build_release_and_run() {
    let work = tempfile::tempdir().expect("tempdir");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository");
    let work_path = work.path().canonicalize().expect("tempdir");
    assert!(
        !work_path.starts_with(&repository),
        "the temporary folder must be outside the repository"
    );
    let sdk = repository.join("sdk");
    for (kind, name) in [("job", "x"), ("agent", "helper")] {
        let created = warren_new(&work_path, &[kind, name, "--sdk", path_arg(&sdk)]);
        assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
        let stdout = String::from_utf8_lossy(&created.stdout);
        assert!(stdout.contains("&& cargo build --release\n"), "{stdout}");
    }

    // The job builds alone: its own .cargo/config.toml picks the target and
    // its own target/ receives the component.
    let job = work_path.join("x");
    let build = author_cargo_build(&job, None);
    assert!(build.status.success(), "{}", stderr(&build));
    let data = work_path.join("data");
    let output = Command::new(WARREN)
        .args([
            "run",
            "target/wasm32-wasip2/release/x.wasm",
            "--input",
            r#"{"text":"a b"}"#,
            "--data-dir",
        ])
        .arg(&data)
        .current_dir(&job)
        .output()
        .expect("warren run");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON output");
    assert_eq!(stdout, json!({"text": "a b", "words": 2}));

    // The agent shares the job's target dir so its dependencies are not
    // built twice; the target still comes from its .cargo/config.toml.
    let agent = work_path.join("helper");
    let build = author_cargo_build(&agent, Some(&job.join("target")));
    assert!(build.status.success(), "{}", stderr(&build));
    let wasm = job.join("target/wasm32-wasip2/release/helper.wasm");
    let output = warren(
        &data,
        &[
            "run",
            path_arg(&wasm),
            "--input",
            r#"{"question":"why?"}"#,
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(
        report["output"],
        json!({"answer": "You asked: why?", "questions_in_this_run": 1})
    );
    assert_eq!(report["artifacts"][0]["name"], "documents/answer.md");
}

/// Without `--sdk` the crate depends on the published SDK of this version,
/// so it builds wherever `warren` is installed, with no checkout.
#[test]
fn new_job_depends_on_the_published_sdk_and_targets_wasm() {
    let work = tempfile::tempdir().expect("tempdir");
    let created = warren_new(work.path(), &["job", "y"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let crate_dir = work.path().join("y");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    let sdk_lines: Vec<&str> = manifest
        .lines()
        .filter(|l| l.starts_with("warren-sdk"))
        .collect();
    // The SDK is versioned with warren (tests/all/wit.rs), today "0.1.0".
    let expected = format!("warren-sdk = \"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(sdk_lines, [expected.as_str()], "{manifest}");
    let config: toml::Value = toml::from_str(
        &std::fs::read_to_string(crate_dir.join(".cargo/config.toml")).expect("config"),
    )
    .expect("config is TOML");
    assert_eq!(
        config.get("build").and_then(|b| b.get("target")),
        Some(&toml::Value::from("wasm32-wasip2"))
    );
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).expect("README");
    assert!(
        readme.contains("cargo build --release\nwarren run target/wasm32-wasip2/release/y.wasm"),
        "{readme}"
    );
}

/// Bad names, an existing folder and an `--sdk` that is not the SDK are
/// refused with a clear message, exit code 3, and nothing written.
#[test]
fn new_refuses_bad_names_existing_folders_and_wrong_sdk_paths() {
    let work = tempfile::tempdir().expect("tempdir");
    let not_sdk = work.path().join("not-sdk");
    std::fs::create_dir(&not_sdk).expect("mkdir");
    std::fs::create_dir(work.path().join("taken")).expect("mkdir");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["job", "../evil"], "is not a valid plugin name"),
        (vec!["agent", "fn"], "is not a valid plugin name"),
        (vec!["job", "taken"], "already exists"),
        (
            vec!["job", "z", "--sdk", path_arg(&not_sdk)],
            "no Cargo.toml in it",
        ),
        (
            vec!["job", "z", "--sdk", path_arg(&repository)],
            "did you mean",
        ),
        (vec!["job", "z", "--sdk", "/no/such/sdk"], "cannot open it"),
    ];
    for (args, expected) in cases {
        let output = warren_new(work.path(), &args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let err = stderr(&output);
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    let mut left: Vec<_> = std::fs::read_dir(work.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["not-sdk", "taken"]);
    assert_eq!(
        std::fs::read_dir(work.path().join("taken"))
            .expect("read")
            .count(),
        0
    );
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

#[tokio::test]
async fn gc_deletes_runs_past_retention_and_refuses_a_directory_in_use() {
    let data = tempfile::tempdir().expect("tempdir");
    let run_id = {
        let host = crate::support::host_builder(data.path())
            .open()
            .expect("host");
        host.plugins
            .insert(host.runtime.load_file(&plugin_path("echo")).expect("echo"));
        let engine = host.start_engine(Default::default()).await.expect("engine");
        let spec = serde_json::from_value(serde_json::json!({"jobs": {"a": {"plugin": "echo"}}}))
            .expect("spec");
        let id = engine
            .submit(warren::scheduler::Submission {
                pipeline: warren::scheduler::PipelineSource::Inline(spec),
                input: serde_json::json!({}),
                story_id: None,
                in_dir: None,
                replay: None,
                budget: None,
            })
            .await
            .expect("submitted");
        engine
            .wait(&id, std::time::Duration::from_secs(30))
            .await
            .expect("ends");

        // While this process holds the directory, gc refuses it.
        let refused = warren(data.path(), &["gc"]);
        assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("in use by another warren process"));
        id
    };

    let kept = warren(data.path(), &["gc", "--json", "--retention-days", "1"]);
    assert_eq!(kept.status.code(), Some(0), "{}", stderr(&kept));
    let report: serde_json::Value = serde_json::from_slice(&kept.stdout).expect("json");
    assert_eq!(report["runs_deleted"], 0, "{report}");
    assert_eq!(report["vacuumed"], false, "a new database is incremental");

    let db = rusqlite::Connection::open(data.path().join("warren.db")).expect("open");
    db.execute(
        "UPDATE runs SET finished_at = finished_at - 2 * 86400000 WHERE id = ?1",
        [&run_id],
    )
    .expect("backdate");
    drop(db);
    let deleted = warren(data.path(), &["gc", "--json", "--retention-days", "1"]);
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    let report: serde_json::Value = serde_json::from_slice(&deleted.stdout).expect("json");
    assert_eq!(report["runs_deleted"], 1, "{report}");
    let db = rusqlite::Connection::open(data.path().join("warren.db")).expect("open");
    let runs: i64 = db
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("count");
    assert_eq!(runs, 0);
}

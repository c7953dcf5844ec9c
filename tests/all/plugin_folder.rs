//! The plugins folder of a running server: files dropped in become plugin
//! versions without a restart, bad files are quarantined with the reason,
//! replacing a file makes a new version (runs keep theirs), deleting it
//! retires the plugin, manifests are capped by policy, and a version asking
//! for more waits for an admin. Real server, real plugins, real SQLite.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{ADMIN, CLIENT, TestServer, admin_and_client};
use crate::support::{guest_path, plugin_path};
use warren_sandbox::runtime::CacheOutcome;
use warren_vocabulary::MemoryScope;

/// Copies `from` into the folder as `name.wasm` the documented way: a
/// hidden temporary file, then a rename.
pub(crate) fn drop_plugin(dir: &Path, name: &str, from: &Path) {
    let temporary = dir.join(format!(".{name}.partial"));
    std::fs::copy(from, &temporary).expect("copy");
    std::fs::rename(&temporary, dir.join(format!("{name}.wasm"))).expect("rename");
}

pub(crate) fn folder(server: &TestServer) -> PathBuf {
    server.config.plugins_dir.clone().expect("plugins dir")
}

/// Polls `/v1/plugins/{name}` until `done` holds (up to 20 s).
pub(crate) async fn wait_for_plugin(
    server: &TestServer,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, plugin) = server.get(&format!("/v1/plugins/{name}")).await;
        if (status == 200 && done(&plugin)) || Instant::now() > deadline {
            return plugin;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `/v1/plugins` until `file` is quarantined; returns its reason.
async fn wait_for_quarantine(server: &TestServer, file: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = server.get("/v1/plugins").await;
        let found = list["quarantined"]
            .as_array()
            .and_then(|q| q.iter().find(|entry| entry["file"] == file))
            .and_then(|entry| entry["reason"].as_str())
            .map(str::to_owned);
        if let Some(reason) = found {
            return reason;
        }
        assert!(Instant::now() < deadline, "{file} not quarantined: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn version<'a>(plugin: &'a Value, digest: &str) -> &'a Value {
    plugin["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["digest"] == digest))
        .unwrap_or_else(|| panic!("no version {digest} in {plugin}"))
}

pub(crate) fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

/// Runs `plugin` with `input` and waits for the run to end.
async fn run_one(server: &TestServer, plugin: &str, input: Value) -> Value {
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"only": {"plugin": plugin, "input": input}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
        if ["completed", "failed", "cancelled"].contains(&run["state"].as_str().unwrap_or(""))
            || Instant::now() > deadline
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The digest of the plugin version the run's only job ran.
async fn attempt_digest(server: &TestServer, run: &Value) -> String {
    let job = run["jobs"][0]["id"].as_str().expect("job id");
    let (_, job) = server.get(&format!("/v1/jobs/{job}")).await;
    job["attempts"][0]["plugin_digest"]
        .as_str()
        .expect("attempt digest")
        .to_owned()
}

#[tokio::test]
async fn a_dropped_plugin_runs_without_a_restart_and_bad_files_are_quarantined() {
    let server = TestServer::open().await;
    let dir = folder(&server);

    // A plain copy (no rename) works too: the file is examined once closed.
    std::fs::copy(plugin_path("wordcount"), dir.join("counter.wasm")).expect("copy");
    let plugin = wait_for_plugin(&server, "counter", |p| p["status"] == "active").await;
    assert_eq!(plugin["status"], "active", "{plugin}");
    let digest = sha256_of(&plugin_path("wordcount"));
    assert_eq!(plugin["active"], digest.as_str());
    let active = version(&plugin, &digest);
    assert_eq!(active["state"], "active");
    assert!(
        active["exports"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x
                .as_str()
                .is_some_and(|x| x.starts_with("warren:plugin/job-handler@")))),
        "{active}"
    );
    let run = run_one(&server, "counter", json!({"text": "one two three"})).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(attempt_digest(&server, &run).await, digest);
    // Usage totals follow the attempts.
    let plugin = wait_for_plugin(&server, "counter", |p| {
        p["versions"][0]["usage"]["attempts"] == 1
    })
    .await;
    assert_eq!(plugin["versions"][0]["usage"]["succeeded"], 1, "{plugin}");
    assert!(plugin["versions"][0]["usage"]["fuel_consumed"].as_u64() > Some(0));

    let mut noise = vec![0u8; 4096];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(dir.join("garbage.wasm"), &noise).expect("write");
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").expect("write");
    drop_plugin(&dir, "command", &guest_path("wasi-command"));
    drop_plugin(&dir, "gadget", &guest_path("unknown_import"));
    // Over the 64 MiB cap (sparse: nothing is written).
    let huge = std::fs::File::create(dir.join("huge.wasm")).expect("create");
    huge.set_len((64 << 20) + 1).expect("grow");
    drop(huge);
    std::fs::write(dir.join("bad name!.wasm"), b"\0asm").expect("write");

    let expected = [
        ("garbage.wasm", "not a WebAssembly file"),
        ("core.wasm", "a core WebAssembly module, not a component"),
        ("command.wasm", "exports none of the `job` world"),
        ("gadget.wasm", "imports `test:unknown-import/gadget`"),
        ("huge.wasm", "more than the 67108864 allowed"),
        ("bad name!.wasm", "is not a plugin name"),
    ];
    for (file, reason) in expected {
        let got = wait_for_quarantine(&server, file).await;
        assert!(got.contains(reason), "{file}: {got}");
    }
    for name in ["garbage", "core", "command", "gadget", "huge"] {
        let (status, _) = server.get(&format!("/v1/plugins/{name}")).await;
        assert_eq!(status, 404, "{name} has no version");
    }
    server.assert_healthy().await;
    // The server still runs what it had.
    let run = run_one(&server, "counter", json!({"text": "still here"})).await;
    assert_eq!(run["state"], "completed", "{run}");

    // A quarantined file fixed in place is examined again.
    drop_plugin(&dir, "garbage", &plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "garbage", |p| p["status"] == "active").await;
    assert_eq!(plugin["status"], "active", "{plugin}");
    let (_, list) = server.get("/v1/plugins").await;
    assert!(
        !list["quarantined"]
            .as_array()
            .is_some_and(|q| q.iter().any(|e| e["file"] == "garbage.wasm")),
        "{list}"
    );
    server.stop().await;
}

#[tokio::test]
async fn replacing_a_plugin_keeps_running_runs_on_their_version_and_deleting_retires_it() {
    let mut server = TestServer::open().await;
    let dir = folder(&server);
    drop_plugin(&dir, "shifty", &guest_path("toolbox"));
    let old = sha256_of(&guest_path("toolbox"));
    wait_for_plugin(&server, "shifty", |p| p["active"] == old.as_str()).await;

    // A two-job run: the second job starts after the file is replaced and
    // still runs the version the run started with.
    let pipeline = json!({"jobs": {
        "first": {"plugin": "shifty", "input": [{"op": "sleep_ms", "ms": 800}]},
        "second": {"plugin": "shifty", "needs": ["first"], "input": [{"op": "context"}]},
    }});
    let (status, created) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(status, 201, "{created}");
    let long_run = created["id"].as_str().expect("id").to_owned();
    server.wait_for_state(&long_run, "running").await;

    drop_plugin(&dir, "shifty", &plugin_path("echo"));
    let new = sha256_of(&plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "shifty", |p| p["active"] == new.as_str()).await;
    assert_eq!(version(&plugin, &old)["state"], "inactive", "{plugin}");
    // A restart in the middle: the run's second job starts after it, on
    // the version the run is pinned to, which is loaded from the kept copy.
    server.restart().await;

    let fresh = run_one(&server, "shifty", json!({"said": "hi"})).await;
    assert_eq!(fresh["state"], "completed", "{fresh}");
    assert_eq!(attempt_digest(&server, &fresh).await, new);
    assert_eq!(
        fresh["jobs"][0]["output"],
        json!({"said": "hi"}),
        "echo's output"
    );

    let run = server.wait_for_state(&long_run, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    for job in run["jobs"].as_array().expect("jobs") {
        let id = job["id"].as_str().expect("id");
        let (_, job) = server.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(job["attempts"][0]["plugin_digest"], old.as_str(), "{job}");
    }

    std::fs::remove_file(dir.join("shifty.wasm")).expect("delete");
    let plugin = wait_for_plugin(&server, "shifty", |p| p["status"] == "retired").await;
    assert_eq!(plugin["status"], "retired", "{plugin}");
    assert_eq!(version(&plugin, &new)["state"], "retired");
    assert_eq!(
        version(&plugin, &new)["usage"]["attempts"],
        1,
        "history stays"
    );
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"a": {"plugin": "shifty"}}}}),
        )
        .await;
    assert_eq!((status, &body["code"]), (422, &json!("invalid_pipeline")));
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("shifty") && m.contains("retired")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn manifests_are_capped_by_policy_and_an_escalating_version_waits_for_approval() {
    let mut server = TestServer::start_with(admin_and_client(), |config| {
        config.policy.max_limits.fuel = 2_000_000_000;
        config.policy.memory = vec![MemoryScope::Run, MemoryScope::Story];
    })
    .await;
    let dir = folder(&server);

    // Version 1 asks for more fuel than the policy allows, run memory only
    // and no spawning.
    std::fs::write(
        dir.join("careful.toml"),
        "version = \"1.0\"\ndescription = \"does little\"\nmemory = [\"run\"]\nspawn = false\n[limits]\nfuel = 50000000000\n",
    )
    .expect("manifest");
    drop_plugin(&dir, "careful", &guest_path("toolbox"));
    let v1 = sha256_of(&guest_path("toolbox"));
    let plugin = wait_for_plugin(&server, "careful", |p| p["active"] == v1.as_str()).await;
    let grants = &version(&plugin, &v1)["grants"];
    assert_eq!(grants["limits"]["fuel"], 2_000_000_000u64, "{grants}");
    assert_eq!(grants["default_limits"]["fuel"], 2_000_000_000u64);
    assert_eq!(grants["memory"], json!(["run"]));
    assert_eq!(grants["spawn"], false);
    assert_eq!(
        grants["capped"],
        json!(["fuel: asked 50000000000, policy allows 2000000000"])
    );
    assert_eq!(version(&plugin, &v1)["label"], "1.0");

    // The grants hold at run time: story memory and spawning are denied.
    let ops = json!([
        {"op": "mem_set", "scope": "run", "key": "k", "value": "v"},
        {"op": "mem_set", "scope": "story", "key": "k", "value": "v"},
        {"op": "spawn", "plugin": "echo", "input": {}, "reason": "try"},
    ]);
    let run = run_one(&server, "careful", ops.clone()).await;
    assert_eq!(run["state"], "completed", "{run}");
    let output = &run["jobs"][0]["output"];
    assert_eq!(output[0], json!({"ok": null}), "{output}");
    assert!(
        output[1]["err"]
            .as_str()
            .is_some_and(|e| e.contains("not granted story memory")),
        "{output}"
    );
    assert!(
        output[2]["err"]
            .as_str()
            .is_some_and(|e| e.contains("not granted spawn")),
        "{output}"
    );

    // Version 2 (other bytes) asks for story memory and spawning: held.
    std::fs::write(
        dir.join("careful.toml"),
        "version = \"2.0\"\nmemory = [\"run\", \"story\"]\nspawn = true\n[limits]\nfuel = 1000000000\n",
    )
    .expect("manifest");
    drop_plugin(&dir, "careful", &plugin_path("echo"));
    let v2 = sha256_of(&plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "careful", |p| {
        p["versions"].as_array().is_some_and(|v| v.len() == 2)
    })
    .await;
    let pending = version(&plugin, &v2);
    assert_eq!(pending["state"], "pending_approval", "{plugin}");
    let note = pending["note"].as_str().expect("note");
    assert!(
        note.contains("memory scope story") && note.contains("spawn"),
        "{note}"
    );
    assert!(!note.contains("fuel"), "less fuel is no escalation: {note}");
    assert_eq!(plugin["active"], v1.as_str());
    let run = run_one(&server, "careful", json!([{"op": "context"}])).await;
    assert_eq!(
        attempt_digest(&server, &run).await,
        v1,
        "the old version stays active"
    );

    // Only an admin approves.
    let approve = format!("/v1/plugins/careful/versions/{v2}/approve");
    server.token = Some(CLIENT);
    let (status, body) = server.post(&approve, &json!({})).await;
    assert_eq!((status, &body["code"]), (403, &json!("forbidden")));
    server.token = Some(ADMIN);
    let (status, body) = server.post(&approve, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], v2.as_str());
    assert!(version(&body, &v2)["approved_at"].as_i64().is_some());
    let (status, body) = server.post(&approve, &json!({})).await;
    assert_eq!((status, &body["code"]), (409, &json!("conflict")), "{body}");
    let run = run_one(&server, "careful", json!({"now": "v2"})).await;
    assert_eq!(attempt_digest(&server, &run).await, v2);
    assert_eq!(run["jobs"][0]["output"], json!({"now": "v2"}));

    // Approval and versions survive a restart, which compiles nothing.
    server.restart().await;
    let plugin = wait_for_plugin(&server, "careful", |p| p["status"] == "active").await;
    assert_eq!(plugin["active"], v2.as_str(), "{plugin}");
    let registry = server.server.as_ref().expect("running").engine.plugins();
    for name in registry.names() {
        let loaded = registry.get(&name).expect("loaded");
        assert_eq!(loaded.cache_outcome(), CacheOutcome::Hit, "{name}");
    }
    assert_eq!(version(&plugin, &v1)["state"], "inactive");
    server.stop().await;
}

#[tokio::test]
async fn uploads_go_through_the_folder_and_need_an_admin() {
    let mut server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let upload = |server: &TestServer, name: &str, content_type: &str, body: Vec<u8>| {
        server
            .request(reqwest::Method::POST, &format!("/v1/plugins?name={name}"))
            .header("content-type", content_type)
            .body(body)
    };
    let wasm = std::fs::read(plugin_path("echo")).expect("read");
    // Bigger than the API's body limit (64 KiB here), as plugins are.
    assert!(wasm.len() > 64 << 10);

    server.token = Some(CLIENT);
    let response = upload(&server, "uploaded", "application/wasm", wasm.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);

    server.token = Some(ADMIN);
    let response = upload(
        &server,
        "uploaded",
        "application/toml",
        b"version = \"9\"\n".to_vec(),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 201);
    let response = upload(&server, "uploaded", "application/wasm", wasm.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    let examined: Value = response.json().await.expect("json");
    assert_eq!(examined["state"], "active", "{examined}");
    assert!(folder(&server).join("uploaded.wasm").is_file());
    assert!(folder(&server).join("uploaded.toml").is_file());
    let (_, plugin) = server.get("/v1/plugins/uploaded").await;
    assert_eq!(plugin["versions"][0]["label"], "9", "{plugin}");
    let run = run_one(&server, "uploaded", json!({"x": 1})).await;
    assert_eq!(run["jobs"][0]["output"], json!({"x": 1}));

    let response = upload(&server, "junk", "application/wasm", b"not wasm".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "invalid_plugin");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a WebAssembly file"))
    );
    let response = upload(
        &server,
        "junk",
        "application/toml",
        b"spawn = maybe".to_vec(),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 422);
    let response = upload(&server, "junk", "text/plain", b"x".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 415);
    for bad in ["..%2Fescape", "a.b"] {
        let response = upload(&server, bad, "application/wasm", wasm.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert!(!folder(&server).join("a.b.wasm").exists());

    // A file quarantined for its manifest loads once the manifest is fixed
    // and the same component is sent again.
    let response = upload(
        &server,
        "kinded",
        "application/toml",
        b"kind = \"agent\"\n".to_vec(),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 201);
    let response = upload(&server, "kinded", "application/wasm", wasm.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("the manifest says kind")),
        "{body}"
    );
    let response = upload(
        &server,
        "kinded",
        "application/toml",
        b"kind = \"job\"\n".to_vec(),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 201);
    let response = upload(&server, "kinded", "application/wasm", wasm)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    server.assert_healthy().await;
    server.stop().await;
}

#[tokio::test]
async fn granted_directories_are_preopened_with_their_access() {
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::write(shared.path().join("note.txt"), "from the host").expect("write");
    let root = shared.path().to_owned();
    let server = TestServer::start_with(Vec::new(), |config| {
        config.policy.directories = vec![warren::catalogue::grants::DirectoryRule {
            host: root.clone(),
            writable: false,
        }];
    })
    .await;
    let dir = folder(&server);
    std::fs::write(
        dir.join("reader.toml"),
        format!(
            "[[directories]]\nhost = {:?}\nguest = \"/shared\"\nwritable = true\n",
            shared.path()
        ),
    )
    .expect("manifest");
    drop_plugin(&dir, "reader", &guest_path("toolbox"));
    let plugin = wait_for_plugin(&server, "reader", |p| p["status"] == "active").await;
    let grants = &plugin["versions"][0]["grants"];
    assert_eq!(grants["directories"][0]["guest"], "/shared", "{grants}");
    assert_eq!(grants["directories"][0]["writable"], false);

    let run = run_one(
        &server,
        "reader",
        json!([
            {"op": "read_file", "path": "/shared/note.txt"},
            {"op": "write_file", "path": "/shared/new.txt", "data": "x"},
        ]),
    )
    .await;
    let output = &run["jobs"][0]["output"];
    assert_eq!(output[0], json!({"ok": "from the host"}), "{output}");
    assert!(output[1]["err"].is_string(), "read-only: {output}");
    assert!(!shared.path().join("new.txt").exists());
    server.stop().await;
}

#[tokio::test]
async fn compiling_is_bounded_in_time() {
    let empty = tempfile::tempdir().expect("tempdir");
    let folder = empty.path().to_owned();
    let server = TestServer::start_with(Vec::new(), |config| {
        config.plugins_dir = Some(folder.clone());
        config.compile_timeout = Duration::from_millis(1);
    })
    .await;
    // A content never compiled before (the compile cache is shared by the
    // tests): compiling it takes far longer than 1 ms.
    let bytes = std::fs::read(plugin_path("wordcount")).expect("read");
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as usize;
    let staged = folder.join(".slow.partial");
    std::fs::write(&staged, warren_sandbox::plugin::with_marker(&bytes, unique)).expect("write");
    std::fs::rename(&staged, folder.join("slow.wasm")).expect("rename");
    let reason = wait_for_quarantine(&server, "slow.wasm").await;
    assert!(
        reason.contains("compiling took longer than 0.001 s"),
        "{reason}"
    );
    server.assert_healthy().await;
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_file_does_not_reset_what_needs_approval() {
    let server = TestServer::open().await;
    let dir = folder(&server);
    std::fs::write(
        dir.join("modest.toml"),
        "spawn = false\nmemory = [\"run\"]\n",
    )
    .expect("manifest");
    drop_plugin(&dir, "modest", &guest_path("toolbox"));
    let v1 = sha256_of(&guest_path("toolbox"));
    wait_for_plugin(&server, "modest", |p| p["active"] == v1.as_str()).await;

    std::fs::remove_file(dir.join("modest.wasm")).expect("delete");
    wait_for_plugin(&server, "modest", |p| p["status"] == "retired").await;
    // New content asking for more, after the delete: still held.
    std::fs::write(dir.join("modest.toml"), "spawn = true\n").expect("manifest");
    drop_plugin(&dir, "modest", &plugin_path("echo"));
    let v2 = sha256_of(&plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "modest", |p| {
        p["versions"].as_array().is_some_and(|v| v.len() == 2)
    })
    .await;
    assert_eq!(
        version(&plugin, &v2)["state"],
        "pending_approval",
        "{plugin}"
    );
    assert_eq!(plugin["status"], "retired");

    // A newer file supersedes a version still waiting for approval.
    std::fs::write(
        dir.join("modest.toml"),
        "spawn = false\nmemory = [\"run\"]\n",
    )
    .expect("manifest");
    drop_plugin(&dir, "modest", &plugin_path("wordcount"));
    let v3 = sha256_of(&plugin_path("wordcount"));
    let plugin = wait_for_plugin(&server, "modest", |p| p["active"] == v3.as_str()).await;
    assert_eq!(plugin["active"], v3.as_str(), "{plugin}");
    let superseded = version(&plugin, &v2);
    assert_eq!(superseded["state"], "inactive");
    assert_eq!(
        superseded["note"],
        "replaced by a newer file before approval"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_job_of_an_ended_run_gets_its_version_back_after_a_restart() {
    let mut server = TestServer::open().await;
    let dir = folder(&server);
    drop_plugin(&dir, "fickle", &guest_path("toolbox"));
    let old = sha256_of(&guest_path("toolbox"));
    wait_for_plugin(&server, "fickle", |p| p["active"] == old.as_str()).await;
    let pipeline = json!({"jobs": {"only": {"plugin": "fickle",
        "input": [{"op": "fail_until", "attempt": 2}], "retry": {"max_attempts": 1}}}});
    let (status, created) = server
        .post("/v1/runs", &json!({"pipeline": pipeline}))
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "failed").await;
    let job = run["jobs"][0]["id"].as_str().expect("job").to_owned();

    // Another version becomes active, and the restart loads only that one.
    drop_plugin(&dir, "fickle", &plugin_path("echo"));
    let new = sha256_of(&plugin_path("echo"));
    wait_for_plugin(&server, "fickle", |p| p["active"] == new.as_str()).await;
    server.restart().await;

    let (status, body) = server
        .post(&format!("/v1/jobs/{job}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    let (_, job) = server.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(job["attempts"][1]["plugin_digest"], old.as_str(), "{job}");
    server.stop().await;
}

#[tokio::test]
async fn a_run_can_spawn_a_plugin_it_uses_after_it_is_retired() {
    let server = TestServer::open().await;
    let dir = folder(&server);
    drop_plugin(&dir, "spawner", &guest_path("toolbox"));
    let digest = sha256_of(&guest_path("toolbox"));
    wait_for_plugin(&server, "spawner", |p| p["active"] == digest.as_str()).await;
    let ops = json!([
        {"op": "sleep_ms", "ms": 800},
        {"op": "spawn", "plugin": "spawner", "input": [{"op": "context"}], "reason": "again"},
    ]);
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"jobs": {"first": {"plugin": "spawner", "input": ops}}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    server.wait_for_state(&run_id, "running").await;
    std::fs::remove_file(dir.join("spawner.wasm")).expect("delete");
    wait_for_plugin(&server, "spawner", |p| p["status"] == "retired").await;

    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    let jobs = run["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{run}");
    assert!(
        jobs[0]["output"][1]["ok"].is_string(),
        "the spawn was accepted: {run}"
    );
    let child = jobs[1]["id"].as_str().expect("child");
    let (_, child) = server.get(&format!("/v1/jobs/{child}")).await;
    assert_eq!(
        child["attempts"][0]["plugin_digest"],
        digest.as_str(),
        "{child}"
    );
    server.stop().await;
}

/// A file a run waits for is compiled beside the start's workers; when they
/// finish the rest first, the start still waits for that compile instead of
/// letting the run go on without its plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_the_largest_file_gets_it_after_the_others_are_done() {
    let root = tempfile::tempdir().expect("tempdir");
    let folder = root.path().join("plugins");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::copy(plugin_path("echo"), folder.join("small.wasm")).expect("small");
    std::fs::copy(plugin_path("wordcount"), folder.join("large.wasm")).expect("large");
    let mut server = start_uncached(root.path(), folder).await;
    // Submitted while `small` compiles: `large` leaves the queue for the
    // run, and the workers have nothing left once `small` is done.
    let run = run_one_job(&server, "large", json!({"text": "a b c"})).await;
    assert_eq!(
        run.state,
        warren_vocabulary::RunState::Completed,
        "{:?}",
        run.jobs[0].error
    );
    assert_eq!(
        run.jobs[0].output.as_ref().map(|o| &o["input_words"]),
        Some(&json!(3))
    );
    server.ready().await;
    assert_eq!(server.engine.plugins().names().len(), 2);
    server.shutdown().await.expect("shutdown");
}

/// `warren serve` on `folder` with a compile cache of its own under `root`
/// (nothing in it compiled yet).
async fn start_uncached(root: &Path, folder: PathBuf) -> warren::serve::RunningServer {
    let config = warren::config::ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: root.join("data"),
        plugins_dir: Some(folder),
        cache_dir: Some(root.join("cache")),
        ..warren::config::ServeConfig::default()
    };
    warren::serve::start(&config).await.expect("starts")
}

/// Submits a one-job run of `plugin` over HTTP (refused runs fail the
/// test) and waits for its end.
async fn run_one_job(
    server: &warren::serve::RunningServer,
    plugin: &str,
    input: Value,
) -> warren::db::runs::RunRecord {
    let created = reqwest::Client::new()
        .post(format!("http://{}/v1/runs", server.addr))
        .json(&json!({"pipeline": {"jobs": {"a": {"plugin": plugin, "input": input}}}}))
        .send()
        .await
        .expect("submit");
    assert_eq!(
        created.status(),
        201,
        "the run waited instead of being refused"
    );
    let id = created.json::<Value>().await.expect("body")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    server
        .engine
        .wait(&id, std::time::Duration::from_secs(60))
        .await
        .expect("run ends")
}

/// A start answers before it has compiled the folder: the uncached files
/// compile in the background, and a run naming one of them is not refused
/// but waits for it (the file runs wait for is compiled first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_answers_at_once_and_runs_wait_for_plugins_still_compiling() {
    let root = tempfile::tempdir().expect("tempdir");
    let folder = root.path().join("plugins");
    std::fs::create_dir_all(&folder).expect("folder");
    let echo = std::fs::read(plugin_path("echo")).expect("echo");
    for i in 0..6 {
        let bytes = warren_sandbox::plugin::with_marker(&echo, 1_000 + i);
        std::fs::write(folder.join(format!("copy-{i}.wasm")), bytes).expect("copy");
    }
    let mut server = start_uncached(root.path(), folder).await;
    // Compiling six components takes far longer than returning from start.
    let loading = server.engine.plugins().loading().borrow().names.len();
    assert!(loading > 0, "start waited for the compiles");
    let health = reqwest::get(format!("http://{}/health", server.addr))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    let run = run_one_job(&server, "copy-5", json!({"n": 5})).await;
    assert_eq!(run.state, warren_vocabulary::RunState::Completed);
    assert_eq!(run.jobs[0].output, Some(json!({"n": 5})));

    server.ready().await;
    assert_eq!(server.engine.plugins().names().len(), 6);
    assert!(server.engine.plugins().loading().borrow().names.is_empty());
    server.shutdown().await.expect("shutdown");
}

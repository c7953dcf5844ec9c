//! Agents end to end through a real `warren serve`: `describe()` at load,
//! documents per story, `pending_docs` and the automatic resume, the
//! `agent` memory scope, and the flow endpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::TestServer;
use crate::support::{guest_path, plugin_path};

/// A plugins folder with the three example agents, the scriptable test
/// agent (twice, under two names), and `echo` and `spin-forever` for
/// flows that end or run long.
fn agents_dir(root: &Path, extra: &[&str]) -> PathBuf {
    let dir = root.join("agents");
    std::fs::create_dir_all(&dir).expect("plugins dir");
    for name in ["analyst", "writer", "reviewer", "echo"] {
        std::fs::copy(plugin_path(name), dir.join(format!("{name}.wasm"))).expect("copy plugin");
    }
    for (guest, name) in [
        ("agent_ops", "agent-ops"),
        ("agent_ops", "agent-ops-b"),
        ("spin_forever", "spin-forever"),
    ]
    .into_iter()
    .chain(extra.iter().map(|name| (*name, *name)))
    {
        std::fs::copy(
            guest_path(guest),
            dir.join(format!("{}.wasm", name.replace('_', "-"))),
        )
        .expect("copy guest");
    }
    dir
}

/// A server over [`agents_dir`] (plus `extra` test guests); the folder
/// lives as long as the returned guard.
async fn start(extra: &[&str]) -> (TestServer, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = agents_dir(root.path(), extra);
    let server = TestServer::start_with(Vec::new(), |config| {
        config.plugins_dir = Some(dir);
        config.request_timeout = Duration::from_secs(5);
    })
    .await;
    (server, root)
}

async fn put_document(server: &TestServer, story: &str, name: &str, text: &str) -> (u16, Value) {
    let response = server
        .request(
            reqwest::Method::PUT,
            &format!("/v1/stories/{story}/documents/{name}"),
        )
        .header("content-type", "text/plain")
        .body(text.to_owned())
        .send()
        .await
        .expect("PUT");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn document_text(server: &TestServer, story: &str, name: &str) -> (u16, String) {
    let response = server
        .request(
            reqwest::Method::GET,
            &format!("/v1/stories/{story}/documents/{name}"),
        )
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn add_template(server: &TestServer, name: &str, pipeline: Value) {
    let (status, body) = server
        .post(
            "/v1/templates",
            &json!({"name": name, "pipeline": pipeline}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn job<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job {name} in {run}"))
}

#[tokio::test]
async fn describe_is_called_at_load_and_shown_with_the_plugin() {
    let (server, _dir) = start(&[]).await;
    let (status, analyst) = server.get("/v1/plugins/analyst").await;
    assert_eq!(status, 200, "{analyst}");
    assert_eq!(
        analyst["versions"][0]["agent"],
        json!({
            "name": "analyst",
            "version": "1.0.0",
            "description": "Finds the key words of a brief and writes an analysis",
            "requires": ["brief"],
            "produces": ["analysis"],
        })
    );
    let (_, echo) = server.get("/v1/plugins/echo").await;
    assert_eq!(echo["versions"][0]["agent"], Value::Null, "a job has none");
    server.stop().await;
}

#[tokio::test]
async fn an_agent_whose_describe_traps_loops_or_talks_nonsense_is_quarantined() {
    let (server, _dir) = start(&["describe_trap", "describe_loop", "describe_nonsense"]).await;
    let (_, list) = server.get("/v1/plugins").await;
    let reason = |file: &str| -> String {
        list["quarantined"]
            .as_array()
            .and_then(|q| q.iter().find(|e| e["file"] == file))
            .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{file} is not quarantined: {list}"))
    };
    let trap = reason("describe-trap.wasm");
    assert!(
        trap.contains("describe() failed") && trap.contains("no description today"),
        "{trap}"
    );
    let looping = reason("describe-loop.wasm");
    assert!(
        looping.contains("describe() failed: limit hit"),
        "{looping}"
    );
    let nonsense = reason("describe-nonsense.wasm");
    assert!(
        nonsense.contains("describe() answered nonsense: it requires \"brief\" twice"),
        "{nonsense}"
    );
    for name in ["describe-trap", "describe-loop", "describe-nonsense"] {
        let (status, _) = server.get(&format!("/v1/plugins/{name}")).await;
        assert_eq!(status, 404, "{name} is not loaded");
    }
    // The good agents of the folder are loaded all the same.
    let (status, _) = server.get("/v1/plugins/analyst").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_flow_waits_for_its_documents_then_goes_on_by_itself() {
    let (server, _dir) = start(&[]).await;
    let (status, created) = server
        .post(
            "/v1/runs",
            &json!({"template": "brief-to-review", "input": {}, "story_id": "story-1"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&run_id, "needs_input").await;
    assert_eq!(run["state"], "needs_input", "{run}");
    assert_eq!(run["pending_docs"], json!(["brief"]));
    let analyse = job(&run, "analyse");
    assert_eq!(analyse["state"], "needs_input");
    assert_eq!(analyse["pending_docs"], json!(["brief"]));
    assert_eq!(analyse["attempts"], 0, "no attempt without its documents");
    assert_eq!(job(&run, "write")["state"], "pending");

    let brief = "Rivers carry water. Rivers carve valleys; water shapes rivers and valleys.";
    let (status, put) = put_document(&server, "story-1", "brief", brief).await;
    assert_eq!(status, 201, "{put}");
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["pending_docs"], json!([]));
    let review = job(&run, "review");
    assert_eq!(review["output"]["verdict"], "approve", "{review}");
    assert_eq!(review["output"]["of"], 5, "{review}");
    assert_eq!(review["output"]["draft_number"], 1, "read from upstream");

    // What the agents wrote are story documents, with who wrote them.
    let (status, analysis) = document_text(&server, "story-1", "analysis").await;
    assert_eq!(status, 200);
    let analysis: Value = serde_json::from_str(&analysis).expect("analysis is JSON");
    assert_eq!(analysis["keywords"][0], "rivers");
    let (status, draft) = document_text(&server, "story-1", "draft").await;
    assert_eq!(status, 200);
    assert!(draft.starts_with("# Draft 1: rivers"), "{draft}");
    let (_, versions) = server
        .get("/v1/stories/story-1/documents/draft/versions")
        .await;
    let latest = &versions["versions"][0];
    assert_eq!(latest["version"], 1, "{versions}");
    assert_eq!(latest["writer"]["kind"], "job", "{versions}");
    assert_eq!(latest["writer"]["job_id"], job(&run, "write")["id"]);
    // ...and run artifacts.
    let (_, artifacts) = server.get(&format!("/v1/runs/{run_id}/artifacts")).await;
    let names: Vec<&str> = artifacts["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for name in ["documents/analysis", "documents/draft", "documents/review"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }

    // A second run of the story finds every document there: it does not
    // wait, and the writer's own memory counts a second draft.
    let (_, second) = server
        .post(
            "/v1/runs",
            &json!({"template": "brief-to-review", "story_id": "story-1"}),
        )
        .await;
    let second = second["id"].as_str().expect("id").to_owned();
    let run = server.wait_for_state(&second, "completed").await;
    assert_eq!(job(&run, "review")["output"]["draft_number"], 2, "{run}");
    let (_, versions) = server
        .get("/v1/stories/story-1/documents/draft/versions")
        .await;
    assert_eq!(versions["versions"][0]["version"], 2, "{versions}");
    server.stop().await;
}

#[tokio::test]
async fn post_run_answers_with_the_result_the_pending_docs_a_failure_or_202() {
    let (server, _dir) = start(&[]).await;
    // Waiting for documents: 200, with where to write them.
    let (status, answer) = server
        .post("/v1/run", &json!({"input": {}, "story_id": "s-2"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "needs_input");
    assert_eq!(answer["pending_docs"], json!(["brief"]));
    assert_eq!(answer["documents_story"], "s-2");
    assert!(answer["run_id"].is_string());

    // The brief written, the same request answers with the result.
    put_document(
        &server,
        "s-2",
        "brief",
        "Bridges span rivers. Bridges need steel.",
    )
    .await;
    let waiting = answer["run_id"].as_str().expect("id").to_owned();
    let (status, answer) = server
        .post(
            "/v1/flows/brief-to-review/run",
            &json!({"input": {"focus": "bridges"}, "story_id": "s-2"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "completed");
    assert_eq!(answer["result"]["verdict"], "approve", "{answer}");
    // The first run, waiting, went on by itself when the brief came.
    let first = server.wait_for_state(&waiting, "completed").await;
    assert_eq!(first["state"], "completed");

    // A failed flow is an answer, not a server error.
    add_template(
        &server,
        "fails",
        json!({"jobs": {"only": {"plugin": "agent-ops",
            "input": {"ops": [{"op": "fail", "message": "the model said no"}]}}}}),
    )
    .await;
    let (status, answer) = server
        .post("/v1/run", &json!({"flow": "fails", "input": {}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "failed");
    assert_eq!(answer["error"]["job"], "only");
    assert_eq!(answer["error"]["code"], "job_failed");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the model said no")),
        "{answer}"
    );

    // Still running after `wait_ms`: 202, and where to follow it.
    add_template(
        &server,
        "slow",
        json!({"jobs": {"spin": {"plugin": "spin-forever", "limits": {"timeout_ms": 3000}}}}),
    )
    .await;
    let response = server
        .request(reqwest::Method::POST, "/v1/flows/slow/run")
        .json(&json!({"input": {}, "wait_ms": 100}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let answer: Value = response.json().await.expect("json");
    assert!(
        answer["state"] == "running" || answer["state"] == "pending",
        "{answer}"
    );
    assert_eq!(
        location,
        format!("/v1/runs/{}", answer["run_id"].as_str().expect("id"))
    );

    // Bad requests get the usual errors.
    let (status, error) = server
        .post("/v1/run", &json!({"flow": "no-such-flow", "input": {}}))
        .await;
    assert_eq!(
        (status, &error["code"]),
        (404, &json!("unknown_flow")),
        "{error}"
    );
    let (status, error) = server.post("/v1/run", &json!({"story_id": "s"})).await;
    assert_eq!(
        (status, &error["code"]),
        (422, &json!("invalid_body")),
        "{error}"
    );
    let (status, error) = server
        .post("/v1/run", &json!({"input": {}, "wait_ms": "soon"}))
        .await;
    assert_eq!(
        (status, &error["code"]),
        (422, &json!("invalid_body")),
        "{error}"
    );
    let (status, error) = server
        .post("/v1/run", &json!({"input": {}, "story_id": "a/b"}))
        .await;
    assert_eq!(
        (status, &error["code"]),
        (400, &json!("invalid_id")),
        "{error}"
    );
    server.stop().await;
}

#[tokio::test]
async fn agent_memory_is_each_plugins_own_and_story_memory_is_shared() {
    let (server, _dir) = start(&[]).await;
    add_template(
        &server,
        "memories",
        json!({"jobs": {
            "first": {"plugin": "agent-ops", "input": {"ops": [
                {"op": "agent_set", "key": "k", "value": "first's"},
                {"op": "story_set", "key": "k", "value": "shared"}]}},
            "second": {"plugin": "agent-ops-b", "needs": ["first"], "input": {"ops": []}},
        }}),
    )
    .await;
    let (status, answer) = server
        .post(
            "/v1/flows/memories/run",
            &json!({"input": {}, "story_id": "m-1"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let seen = &answer["result"];
    assert_eq!(
        seen["agent_k"],
        Value::Null,
        "another plugin's agent keys: {seen}"
    );
    assert_eq!(seen["story_k"], "shared");
    assert_eq!(seen["upstream"]["first"]["agent_k"], "first's", "{seen}");

    // The same plugin in another run of the story finds its own keys.
    add_template(
        &server,
        "recall",
        json!({"jobs": {"again": {"plugin": "agent-ops", "input": {"ops": []}}}}),
    )
    .await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "recall", "input": {}, "story_id": "m-1"}),
        )
        .await;
    assert_eq!(answer["result"]["agent_k"], "first's", "{answer}");
    // Another story sees neither.
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "recall", "input": {}, "story_id": "m-2"}),
        )
        .await;
    assert_eq!(answer["result"]["agent_k"], Value::Null, "{answer}");
    assert_eq!(answer["result"]["story_k"], Value::Null, "{answer}");
    // Without a story there is no agent memory.
    add_template(
        &server,
        "no-story",
        json!({"jobs": {"x": {"plugin": "agent-ops",
            "input": {"ops": [{"op": "agent_set", "key": "k", "value": "v"}]}}}}),
    )
    .await;
    let (_, answer) = server
        .post("/v1/run", &json!({"flow": "no-story", "input": {}}))
        .await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no story, so no agent memory")),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_agent_asking_for_documents_waits_for_them_and_is_then_given_them() {
    let (server, _dir) = start(&[]).await;
    add_template(
        &server,
        "asks",
        json!({"jobs": {"ask": {"plugin": "agent-ops",
            "input": {"ops": [{"op": "needs_unless_given", "names": ["extra"]}]}}}}),
    )
    .await;
    // Not written yet: the job waits for it, then goes on with it.
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "asks", "input": {}, "story_id": "a-1"}),
        )
        .await;
    assert_eq!(answer["state"], "needs_input", "{answer}");
    assert_eq!(answer["pending_docs"], json!(["extra"]));
    let run_id = answer["run_id"].as_str().expect("id").to_owned();
    put_document(&server, "a-1", "extra", "here it is").await;
    let run = server.wait_for_state(&run_id, "completed").await;
    let ask = job(&run, "ask");
    assert_eq!(ask["attempts"], 2, "{run}");
    assert_eq!(ask["output"]["documents"]["extra"], "here it is");
    // Written already: the next attempt gets it at once.
    put_document(&server, "a-2", "extra", "there already").await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "asks", "input": {}, "story_id": "a-2"}),
        )
        .await;
    assert_eq!(answer["state"], "completed", "{answer}");
    assert_eq!(answer["result"]["documents"]["extra"], "there already");
    server.stop().await;
}

#[tokio::test]
async fn a_job_asking_for_a_document_that_exists_waits_without_looping() {
    let (server, _dir) = start(&["toolbox"]).await;
    put_document(&server, "t-1", "x", "there").await;
    add_template(
        &server,
        "job-asks",
        json!({"jobs": {"ask": {"plugin": "toolbox",
            "input": [{"op": "fail", "kind": "needs_input", "message": "x"}]}}}),
    )
    .await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "job-asks", "input": {}, "story_id": "t-1"}),
        )
        .await;
    let (_, run) = server
        .get(&format!(
            "/v1/runs/{}",
            answer["run_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(answer["state"], "needs_input", "{answer} {run}");
    // A job is given no documents: starting it again at once would only
    // ask again, so it waits for a write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, run) = server
        .get(&format!(
            "/v1/runs/{}",
            answer["run_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(job(&run, "ask")["attempts"], 1, "{run}");
    assert_eq!(job(&run, "ask")["pending_docs"], json!(["x"]));
    server.stop().await;
}

#[tokio::test]
async fn documents_an_agent_cannot_keep_fail_its_attempt_and_nothing_is_kept() {
    let (server, _dir) = start(&[]).await;
    add_template(
        &server,
        "bad-names",
        json!({"jobs": {"w": {"plugin": "agent-ops", "input": {"ops": [
            {"op": "write", "name": "fine", "content": "ok"},
            {"op": "write", "name": "../escape", "content": "x"}]}}}}),
    )
    .await;
    add_template(
        &server,
        "too-big",
        json!({"jobs": {"w": {"plugin": "agent-ops", "input": {"ops": [
            {"op": "write_big", "name": "huge", "bytes": 1_048_577}]}}}}),
    )
    .await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "bad-names", "input": {}, "story_id": "d-1"}),
        )
        .await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"../escape\" has an invalid name")),
        "{answer}"
    );
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "too-big", "input": {}, "story_id": "d-1"}),
        )
        .await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is 1048577 bytes, more than the 1048576 allowed")),
        "{answer}"
    );
    let (status, listed) = server.get("/v1/stories/d-1/documents").await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["documents"],
        json!([]),
        "nothing half-written: {listed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_jobs_waiting_and_a_put_after_it_resumes_them() {
    let (mut server, _dir) = start(&[]).await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"input": {}, "story_id": "r-1", "wait_ms": 2000}),
        )
        .await;
    assert_eq!(answer["state"], "needs_input", "{answer}");
    let run_id = answer["run_id"].as_str().expect("id").to_owned();
    server.restart().await;
    let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["state"], "needs_input", "{run}");
    assert_eq!(run["pending_docs"], json!(["brief"]));
    put_document(&server, "r-1", "brief", "Lanterns light harbours at night.").await;
    let run = server.wait_for_state(&run_id, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(job(&run, "review")["output"]["verdict"], "approve");

    // A brief written while the server is down is found at the next start.
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"input": {}, "story_id": "r-2", "wait_ms": 2000}),
        )
        .await;
    let waiting = answer["run_id"].as_str().expect("id").to_owned();
    assert_eq!(answer["state"], "needs_input");
    let server_config = server.config.clone();
    if let Some(running) = server.server.take() {
        running.shutdown().await.expect("shutdown");
    }
    {
        // Written straight into the stopped server's database.
        let db = warren::db::Database::open(
            &server_config.data_dir.join("warren.db"),
            warren::db::Durability::Normal,
        )
        .expect("open");
        db.write(|conn| {
            warren::db::documents::put_from_job(conn, "r-2", "brief", "Owls hunt mice.", "x", "y")
                .map(|_| ())
        })
        .await
        .expect("write");
    }
    server.restart().await;
    let run = server.wait_for_state(&waiting, "completed").await;
    assert_eq!(run["state"], "completed", "{run}");
    server.stop().await;
}

#[tokio::test]
async fn ten_stories_running_one_flow_at_once_never_see_each_others_documents_or_memory() {
    let (server, _dir) = start(&[]).await;
    let words = [
        "anchors", "beacons", "cables", "dunes", "embers", "ferns", "glaciers", "harbours",
        "islands", "jetties",
    ];
    for (i, word) in words.iter().enumerate() {
        let brief = format!("{word} {word} {word}. Notes about {word}.");
        let (status, _) = put_document(&server, &format!("iso-{i}"), "brief", &brief).await;
        assert_eq!(status, 201);
    }
    // All ten at once, each on its own connection.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..words.len() {
        let url = format!("{}/v1/run", server.base);
        requests.spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"input": {}, "story_id": format!("iso-{i}"), "wait_ms": 4000}))
                .send()
                .await
                .expect("POST");
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.expect("json"))
        });
    }
    let mut answers = requests.join_all().await;
    answers.sort_by_key(|(i, _, _)| *i);
    for (i, status, answer) in &answers {
        let i = *i;
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["state"], "completed", "{answer}");
        let (_, draft) = document_text(&server, &format!("iso-{i}"), "draft").await;
        assert!(draft.contains(words[i]), "story {i}: {draft}");
        for (j, other) in words.iter().enumerate() {
            if j != i {
                assert!(!draft.contains(other), "story {i} saw {other}: {draft}");
            }
        }
        let (_, memory) = server.get(&format!("/v1/stories/iso-{i}/memory")).await;
        let keywords = memory["entries"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["key"] == "keywords"))
            .map(|e| e["value"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(keywords.contains(words[i]), "{memory}");
        assert_eq!(answer["result"]["draft_number"], 1, "one draft per story");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_agent_built_against_the_first_contract_gets_its_documents() {
    let (server, _dir) = start(&["agent_v010"]).await;
    let (status, plugin) = server.get("/v1/plugins/agent-v010").await;
    assert_eq!(status, 200, "{plugin}");
    let imports = plugin["versions"][0]["imports"].to_string();
    assert!(
        !imports.contains("agent-memory") && !imports.contains("agent-inputs"),
        "{imports}"
    );
    add_template(
        &server,
        "old",
        json!({"jobs": {"old": {"plugin": "agent-v010"}}}),
    )
    .await;
    put_document(&server, "v-1", "brief", "twelve bytes").await;
    let (status, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "old", "input": {}, "story_id": "v-1"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["documents"], "'brief':12", "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn an_agents_document_is_an_artifact_kept_once_in_the_story_and_read_like_any() {
    let (server, _dir) = start(&["toolbox"]).await;
    add_template(
        &server,
        "analyse-then-read",
        json!({"jobs": {
            "analyse": {"plugin": "analyst"},
            "read": {"plugin": "toolbox", "needs": ["analyse"], "output": true, "input": [
                {"op": "get", "name": "analyse/documents/analysis"},
                {"op": "read_file", "path": "/in/analyse/documents/analysis"},
            ]},
        }}),
    )
    .await;
    let brief = "Rivers carry water. Rivers carve valleys; water shapes rivers and valleys.";
    put_document(&server, "kept-once", "brief", brief).await;
    let (_, answer) = server
        .post(
            "/v1/run",
            &json!({"flow": "analyse-then-read", "input": {}, "story_id": "kept-once"}),
        )
        .await;
    assert_eq!(answer["state"], "completed", "{answer}");
    let run_id = answer["run_id"].as_str().expect("id").to_owned();
    let (status, analysis) = document_text(&server, "kept-once", "analysis").await;
    assert_eq!(status, 200);

    // The downstream job read it through `artifacts.get` and under `/in`.
    let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    let read = &job(&run, "read")["output"];
    assert_eq!(read[0]["ok"], analysis.as_str(), "{read}");
    assert_eq!(read[1]["ok"], analysis.as_str(), "{read}");

    // Listed with the run's artifacts and downloaded byte for byte...
    let (_, artifacts) = server.get(&format!("/v1/runs/{run_id}/artifacts")).await;
    let artifact = artifacts["artifacts"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["name"] == "documents/analysis"))
        .unwrap_or_else(|| panic!("no documents/analysis in {artifacts}"))
        .clone();
    let sha256 = artifact["sha256"].as_str().expect("sha256").to_owned();
    assert_eq!(artifact["size"], analysis.len());
    let download = || async {
        let response = server
            .request(reqwest::Method::GET, &format!("/v1/artifacts/{sha256}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.expect("bytes").to_vec()
    };
    assert_eq!(download().await, analysis.as_bytes());
    // ...though no blob was written for it: its bytes are the document's.
    let blob = server
        .config
        .data_dir
        .join("artifacts/sha256")
        .join(&sha256[..2])
        .join(&sha256);
    assert!(!blob.exists(), "{} was written", blob.display());

    // Deleting the document keeps the artifact: it gets its blob then.
    let response = server
        .request(
            reqwest::Method::DELETE,
            "/v1/stories/kept-once/documents/analysis",
        )
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);
    assert!(blob.exists(), "no blob once the document is deleted");
    assert_eq!(download().await, analysis.as_bytes());
    server.stop().await;
}

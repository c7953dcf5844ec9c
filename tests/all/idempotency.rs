//! `Idempotency-Key` end to end: a request sent again gets the first answer
//! and creates nothing more, also across a crash between the commit and the
//! reply, and two at once create one run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ADMIN, CLIENT, TestServer, admin_and_client};
use crate::support::plugin_path;

const KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// A run of one echo job, with `input`.
fn run_body(input: &str) -> Value {
    json!({"pipeline": {"jobs": {"a": {"plugin": "echo"}}}, "input": {"say": input}})
}

/// An answer: status, the `idempotent-replayed` and `location` headers, the
/// body as sent and as JSON.
struct Answer {
    status: u16,
    replayed: Option<String>,
    location: Option<String>,
    text: String,
    json: Value,
}

async fn post_with_key(server: &TestServer, path: &str, key: &str, body: &Value) -> Answer {
    let response = server
        .request(reqwest::Method::POST, path)
        .header(KEY, key)
        .json(body)
        .send()
        .await
        .expect("POST");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("text").to_owned())
    };
    let (replayed, location) = (header(REPLAYED), header("location"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        replayed,
        location,
        text,
        json,
    }
}

async fn run_ids(server: &TestServer) -> Vec<String> {
    let (status, page) = server.get("/v1/runs?limit=500").await;
    assert_eq!(status, 200, "{page}");
    page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_same_key_and_body_get_the_first_answer_and_create_one_run() {
    let mut server = TestServer::start_with(admin_and_client(), |_| {}).await;
    server.token = Some(CLIENT);
    let body = run_body("once");
    let first = post_with_key(&server, "/v1/runs", "order-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.replayed, None);
    let id = first.json["id"].as_str().expect("id").to_owned();
    assert_eq!(
        first.location.as_deref(),
        Some(format!("/v1/runs/{id}").as_str())
    );

    let again = post_with_key(&server, "/v1/runs", "order-1", &body).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(again.text, first.text, "the same body, byte for byte");
    assert_eq!(again.location, first.location);
    assert_eq!(run_ids(&server).await, vec![id.clone()]);

    // Keys belong to their token: another token's same key is its own.
    server.token = Some(ADMIN);
    let other = post_with_key(&server, "/v1/runs", "order-1", &body).await;
    assert_eq!((other.status, other.replayed), (201, None));
    let other_id = other.json["id"].as_str().expect("id").to_owned();
    assert_ne!(other_id, id);
    // A request without a key is never a replay.
    let (status, plain) = server.post("/v1/runs", &body).await;
    assert_eq!(status, 201);
    assert_ne!(plain["id"], json!(id));
    let mut ids = run_ids(&server).await;
    ids.sort();
    let mut expected = vec![id, other_id, plain["id"].as_str().expect("id").to_owned()];
    expected.sort();
    assert_eq!(ids, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_key_sent_with_another_request_is_refused_and_a_refused_request_keeps_no_key() {
    let server = TestServer::open().await;
    let first = post_with_key(&server, "/v1/runs", "k-1", &run_body("first")).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let other_body = post_with_key(&server, "/v1/runs", "k-1", &run_body("second")).await;
    assert_eq!(
        (other_body.status, &other_body.json["code"]),
        (422, &json!("idempotency_key_reused")),
        "{}",
        other_body.text
    );
    assert_eq!(other_body.replayed, None);
    let template = json!({"name": "t", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}});
    let other_path = post_with_key(&server, "/v1/templates", "k-1", &template).await;
    assert_eq!(
        (other_path.status, &other_path.json["code"]),
        (422, &json!("idempotency_key_reused"))
    );
    assert_eq!(run_ids(&server).await.len(), 1);
    let (status, _) = server.get("/v1/templates/t").await;
    assert_eq!(status, 404, "the refused request stored nothing");

    // A request refused for its body created nothing: its key stays free.
    let bad = json!({"pipeline": {"jobs": {"a": {"plugin": "no-such-plugin"}}}});
    let refused = post_with_key(&server, "/v1/runs", "k-2", &bad).await;
    assert_eq!(
        (refused.status, &refused.json["code"]),
        (422, &json!("invalid_pipeline"))
    );
    let fixed = post_with_key(&server, "/v1/runs", "k-2", &run_body("fixed")).await;
    assert_eq!(
        (fixed.status, fixed.replayed),
        (201, None),
        "{}",
        fixed.text
    );
    assert_eq!(run_ids(&server).await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_refused_before_anything_is_created() {
    let server = TestServer::open().await;
    let body = run_body("x");
    let longest = "k".repeat(255);
    let ok = post_with_key(&server, "/v1/runs", &longest, &body).await;
    assert_eq!(ok.status, 201, "{}", ok.text);

    let too_long = "k".repeat(256);
    for key in [too_long.as_str(), "tab\there", ""] {
        let refused = post_with_key(&server, "/v1/runs", key, &body).await;
        assert_eq!(
            (refused.status, &refused.json["code"]),
            (400, &json!("invalid_header")),
            "{key:?}: {}",
            refused.text
        );
        assert!(
            refused.json["message"]
                .as_str()
                .is_some_and(|m| m.contains("Idempotency-Key")),
            "{}",
            refused.text
        );
    }
    let twice = server
        .request(reqwest::Method::POST, "/v1/runs")
        .header(KEY, "a")
        .header(KEY, "b")
        .json(&body)
        .send()
        .await
        .expect("POST");
    let twice = answer(twice).await;
    assert_eq!(
        (twice.status, &twice.json["code"]),
        (400, &json!("invalid_header"))
    );
    assert_eq!(run_ids(&server).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_create_one_run() {
    let server = std::sync::Arc::new(TestServer::open().await);
    let body = run_body("together");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (server, body) = (server.clone(), body.clone());
        requests.spawn(async move { post_with_key(&server, "/v1/runs", "at-once", &body).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = requests.join_next().await {
        answers.push(answer.expect("joined"));
    }
    let ids: Vec<&Value> = answers.iter().map(|a| &a.json["id"]).collect();
    assert!(
        answers.iter().all(|a| a.status == 201),
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let fresh = answers.iter().filter(|a| a.replayed.is_none()).count();
    assert_eq!(fresh, 1, "one answer is the first, the others are replays");
    assert_eq!(
        run_ids(&server).await,
        vec![ids[0].as_str().expect("id").to_owned()]
    );
    let server = std::sync::Arc::into_inner(server).expect("one owner");
    server.stop().await;
}

#[tokio::test]
async fn template_versions_and_plugin_uploads_take_keys_too() {
    let server = TestServer::open().await;
    let template = json!({"name": "keyed", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}});
    let first = post_with_key(&server, "/v1/templates", "tpl-1", &template).await;
    assert_eq!(
        (first.status, &first.json["version"]),
        (201, &json!(1)),
        "{}",
        first.text
    );
    let again = post_with_key(&server, "/v1/templates", "tpl-1", &template).await;
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(again.text, first.text);
    let (status, latest) = server.get("/v1/templates/keyed").await;
    assert_eq!(
        (status, &latest["version"]),
        (200, &json!(1)),
        "no second version"
    );
    let (status, next) = server.post("/v1/templates", &template).await;
    assert_eq!(
        (status, &next["version"]),
        (201, &json!(2)),
        "without a key: a new version"
    );

    // Starting a run from the template, by key.
    let from_template = json!({"template": "keyed", "version": 1});
    let run = post_with_key(&server, "/v1/runs", "tpl-run", &from_template).await;
    let replay = post_with_key(&server, "/v1/runs", "tpl-run", &from_template).await;
    assert_eq!(run.status, 201, "{}", run.text);
    assert_eq!(
        (replay.replayed.as_deref(), &replay.json["id"]),
        (Some("true"), &run.json["id"])
    );

    let wasm = std::fs::read(plugin_path("echo")).expect("echo.wasm");
    let upload = |key: &'static str| {
        server
            .request(reqwest::Method::POST, "/v1/plugins?name=echo-copy")
            .header(KEY, key)
            .header("content-type", "application/wasm")
            .body(wasm.clone())
            .send()
    };
    let first = answer(upload("plugin-1").await.expect("upload")).await;
    assert_eq!(
        (first.status, &first.json["state"]),
        (201, &json!("active")),
        "{}",
        first.text
    );
    let again = answer(upload("plugin-1").await.expect("upload")).await;
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(again.text, first.text);
    let (status, plugin) = server.get("/v1/plugins/echo-copy").await;
    assert_eq!(status, 200);
    assert_eq!(plugin["versions"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn keys_expire_after_the_retention_window_and_are_removed() {
    let server = TestServer::start_with(Vec::new(), |config| {
        config.idempotency_retention = Duration::from_millis(300);
    })
    .await;
    let first = post_with_key(&server, "/v1/runs", "short-lived", &run_body("a")).await;
    assert_eq!(first.status, 201);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Past the window the key is free again, even for another body.
    let later = post_with_key(&server, "/v1/runs", "short-lived", &run_body("b")).await;
    assert_eq!(
        (later.status, later.replayed),
        (201, None),
        "{}",
        later.text
    );
    assert_ne!(later.json["id"], first.json["id"]);

    let db = rusqlite::Connection::open_with_flags(
        server.config.data_dir.join("warren.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let kept: Vec<String> = db
        .prepare("SELECT body FROM idempotency_keys")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(kept, vec![later.text], "the expired key was removed");
    drop(db);
    server.stop().await;
}

/// One HTTP/1.1 request to a `warren serve` process; `None` when the
/// connection ends without an answer.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Option<(u16, String, Value)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{KEY}: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut text = String::new();
    // A killed server resets the connection or just closes it.
    let _ = stream.read_to_string(&mut text);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ))
}

/// The fault that loses the reply exists in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn a_run_committed_before_a_crash_is_answered_to_the_retry_with_its_key() {
    use std::os::unix::process::ExitStatusExt as _;

    use crate::api::{spawn_serve, spawn_serve_with_env};

    let root = tempfile::tempdir().expect("tempdir");
    let (mut first, addr) = spawn_serve_with_env(
        root.path(),
        &[],
        &[("WARREN_FAULT_KILL_AFTER_COMMIT", "lost-reply")],
    );
    let body = run_body("survives").to_string();
    // Other keys are answered as usual.
    let (status, _, before) = http(&addr, "POST", "/v1/runs", "another", &body).expect("answered");
    assert_eq!(status, 201, "{before}");
    let before = before["id"].as_str().expect("id").to_owned();

    let lost = http(&addr, "POST", "/v1/runs", "lost-reply", &body);
    assert!(lost.is_none(), "the reply should be lost: {lost:?}");
    let exit = first.wait().expect("reaped");
    assert_eq!(exit.signal(), Some(9), "killed by SIGKILL: {exit:?}");

    // The run was committed, with its key, before the reply was lost.
    let db_path = root.path().join("data").join("warren.db");
    let db = rusqlite::Connection::open(&db_path).expect("db");
    let committed: String = db
        .query_row("SELECT id FROM runs WHERE id <> ?1", [&before], |r| {
            r.get(0)
        })
        .expect("the run of the lost reply");
    let kept: String = db
        .query_row(
            "SELECT body FROM idempotency_keys WHERE key = 'lost-reply'",
            [],
            |r| r.get(0),
        )
        .expect("its key");
    assert!(kept.contains(&committed), "{kept}");
    drop(db);

    let (mut second, addr) = spawn_serve(root.path(), &[]);
    let (status, head, retried) =
        http(&addr, "POST", "/v1/runs", "lost-reply", &body).expect("answered");
    assert_eq!(status, 201, "{retried}");
    assert!(head.contains("\r\nidempotent-replayed: true"), "{head}");
    assert_eq!(retried["id"], json!(committed));
    let (status, _, page) = http(&addr, "GET", "/v1/runs", "unused-on-get", "").expect("answered");
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut expected = vec![before.as_str(), committed.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "no second run for the key");

    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    assert_eq!(second.wait().expect("exit").code(), Some(0));
}

//! A pipeline's `input_schema` through the real HTTP API: a template's
//! schema is checked when it is stored, and a run's input against it
//! before the run is.

use serde_json::{Value, json};

use crate::api::TestServer;

fn goal_schema() -> Value {
    json!({
        "type": "object",
        "required": ["goal"],
        "properties": {
            "goal": {"type": "string", "minLength": 1},
            "words": {"type": "integer", "minimum": 0}
        }
    })
}

/// Asserts a `422 invalid_input` whose message has each of `words`.
fn assert_invalid_input(status: u16, body: &Value, words: &[&str]) {
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("invalid_input")),
        "{body}"
    );
    let message = body["message"].as_str().expect("message");
    for word in words {
        assert!(message.contains(word), "{word:?} in {message}");
    }
}

/// How many runs the template has.
async fn runs_of(server: &TestServer, template: &str) -> usize {
    let (status, page) = server.get(&format!("/v1/runs?template={template}")).await;
    assert_eq!(status, 200, "{page}");
    page["runs"].as_array().expect("runs").len()
}

#[tokio::test]
async fn runs_of_a_template_must_match_its_input_schema() {
    let mut server = TestServer::open().await;
    let pipeline = json!({"input_schema": goal_schema(), "jobs": {"a": {"plugin": "echo"}}});
    let (status, created) = server
        .post(
            "/v1/templates",
            &json!({"name": "checked", "pipeline": pipeline}),
        )
        .await;
    assert_eq!((status, &created["version"]), (201, &json!(1)), "{created}");
    let (status, shown) = server.get("/v1/templates/checked").await;
    assert_eq!(status, 200);
    assert_eq!(shown["pipeline"]["input_schema"], goal_schema());

    // An input that matches starts a run, which gets that input.
    let input = json!({"goal": "count words", "words": 2});
    let (status, run) = server
        .post("/v1/runs", &json!({"template": "checked", "input": input}))
        .await;
    assert_eq!(status, 201, "{run}");
    let run = server
        .wait_for_state(run["id"].as_str().expect("id"), "completed")
        .await;
    assert_eq!(run["jobs"][0]["output"], input);

    // Each mismatch names the field and the reason; nothing is stored.
    for (input, words) in [
        (json!({"words": 2}), &["`/goal`", "required"][..]),
        (json!(null), &["`/goal`", "required"][..]),
        (
            json!({"goal": 42}),
            &["`/goal`", "not of type \"string\""][..],
        ),
        (
            json!({"goal": ""}),
            &["`/goal`", "shorter than 1 character"][..],
        ),
        (
            json!({"goal": "g", "words": -1}),
            &["`/words`", "less than the minimum of 0"][..],
        ),
        (
            json!(["goal"]),
            &["the input", "not of type \"object\""][..],
        ),
    ] {
        let (status, refused) = server
            .post("/v1/runs", &json!({"template": "checked", "input": input}))
            .await;
        assert_invalid_input(status, &refused, words);
    }
    assert_eq!(runs_of(&server, "checked").await, 1);

    // Each version has its own schema: the latest has none, and the first
    // still checks.
    let (status, created) = server
        .post(
            "/v1/templates",
            &json!({"name": "checked", "pipeline": {"jobs": {"a": {"plugin": "echo"}}}}),
        )
        .await;
    assert_eq!((status, &created["version"]), (201, &json!(2)), "{created}");
    let (status, run) = server
        .post(
            "/v1/runs",
            &json!({"template": "checked", "input": {"goal": 42}}),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    // A restart empties the cache: the first version's schema is compiled
    // again from what was stored.
    server.restart().await;
    let (status, refused) = server
        .post(
            "/v1/runs",
            &json!({"template": "checked", "version": 1, "input": {"goal": 42}}),
        )
        .await;
    assert_invalid_input(status, &refused, &["`/goal`", "string"]);
    assert_eq!(runs_of(&server, "checked").await, 2);

    // An inline pipeline's schema is checked too.
    let (status, refused) = server
        .post(
            "/v1/runs",
            &json!({"pipeline": {"input_schema": goal_schema(), "jobs": {"a": {"plugin": "echo"}}}, "input": {}}),
        )
        .await;
    assert_invalid_input(status, &refused, &["`/goal`", "required"]);
    server.stop().await;
}

#[tokio::test]
async fn a_schema_that_cannot_be_used_stores_no_template() {
    // Room in the body for a schema over its own limit.
    let server = TestServer::start_with(Vec::new(), |config| {
        config.max_body_bytes = 1 << 20;
    })
    .await;
    let too_big = json!({"enum": ["x".repeat(70_000)]});
    for (schema, words) in [
        (json!({"type": "strin"}), &["input_schema", "`/type`"][..]),
        (
            json!({"properties": {"goal": {"type": "string", "minLength": -1}}}),
            &["`/properties/goal/minLength`"][..],
        ),
        (json!(7), &["input_schema"][..]),
        // Nothing is fetched: a remote `$ref` is refused.
        (
            json!({"$ref": "https://example.com/schema.json"}),
            &["input_schema", "example.com"][..],
        ),
        (
            json!({"properties": {"goal": {"pattern": "^(?=a)"}}}),
            &["`/properties/goal/pattern`"][..],
        ),
        (
            too_big,
            &["input_schema is 70013 bytes", "at most 65536"][..],
        ),
    ] {
        let pipeline = json!({"input_schema": schema, "jobs": {"a": {"plugin": "echo"}}});
        let (status, refused) = server
            .post(
                "/v1/templates",
                &json!({"name": "broken", "pipeline": pipeline}),
            )
            .await;
        assert_eq!(
            (status, &refused["code"]),
            (422, &json!("invalid_pipeline")),
            "{schema}: {refused}"
        );
        let message = refused["message"].as_str().expect("message");
        for word in words {
            assert!(message.contains(word), "{word:?} in {message}");
        }
    }
    let (status, missing) = server.get("/v1/templates/broken").await;
    assert_eq!((status, &missing["code"]), (404, &json!("not_found")));
    server.stop().await;
}

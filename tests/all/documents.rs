//! Documents of a story through the real HTTP API: versions, history,
//! who wrote what, paging, and every refusal with its code.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest as _;
use warren_vocabulary::text::MAX_DOCUMENT_BYTES;

use crate::api::{CLIENT, TestServer, admin_and_client};

/// `PUT` of `content` as `content_type`: the status, the `location`
/// header and the JSON body.
async fn put(
    server: &TestServer,
    path: &str,
    content_type: &str,
    content: impl Into<reqwest::Body>,
) -> (u16, Option<String>, Value) {
    let response = server
        .request(Method::PUT, path)
        .header("content-type", content_type)
        .body(content)
        .send()
        .await
        .expect("PUT");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        location,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A document's content as served: status, `content-type`, version and
/// `etag` headers, body.
async fn fetch(server: &TestServer, path: &str) -> (u16, String, String, String, String) {
    let response = server.request(Method::GET, path).send().await.expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, version, etag) = (
        header("content-type"),
        header("warren-document-version"),
        header("etag"),
    );
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, content_type, version, etag, body)
}

async fn delete(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server
        .request(Method::DELETE, path)
        .send()
        .await
        .expect("DELETE");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sha256(content: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(content))
}

/// `(name, version, writer)` of each document of a list or a history.
fn shown(items: &Value) -> Vec<(String, i64, Value)> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().expect("name").to_owned(),
                d["version"].as_i64().expect("version"),
                d["writer"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn versions_count_up_keep_their_history_and_say_who_wrote_each() {
    let mut server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let plan = "/v1/stories/story-1/documents/plan.md";
    let ops = json!({"kind": "person", "name": "ops"});
    let app = json!({"kind": "person", "name": "app"});

    let first = "# Plan\n\nCount words.\n";
    let (status, location, created) = put(&server, plan, "text/markdown", first).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        location.as_deref(),
        Some("/v1/stories/story-1/documents/plan.md?version=1")
    );
    assert_eq!(
        (&created["story_id"], &created["name"], &created["version"]),
        (&json!("story-1"), &json!("plan.md"), &json!(1))
    );
    assert_eq!(created["size"], first.len());
    assert_eq!(created["sha256"], sha256(first.as_bytes()));
    assert_eq!(created["media_type"], "text/markdown");
    assert_eq!(created["writer"], ops);
    assert!(
        created["created_at"].as_i64() > Some(1_700_000_000_000),
        "{created}"
    );

    // Another person (the client token) writes the second version.
    server.token = Some(CLIENT);
    let second = "# Plan\n\nCount words, then lines.\n";
    let (status, location, created) =
        put(&server, plan, "text/markdown; charset=UTF-8", second).await;
    assert_eq!((status, &created["version"]), (201, &json!(2)), "{created}");
    assert_eq!(
        location.as_deref(),
        Some("/v1/stories/story-1/documents/plan.md?version=2")
    );
    assert_eq!(created["writer"], app);
    // The same content again stores nothing: a retried request adds no
    // version.
    let (status, _, again) = put(&server, plan, "text/markdown", second).await;
    assert_eq!((status, &again), (200, &created));

    let (status, content_type, version, etag, body) = fetch(&server, plan).await;
    assert_eq!(
        (
            status,
            content_type.as_str(),
            version.as_str(),
            body.as_str()
        ),
        (200, "text/markdown; charset=utf-8", "2", second)
    );
    assert_eq!(etag, format!("\"{}\"", sha256(second.as_bytes())));
    let (status, _, version, etag, body) = fetch(&server, &format!("{plan}?version=1")).await;
    assert_eq!((status, version.as_str(), body.as_str()), (200, "1", first));
    assert_eq!(etag, format!("\"{}\"", sha256(first.as_bytes())));
    let (status, missing) = server.get(&format!("{plan}?version=3")).await;
    assert_eq!(
        (status, &missing["code"]),
        (404, &json!("not_found")),
        "{missing}"
    );
    for bad in ["0", "-1", "x", "1.5", ""] {
        let (status, refused) = server.get(&format!("{plan}?version={bad}")).await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_query")),
            "version={bad}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("version")),
            "{refused}"
        );
    }

    // The history, newest first, a page at a time.
    let (status, history) = server.get(&format!("{plan}/versions")).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        shown(&history["versions"]),
        [
            ("plan.md".to_owned(), 2, app.clone()),
            ("plan.md".to_owned(), 1, ops.clone())
        ]
    );
    assert_eq!(history["versions"][1]["sha256"], sha256(first.as_bytes()));
    assert_eq!(history["next"], Value::Null);
    let (_, page) = server.get(&format!("{plan}/versions?limit=1")).await;
    assert_eq!(
        (shown(&page["versions"]).len(), &page["next"]),
        (1, &json!(2))
    );
    let (_, page) = server
        .get(&format!("{plan}/versions?limit=1&after=2"))
        .await;
    assert_eq!(
        shown(&page["versions"]),
        [("plan.md".to_owned(), 1, ops.clone())]
    );
    assert_eq!(page["next"], Value::Null);

    // JSON, served as it was sent.
    let facts = r#"{"words": [1, 2, 3], "done": false}"#;
    let (status, _, created) = put(
        &server,
        "/v1/stories/story-1/documents/facts.json",
        "application/json",
        facts,
    )
    .await;
    assert_eq!(
        (status, &created["media_type"]),
        (201, &json!("application/json"))
    );
    let (status, content_type, version, _, body) =
        fetch(&server, "/v1/stories/story-1/documents/facts.json").await;
    assert_eq!(
        (
            status,
            content_type.as_str(),
            version.as_str(),
            body.as_str()
        ),
        (200, "application/json", "1", facts)
    );

    // The list: the latest version of each, in name order, paged.
    let (status, list) = server.get("/v1/stories/story-1/documents").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["story_id"], "story-1");
    assert_eq!(
        shown(&list["documents"]),
        [
            ("facts.json".to_owned(), 1, app.clone()),
            ("plan.md".to_owned(), 2, app.clone())
        ]
    );
    assert_eq!(list["documents"][1]["size"], second.len());
    assert_eq!(list["next"], Value::Null);
    let (_, page) = server.get("/v1/stories/story-1/documents?limit=1").await;
    assert_eq!(
        (shown(&page["documents"]).len(), &page["next"]),
        (1, &json!("facts.json"))
    );
    let (_, page) = server
        .get("/v1/stories/story-1/documents?limit=1&after=facts.json")
        .await;
    assert_eq!(shown(&page["documents"])[0].0, "plan.md");
    assert_eq!(page["next"], Value::Null);

    // Documents outlive a restart.
    server.restart().await;
    let (status, _, version, _, body) = fetch(&server, plan).await;
    assert_eq!(
        (status, version.as_str(), body.as_str()),
        (200, "2", second)
    );
    server.stop().await;
}

#[tokio::test]
async fn stories_see_only_their_own_documents_and_a_deleted_one_is_gone() {
    let server = TestServer::open().await;
    let (status, _, created) = put(
        &server,
        "/v1/stories/a/documents/notes",
        "text/plain",
        "for a",
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // Without tokens, a person is written down without a name.
    assert_eq!(created["writer"], json!({"kind": "person"}));
    let (status, _, created) = put(
        &server,
        "/v1/stories/b/documents/notes",
        "text/plain",
        "for b",
    )
    .await;
    assert_eq!((status, &created["version"]), (201, &json!(1)));

    let (_, _, _, _, body) = fetch(&server, "/v1/stories/a/documents/notes").await;
    assert_eq!(body, "for a");
    let (_, _, _, _, body) = fetch(&server, "/v1/stories/b/documents/notes").await;
    assert_eq!(body, "for b");
    let (status, empty) = server.get("/v1/stories/c/documents").await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        json!({"story_id": "c", "documents": [], "next": null})
    );
    let (status, missing) = server.get("/v1/stories/c/documents/notes").await;
    assert_eq!((status, &missing["code"]), (404, &json!("not_found")));

    let (status, body) = delete(&server, "/v1/stories/a/documents/notes").await;
    assert_eq!((status, body), (204, Value::Null));
    for path in [
        "/v1/stories/a/documents/notes",
        "/v1/stories/a/documents/notes/versions",
    ] {
        let (status, gone) = server.get(path).await;
        assert_eq!(
            (status, &gone["code"]),
            (404, &json!("not_found")),
            "{path}"
        );
    }
    let (status, gone) = delete(&server, "/v1/stories/a/documents/notes").await;
    assert_eq!((status, &gone["code"]), (404, &json!("not_found")));
    let (_, list) = server.get("/v1/stories/a/documents").await;
    assert_eq!(list["documents"], json!([]));
    // Story b's document of the same name stays.
    let (status, _, _, _, body) = fetch(&server, "/v1/stories/b/documents/notes").await;
    assert_eq!((status, body.as_str()), (200, "for b"));
    // Written again, a deleted name starts over.
    let (status, _, created) = put(
        &server,
        "/v1/stories/a/documents/notes",
        "text/plain",
        "again",
    )
    .await;
    assert_eq!((status, &created["version"]), (201, &json!(1)));
    server.stop().await;
}

#[tokio::test]
async fn bad_names_stories_bodies_and_media_types_get_their_codes() {
    let server = TestServer::open().await;
    let documents = "/v1/stories/s/documents";

    // Names, percent-encoded as a client sends them.
    let long = "n".repeat(129);
    for name in [
        "a%2Fb",
        "a%5Cb",
        "a..b",
        "x%00y",
        "cod%E2%80%AEtxt.md",
        "tab%09",
        long.as_str(),
    ] {
        let path = format!("{documents}/{name}");
        let (status, _, refused) = put(&server, &path, "text/plain", "x").await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_id")),
            "{name}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("is not a document name: it")),
            "{refused}"
        );
        let (status, refused) = server.get(&path).await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_id")),
            "{name}"
        );
    }
    // `.` and `..` as they are on the wire (a URL library would resolve them).
    for name in [".", ".."] {
        let (status, refused) = server
            .raw(&format!(
                "PUT {documents}/{name} HTTP/1.1\r\nhost: warren\r\ncontent-type: text/plain\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx"
            ))
            .await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_id")),
            "{name}"
        );
    }
    // 128 bytes is the longest name; any printable text is one.
    for name in ["n".repeat(128), "Design notes, v2 (draft) é 🦀".to_owned()] {
        let path = format!("{documents}/{}", name.replace(' ', "%20"));
        let (status, _, created) = put(&server, &path, "text/plain", "x").await;
        assert_eq!((status, &created["name"]), (201, &json!(name)), "{created}");
    }

    // Story ids are checked as everywhere.
    for story in ["a%2Fb", "a*b", "s%20t", &"s".repeat(129)] {
        let (status, _, refused) = put(
            &server,
            &format!("/v1/stories/{story}/documents/n"),
            "text/plain",
            "x",
        )
        .await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_id")),
            "{story}"
        );
        let (status, refused) = server.get(&format!("/v1/stories/{story}/documents")).await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_id")),
            "{story}"
        );
    }

    // Bodies: JSON that is not, text that is not UTF-8.
    let path = format!("{documents}/doc");
    for bad in ["{", "{\"a\": }", "", "[1] [2]"] {
        let (status, _, refused) = put(&server, &path, "application/json", bad).await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_json")),
            "{bad:?}: {refused}"
        );
    }
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (status, _, refused) = put(&server, &path, "application/json", deep).await;
    assert_eq!((status, &refused["code"]), (400, &json!("invalid_json")));
    let (status, _, refused) = put(&server, &path, "text/plain", vec![b'a', 0xff, b'b']).await;
    assert_eq!(
        (status, &refused["code"]),
        (400, &json!("invalid_text")),
        "{refused}"
    );

    // Media types: text or JSON, UTF-8 only.
    for content_type in [
        "application/octet-stream",
        "application/xml",
        "image/png",
        "text/plain; charset=latin1",
        "text/plain; format=flowed",
        "text/",
        "text",
        "",
    ] {
        let (status, _, refused) = put(&server, &path, content_type, "x").await;
        assert_eq!(
            (status, &refused["code"]),
            (415, &json!("unsupported_media_type")),
            "{content_type:?}"
        );
    }
    let (status, _, created) = put(&server, &path, "Text/CSV; Charset=\"utf-8\"", "a,b\n").await;
    assert_eq!((status, &created["media_type"]), (201, &json!("text/csv")));

    // Content: at most 1 MiB, whatever the server's body limit for JSON
    // requests (64 KiB here).
    let (status, _, refused) = put(
        &server,
        &path,
        "text/plain",
        vec![b'x'; MAX_DOCUMENT_BYTES + 1],
    )
    .await;
    assert_eq!(
        (status, &refused["code"]),
        (413, &json!("payload_too_large")),
        "{refused}"
    );
    let (status, _, created) =
        put(&server, &path, "text/plain", vec![b'x'; MAX_DOCUMENT_BYTES]).await;
    assert_eq!(
        (status, &created["size"]),
        (201, &json!(MAX_DOCUMENT_BYTES))
    );

    // Paging parameters.
    for query in [
        "limit=0",
        "limit=501",
        "after=..",
        "after=a%2Fb",
        "surprise=1",
    ] {
        let (status, refused) = server.get(&format!("{documents}?{query}")).await;
        assert_eq!(
            (status, &refused["code"]),
            (400, &json!("invalid_query")),
            "{query}"
        );
    }
    let (status, refused) = server.get(&format!("{path}/versions?after=0")).await;
    assert_eq!((status, &refused["code"]), (400, &json!("invalid_query")));

    server.assert_healthy().await;
    server.stop().await;
}

#[tokio::test]
async fn a_browser_app_may_read_a_documents_version_and_etag() {
    let origin = "https://app.example";
    let server = TestServer::start_with(Vec::new(), |config| {
        config.cors_origins = vec![origin.to_owned()];
    })
    .await;
    let path = "/v1/stories/s/documents/notes";
    let (status, _, _) = put(&server, path, "text/plain", "hello").await;
    assert_eq!(status, 201);
    let response = server
        .request(Method::GET, path)
        .header("origin", origin)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], origin);
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for header in ["etag", "warren-document-version", "location"] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    assert_eq!(headers["warren-document-version"], "1");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], "sandbox");
    server.stop().await;
}

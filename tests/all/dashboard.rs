//! The web dashboard in a real browser (headless chromium over WebDriver)
//! against a real `warren serve`: a run started from a template's form
//! completing live, a graph changing state, an approval, a quarantined
//! plugin's reason, signing in and role limits, user text shown as text,
//! and the pages at a phone's width.

use serde_json::{Value, json};

use crate::api::{ADMIN, CLIENT, TestServer, admin_and_client};
use crate::browser::Browser;
use crate::plugin_folder::{drop_plugin, folder, sha256_of, version, wait_for_plugin};
use crate::support::{guest_path, plugin_path};

async fn submit(server: &TestServer, body: Value) -> String {
    let (status, created) = server.post("/v1/runs", &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

fn job_id(run: &Value, name: &str) -> String {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .and_then(|j| j["id"].as_str())
        .unwrap_or_else(|| panic!("no job {name} in {run}"))
        .to_owned()
}

/// Every form control and button of the page has a name a screen reader
/// reads; the names of those that have none.
async fn unnamed_controls(browser: &Browser) -> Value {
    browser
        .eval(
            "return [...document.querySelectorAll('input, select, textarea, button')]
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                            && !e.textContent.trim())
               .map(e => e.outerHTML);",
        )
        .await
}

/// The page is no wider than the window (nothing to scroll sideways but
/// the tables and the graph, which scroll inside themselves).
async fn fits_the_window(browser: &Browser) -> bool {
    browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await
        == json!(true)
}

#[tokio::test]
async fn a_run_started_from_a_template_form_completes_live_and_its_graph_follows() {
    let server = TestServer::open().await;
    let (status, created) = server
        .post(
            "/v1/templates",
            &json!({"name": "greet", "pipeline": {
                "input_schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string", "maxLength": 100, "description": "What to say"}},
                    "required": ["text"],
                },
                "jobs": {
                    "check": {"plugin": "echo", "approval": {"required": true}},
                    "say": {"plugin": "echo", "needs": ["check"]},
                },
            }}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/templates/greet", server.base))
        .await;
    // The form is built from the input schema: one labelled text field.
    browser.fill("#field-text", "hello from the form").await;
    assert_eq!(unnamed_controls(&browser).await, json!([]));
    browser.screenshot("template").await;
    browser.click("#start-run button[type=submit]").await;

    // The run page: the gated job waits, its dependent is pending; once
    // the job is approved (through the API) everything completes on the
    // page without it being loaded again.
    let check_node = "#run-graph a[aria-label^='check:'] g.node";
    browser
        .attribute_when(check_node, "data-state", |s| s == "waiting_approval")
        .await;
    let say_node = "#run-graph a[aria-label^='say:'] g.node";
    assert_eq!(
        browser
            .attribute_when(say_node, "data-state", |_| true)
            .await,
        "pending"
    );
    browser
        .eval("window.__sameDocument = true; return null;")
        .await;
    let url = browser.client.current_url().await.expect("url");
    let run_id = url.path().trim_start_matches("/runs/").to_owned();
    let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    let (status, decided) = server
        .post(
            &format!("/v1/jobs/{}/decision", job_id(&run, "check")),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    browser
        .text_when("#run-state", |t| t.trim() == "completed")
        .await;
    browser
        .attribute_when(say_node, "data-state", |s| s == "completed")
        .await;
    browser
        .attribute_when(check_node, "data-state", |s| s == "completed")
        .await;
    assert_eq!(
        browser.eval("return window.__sameDocument === true;").await,
        json!(true),
        "the page was loaded again instead of following the run live"
    );
    // The jobs table says the same, with each job's usage once it ran.
    let table = browser
        .text_when("#jobs-table", |t| {
            t.matches("completed").count() == 2 && !t.contains('—')
        })
        .await;
    assert!(table.contains("check") && table.contains("say"), "{table}");
    // Every event of the run is listed, the run's end first.
    let events = browser
        .text_when("#events-table tbody tr:first-child", |t| {
            t.contains("completed")
        })
        .await;
    assert!(events.starts_with("run"), "{events}");
    browser.screenshot("run-live").await;

    // The run the form started is the one the API has, with the input typed.
    let run = server.ended(&run_id).await;
    assert_eq!(run["state"], "completed", "{run}");
    let say = run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == "say"))
        .expect("say");
    assert_eq!(say["output"], json!({"text": "hello from the form"}));
    browser
        .goto(&format!(
            "{}/jobs/{}",
            server.base,
            say["id"].as_str().expect("id")
        ))
        .await;
    browser
        .text_when("pre[aria-label=output]", |t| {
            t.contains("hello from the form")
        })
        .await;
    browser.screenshot("job").await;

    // The runs list shows it; a new run appears there live.
    browser.goto(&format!("{}/", server.base)).await;
    browser.wait_for(&format!("tr[data-run='{run_id}']")).await;
    browser
        .eval("window.__sameDocument = true; return null;")
        .await;
    let second = submit(
        &server,
        json!({"pipeline": {"jobs": {"only": {"plugin": "echo"}}}, "input": {}}),
    )
    .await;
    browser
        .text_when(
            &format!("tr[data-run='{second}'] [data-field=state]"),
            |t| t.trim() == "completed",
        )
        .await;
    assert_eq!(
        browser.eval("return window.__sameDocument === true;").await,
        json!(true)
    );
    browser.screenshot("runs").await;
    browser.close().await;
}

#[tokio::test]
async fn a_waiting_job_is_approved_from_the_page_and_its_run_finishes() {
    let server = TestServer::open().await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "draft": {"plugin": "echo", "approval": {"required": true}},
            "publish": {"plugin": "echo", "needs": ["draft"]},
        }}, "input": {"text": "the draft"}}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let draft = job_id(&run, "draft");

    let browser = Browser::start().await;
    browser.goto(&format!("{}/waiting", server.base)).await;
    let card = format!("section.card[data-job='{draft}']");
    let shown = browser.wait_for(&card).await;
    assert!(
        shown.contains("the draft"),
        "the output is there to judge: {shown}"
    );
    assert_eq!(unnamed_controls(&browser).await, json!([]));
    browser.screenshot("waiting").await;
    browser
        .fill(&format!("{card} textarea"), "reads well")
        .await;
    browser.click(&format!("{card} button.approve")).await;
    browser.wait_for("#nothing-waiting").await;

    let run = server.ended(&run_id).await;
    assert_eq!(run["state"], "completed", "{run}");
    let (_, detail) = server.get(&format!("/v1/jobs/{draft}")).await;
    let review = &detail["reviews"][0];
    assert_eq!(review["decision"], "approve", "{detail}");
    assert_eq!(review["comments"], "reads well", "{detail}");
    browser.close().await;
}

#[tokio::test]
async fn a_waiting_jobs_page_shows_a_decision_someone_else_made() {
    let server = TestServer::open().await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "draft": {"plugin": "echo", "approval": {"required": true}},
        }}, "input": {"text": "the draft"}}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "waiting_approval").await;
    let draft = job_id(&run, "draft");

    let browser = Browser::start().await;
    browser.goto(&format!("{}/jobs/{draft}", server.base)).await;
    browser
        .text_when("#job-state", |t| t == "waiting approval")
        .await;
    // The approve form is drawn: the page is done loading.
    browser.wait_for("button.approve").await;
    let (status, answer) = server
        .post(
            &format!("/v1/jobs/{draft}/decision"),
            &json!({"decision": "approve", "comments": "from elsewhere"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    browser.text_when("#job-state", |t| t == "completed").await;
    assert!(
        browser.main_text().await.contains("from elsewhere"),
        "the review is listed"
    );
    assert_eq!(browser.count("button.approve").await, 0);
    browser.close().await;
}

#[tokio::test]
async fn a_quarantined_plugin_shows_its_reason() {
    let server = TestServer::start_with(Vec::new(), |config| {
        let dir = config.plugins_dir.clone().expect("plugins dir");
        std::fs::write(dir.join("broken.wasm"), b"not a component at all").expect("write");
    })
    .await;
    let (_, list) = server.get("/v1/plugins").await;
    let reason = list["quarantined"]
        .as_array()
        .and_then(|q| q.iter().find(|e| e["file"] == "broken.wasm"))
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_else(|| panic!("broken.wasm is not quarantined: {list}"))
        .to_owned();

    let browser = Browser::start().await;
    browser.goto(&format!("{}/plugins", server.base)).await;
    let table = browser.wait_for("#quarantined-table").await;
    assert!(
        table.contains("broken.wasm") && table.contains(&reason),
        "{table}"
    );
    // The working plugins are listed too, each linking to its page.
    let plugins = browser.wait_for("#plugins-table").await;
    assert!(
        plugins.contains("echo") && plugins.contains("toolbox"),
        "{plugins}"
    );
    browser.screenshot("plugins").await;
    browser
        .click("#plugins-table a[href='/plugins/echo']")
        .await;
    let page = browser.text_when("main", |t| t.contains("Grants")).await;
    assert!(page.contains("Plugin echo"), "{page}");
    browser.close().await;
}

#[tokio::test]
async fn signing_in_keeps_the_token_in_the_tab_and_a_client_token_cannot_approve() {
    let server = TestServer::start_with(admin_and_client(), |_| {}).await;
    // A version that asks for more than the one before it waits for an admin.
    let dir = folder(&server);
    std::fs::write(dir.join("careful.toml"), "spawn = false\n").expect("manifest");
    drop_plugin(&dir, "careful", &guest_path("toolbox"));
    let v1 = sha256_of(&guest_path("toolbox"));
    wait_for_plugin(&server, "careful", |p| p["active"] == v1.as_str()).await;
    std::fs::write(dir.join("careful.toml"), "spawn = true\n").expect("manifest");
    drop_plugin(&dir, "careful", &plugin_path("echo"));
    let v2 = sha256_of(&plugin_path("echo"));
    let plugin = wait_for_plugin(&server, "careful", |p| {
        p["versions"].as_array().is_some_and(|v| v.len() == 2)
    })
    .await;
    assert_eq!(
        version(&plugin, &v2)["state"],
        "pending_approval",
        "{plugin}"
    );

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/plugins/careful", server.base))
        .await;
    // No token yet: the page asks for one; a wrong one is refused.
    browser.fill("#token", "not-a-token").await;
    browser.click("#signin button[type=submit]").await;
    let refused = browser
        .text_when("#signin [role=alert]", |t| !t.is_empty())
        .await;
    assert!(refused.contains("unknown token"), "{refused}");
    browser.screenshot("signin").await;

    browser.fill("#token", CLIENT).await;
    browser.click("#signin button[type=submit]").await;
    let who = browser.wait_for("#whoami").await;
    assert_eq!(who, "app · client");
    let pending = format!("section.version[data-digest='{v2}']");
    let card = browser
        .text_when(&pending, |t| t.contains("needs an admin"))
        .await;
    assert!(card.contains("pending approval"), "{card}");
    assert_eq!(browser.count("button.approve-version").await, 0);
    // The token is in this tab's session storage only: not in the URL,
    // not in a cookie; sent as a bearer header, the server refuses the
    // admin action to it.
    let url = browser.client.current_url().await.expect("url");
    assert!(!url.as_str().contains(CLIENT), "{url}");
    assert_eq!(browser.eval("return document.cookie;").await, json!(""));
    assert_eq!(
        browser
            .eval("return sessionStorage.getItem('warren.token');")
            .await,
        json!(CLIENT)
    );
    let status = browser
        .eval(&format!(
            "return fetch('/v1/plugins/careful/versions/{v2}/approve', {{method: 'POST',
               headers: {{authorization: 'Bearer ' + sessionStorage.getItem('warren.token')}}}})
               .then(r => r.json().then(b => [r.status, b.code]));"
        ))
        .await;
    assert_eq!(status, json!([403, "forbidden"]));

    // Signed in as an admin, the button is there and approving works.
    browser.click("#signout").await;
    browser.fill("#token", ADMIN).await;
    browser.click("#signin button[type=submit]").await;
    assert_eq!(browser.wait_for("#whoami").await, "ops · admin");
    browser
        .click(&format!("button.approve-version[data-digest='{v2}']"))
        .await;
    let plugin = wait_for_plugin(&server, "careful", |p| p["active"] == v2.as_str()).await;
    assert_eq!(version(&plugin, &v2)["state"], "active", "{plugin}");
    browser.text_when(&pending, |t| t.contains("active")).await;
    browser.close().await;
}

#[tokio::test]
async fn what_jobs_and_people_wrote_shows_as_text_never_as_markup() {
    let server = TestServer::open().await;
    let hostile = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {"say": {"plugin": "echo"}}},
               "input": {"text": hostile}, "story_id": "markup"}),
    )
    .await;
    let run = server.ended(&run_id).await;
    let say = job_id(&run, "say");

    let browser = Browser::start().await;
    browser.goto(&format!("{}/jobs/{say}", server.base)).await;
    let output = browser
        .text_when("pre[aria-label=output]", |t| t.contains("<script>"))
        .await;
    assert!(
        output.contains(hostile.replace('"', "\\\"").as_str()),
        "{output}"
    );
    // Text only: no element was made of it (the policy would also keep an
    // injected script from running, so the elements are what is checked).
    assert_eq!(
        browser
            .eval(
                "return [document.querySelectorAll('main script, main img').length,
                         document.querySelector('pre[aria-label=output]').children.length];"
            )
            .await,
        json!([0, 0])
    );
    browser.screenshot("job-markup").await;

    // A document a person writes through the story page, read back.
    browser
        .goto(&format!("{}/stories/markup", server.base))
        .await;
    browser.fill("#doc-name", "notes").await;
    browser.fill("#doc-content", hostile).await;
    browser.click("#new-document button[type=submit]").await;
    browser
        .click("#documents button[aria-label='View notes']")
        .await;
    let shown = browser
        .text_when("#document-view pre", |t| t.contains("<img"))
        .await;
    assert_eq!(shown, hostile);
    assert_eq!(
        browser
            .eval(
                "return [document.querySelectorAll('main script, main img').length,
                         document.querySelector('#document-view pre').children.length];"
            )
            .await,
        json!([0, 0])
    );
    assert_eq!(unnamed_controls(&browser).await, json!([]));
    browser.screenshot("story").await;

    // The policy that makes an injected script inert anyway.
    let response = reqwest::get(format!("{}/", server.base))
        .await
        .expect("GET /");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_pages_fit_a_phone() {
    let server = TestServer::open().await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "a": {"plugin": "echo"},
            "b": {"plugin": "echo", "needs": ["a"]},
        }}, "input": {"text": "a phone"}, "story_id": "phone"}),
    )
    .await;
    let run = server.ended(&run_id).await;
    let b = job_id(&run, "b");
    let browser = Browser::start_sized(390, 844).await;
    for (path, ready) in [
        ("/".to_owned(), "#runs-table".to_owned()),
        (format!("/runs/{run_id}"), "#jobs-table".to_owned()),
        (format!("/jobs/{b}"), "#attempts-table".to_owned()),
        ("/plugins".to_owned(), "#plugins-table".to_owned()),
        ("/templates".to_owned(), "#templates-table".to_owned()),
        ("/stories".to_owned(), "#stories-table".to_owned()),
        ("/waiting".to_owned(), "#nothing-waiting".to_owned()),
        ("/plugins/echo".to_owned(), "section.version".to_owned()),
        (
            "/templates/build-and-check".to_owned(),
            "#start-run".to_owned(),
        ),
        ("/stories/phone".to_owned(), "#new-document".to_owned()),
    ] {
        browser.goto(&format!("{}{path}", server.base)).await;
        browser.wait_for(&ready).await;
        assert!(
            fits_the_window(&browser).await,
            "{path} is wider than a phone"
        );
        // Nothing absent shows as a word of its own.
        let text = browser.main_text().await;
        assert!(
            !text
                .lines()
                .any(|l| matches!(l.trim(), "null" | "undefined" | "[object Object]")),
            "{path}: {text}"
        );
        assert_eq!(unnamed_controls(&browser).await, json!([]), "{path}");
    }
    browser
        .goto(&format!("{}/runs/{run_id}", server.base))
        .await;
    browser.wait_for("#jobs-table").await;
    browser.screenshot("run-phone").await;
    browser.close().await;
}

#[tokio::test]
async fn a_failed_job_is_retried_and_a_run_cancelled_from_the_run_page() {
    let server = TestServer::open().await;
    // Fails its first attempt, succeeds on the second: a retry saves it.
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "flaky": {"plugin": "toolbox", "input": [{"op": "fail_until", "attempt": 2}]},
            "after": {"plugin": "echo", "needs": ["flaky"]},
        }}, "input": {}}),
    )
    .await;
    let run = server.ended(&run_id).await;
    assert_eq!(run["state"], "failed", "{run}");
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/runs/{run_id}", server.base))
        .await;
    browser
        .text_when("#run-state", |t| t.trim() == "failed")
        .await;
    assert_eq!(browser.count("#cancel-run:not([hidden])").await, 0);
    browser.click("button[aria-label='Retry flaky']").await;
    browser
        .text_when("#run-state", |t| t.trim() == "completed")
        .await;
    browser
        .attribute_when(
            "#run-graph a[aria-label^='after:'] g.node",
            "data-state",
            |s| s == "completed",
        )
        .await;
    let run = server.ended(&run_id).await;
    assert_eq!(run["state"], "completed", "{run}");

    // A long run is cancelled from its page.
    let long = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "nap": {"plugin": "toolbox", "input": [{"op": "sleep_ms", "ms": 20000}],
                    "limits": {"timeout_ms": 30000}},
        }}, "input": {}}),
    )
    .await;
    browser.goto(&format!("{}/runs/{long}", server.base)).await;
    browser
        .attribute_when(
            "#run-graph a[aria-label^='nap:'] g.node",
            "data-state",
            |s| s == "running",
        )
        .await;
    browser.click("#cancel-run").await;
    browser
        .text_when("#run-state", |t| t.trim() == "cancelled")
        .await;
    assert_eq!(server.ended(&long).await["state"], "cancelled");
    browser.close().await;
}

#[tokio::test]
async fn a_running_jobs_log_streams_into_its_page() {
    let server = TestServer::open().await;
    // The browser first, so the page follows before the line is written.
    let browser = Browser::start().await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {"talk": {"plugin": "toolbox", "input": [
            {"op": "sleep_ms", "ms": 3000},
            {"op": "log", "message": "halfway there"},
            {"op": "sleep_ms", "ms": 2000},
        ]}}}, "input": {}}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "running").await;
    let talk = job_id(&run, "talk");
    browser.goto(&format!("{}/jobs/{talk}", server.base)).await;
    browser
        .attribute_when("#log", "data-live", |v| v == "on")
        .await;
    browser
        .text_when("#log", |t| t.contains("halfway there"))
        .await;
    // Seen while the job still runs: it came live, not from the stored log.
    let (_, job) = server.get(&format!("/v1/jobs/{talk}")).await;
    assert_eq!(job["state"], "running", "{job}");
    // When it ends the page shows the ended job with its stored log.
    browser
        .text_when("#job-state", |t| t.trim() == "completed")
        .await;
    browser
        .text_when("#log", |t| {
            t.contains("attempt 1 (succeeded)") && t.contains("halfway there")
        })
        .await;

    // A page opened after a line was written shows it while the job runs.
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {"late": {"plugin": "toolbox", "input": [
            {"op": "log", "message": "written before the page"},
            {"op": "sleep_ms", "ms": 20000},
        ], "limits": {"timeout_ms": 30000}}}}, "input": {}}),
    )
    .await;
    let run = server.wait_for_state(&run_id, "running").await;
    let late = job_id(&run, "late");
    // Followed through the API first, so the line is surely written.
    let seen = server
        .followed_log(&late, Some("written before the page"))
        .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    browser.goto(&format!("{}/jobs/{late}", server.base)).await;
    browser
        .text_when("#log", |t| t.contains("written before the page"))
        .await;
    let (_, job) = server.get(&format!("/v1/jobs/{late}")).await;
    assert_eq!(job["state"], "running", "{job}");
    let (status, _) = server
        .post(&format!("/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    browser.close().await;
}

#[tokio::test]
async fn the_graph_api_gives_edges_parents_and_usage_and_whoami_the_role() {
    let server = TestServer::start_with(admin_and_client(), |_| {}).await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "first": {"plugin": "toolbox", "input": [
                {"op": "spawn", "plugin": "echo", "input": {"n": 1}, "reason": "a child"},
            ]},
            "second": {"plugin": "echo", "needs": ["first"]},
        }}, "input": {}}),
    )
    .await;
    let run = server.ended(&run_id).await;
    let (status, graph) = server.get(&format!("/v1/runs/{run_id}/graph")).await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(graph["state"], run["state"]);
    assert_eq!(graph["truncated"], false);
    let jobs = graph["jobs"].as_array().expect("jobs");
    let find = |pred: &dyn Fn(&Value) -> bool| jobs.iter().find(|j| pred(j)).cloned();
    let first = find(&|j| j["name"] == "first").expect("first");
    let second = find(&|j| j["name"] == "second").expect("second");
    assert_eq!(first["needs"], json!([]));
    let child = find(&|j| j["parent_job_id"] == first["id"])
        .unwrap_or_else(|| panic!("the spawned child is in the graph: {graph}"));
    // A spawned child runs after its parent, and its parent's dependents
    // wait for it too.
    assert_eq!(child["needs"], json!([first["id"]]), "{graph}");
    assert_eq!(
        second["needs"],
        json!([first["id"], child["id"]]),
        "{graph}"
    );
    assert!(first["fuel"].as_u64().is_some_and(|f| f > 0), "{first}");
    assert!(first["peak_memory_bytes"].as_u64().is_some_and(|m| m > 0));
    assert_eq!(first["attempts"], 1);
    // The last event id is the run's newest: following the ended run
    // after it gives nothing, after the one before it gives one event.
    let last = graph["last_event_id"].as_i64().expect("last_event_id");
    let events_after = |after: i64| {
        let url = format!("{}/v1/runs/{run_id}/events?after={after}", server.base);
        async move {
            let body = reqwest::Client::new()
                .get(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("events")
                .text()
                .await
                .expect("stream");
            body.lines().filter(|l| l.starts_with("data:")).count()
        }
    };
    assert_eq!(events_after(last).await, 0);
    assert_eq!(events_after(last - 1).await, 1);
    let (_, runs_page) = server.get("/v1/runs?limit=1").await;
    assert_eq!(runs_page["last_event_id"], last, "{runs_page}");

    let (status, missing) = server
        .get("/v1/runs/01a23395-f122-777a-8883-d3d3c643f697/graph")
        .await;
    assert_eq!((status, &missing["code"]), (404, &json!("not_found")));
    let (status, bad) = server.get("/v1/runs/nope/graph").await;
    assert_eq!((status, &bad["code"]), (400, &json!("invalid_id")));

    let (_, admin) = server.get("/v1/whoami").await;
    assert_eq!(
        admin,
        json!({"name": "ops", "role": "admin", "tokens": true})
    );
    let client = reqwest::Client::new()
        .get(format!("{}/v1/whoami", server.base))
        .bearer_auth(CLIENT)
        .send()
        .await
        .expect("whoami");
    assert_eq!(
        client.json::<Value>().await.expect("json"),
        json!({"name": "app", "role": "client", "tokens": true})
    );
    let anonymous = reqwest::get(format!("{}/v1/whoami", server.base))
        .await
        .expect("whoami");
    assert_eq!(anonymous.status(), 401);
}

/// A server whose plugins folder also holds `extra` first-party plugins.
async fn server_with(extra: &[&str]) -> TestServer {
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    TestServer::start_with(Vec::new(), move |config| {
        let dir = config.plugins_dir.clone().expect("plugins dir");
        for name in &extra {
            std::fs::copy(plugin_path(name), dir.join(format!("{name}.wasm"))).expect("copy");
        }
    })
    .await
}

#[tokio::test]
async fn a_rejection_with_a_comment_and_input_are_given_from_the_waiting_page() {
    let server = server_with(&["speckit"]).await;
    let gated = submit(
        &server,
        json!({"pipeline": {"jobs": {
            "review": {"plugin": "echo", "approval": {"required": true, "max_rework": 1}},
        }}, "input": {"text": "short"}}),
    )
    .await;
    let asking = submit(
        &server,
        json!({"pipeline": {"jobs": {"specify": {"plugin": "speckit"}}}, "input": {}}),
    )
    .await;
    let review = job_id(
        &server.wait_for_state(&gated, "waiting_approval").await,
        "review",
    );
    let specify = job_id(
        &server.wait_for_state(&asking, "needs_input").await,
        "specify",
    );

    let (_, detail) = server.get(&format!("/v1/jobs/{specify}")).await;
    assert_eq!(detail["pending_docs"], json!(["feature"]), "{detail}");
    let browser = Browser::start().await;
    // The job's own page asks for the same, its form holding the field.
    browser
        .goto(&format!("{}/jobs/{specify}", server.base))
        .await;
    browser.wait_for(&format!("#input-{specify}")).await;
    let asked = browser
        .client
        .find(fantoccini::Locator::Css(&format!("#input-{specify}")))
        .await
        .expect("input form")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(
        serde_json::from_str::<Value>(&asked.unwrap_or_default()).expect("json"),
        json!({"feature": ""})
    );
    browser.goto(&format!("{}/waiting", server.base)).await;
    let asking_card = format!("section.card[data-job='{specify}']");
    let shown = browser
        .text_when(&asking_card, |t| t.contains("It asks for feature"))
        .await;
    assert!(shown.contains("needs input"), "{shown}");
    browser
        .fill(
            &format!("#input-{specify}"),
            r#"{"feature": "offline mode"}"#,
        )
        .await;
    browser
        .click(&format!(
            "{asking_card} form.give-input button[type=submit]"
        ))
        .await;
    let run = server.ended(&asking).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["jobs"][0]["output"]["feature"], "offline mode", "{run}");

    let gated_card = format!("section.card[data-job='{review}']");
    browser
        .fill(&format!("{gated_card} textarea"), "too short")
        .await;
    browser.click(&format!("{gated_card} button.reject")).await;
    // Rejected, the job runs again and waits for a second decision.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let detail = loop {
        let (_, detail) = server.get(&format!("/v1/jobs/{review}")).await;
        if detail["attempts_total"] == 2 && detail["state"] == "waiting_approval" {
            break detail;
        }
        assert!(std::time::Instant::now() < deadline, "{detail}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(detail["reviews"][0]["decision"], "reject", "{detail}");
    assert_eq!(detail["reviews"][0]["comments"], "too short", "{detail}");
    // The page follows: the job is listed again, waiting for its rework's
    // decision, and the job that got its input is gone.
    let card = browser
        .text_when(&gated_card, |t| t.contains("attempt 2"))
        .await;
    assert!(card.contains("waiting approval"), "{card}");
    browser.wait_gone(&asking_card).await;
    browser.close().await;
}

#[tokio::test]
async fn artifacts_preview_agents_describe_themselves_and_an_admin_uploads() {
    let server = server_with(&["analyst"]).await;
    let run_id = submit(
        &server,
        json!({"pipeline": {"jobs": {"count": {"plugin": "wordcount"}}},
               "input": {"text": "hello warren"}}),
    )
    .await;
    server.ended(&run_id).await;
    let (_, artifacts) = server.get(&format!("/v1/runs/{run_id}/artifacts")).await;
    let artifact = &artifacts["artifacts"][0];
    let name = artifact["name"].as_str().expect("name").to_owned();
    let bytes = reqwest::get(format!(
        "{}/v1/artifacts/{}",
        server.base,
        artifact["sha256"].as_str().expect("sha")
    ))
    .await
    .expect("download")
    .text()
    .await
    .expect("text");

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/runs/{run_id}", server.base))
        .await;
    browser
        .click("#artifacts tr:first-child button.secondary")
        .await;
    let preview = browser
        .text_when(&format!("pre[aria-label='Preview of {name}']"), |t| {
            !t.is_empty()
        })
        .await;
    assert_eq!(preview.trim(), bytes.trim());

    // Download: the button fetches the bytes with the token and hands them
    // to an `<a download>`; the page's blob and link are caught as they go.
    browser
        .eval(
            "window.caught = {};
             const createObjectURL = URL.createObjectURL;
             URL.createObjectURL = (blob) => { window.caught.blob = blob; return createObjectURL(blob); };
             HTMLAnchorElement.prototype.click = function () { window.caught.name = this.download; };
             return true;",
        )
        .await;
    browser
        .click(&format!("#artifacts button[aria-label='Download {name}']"))
        .await;
    let downloaded = browser
        .eval(
            "return new Promise((done) => {
               const check = setInterval(async () => {
                 if (!window.caught.name || !window.caught.blob) return;
                 clearInterval(check);
                 done([window.caught.name, await window.caught.blob.text()]);
               }, 50);
             });",
        )
        .await;
    let file_name = name.rsplit('/').next().expect("a name");
    assert_eq!(downloaded[0], file_name, "{downloaded}");
    assert_eq!(downloaded[1].as_str(), Some(bytes.as_str()));

    // An agent's describe() is on its plugin's page.
    browser
        .goto(&format!("{}/plugins/analyst", server.base))
        .await;
    let page = browser
        .text_when("main", |t| t.contains("describe()"))
        .await;
    assert!(page.contains("Requires\nbrief"), "{page}");
    assert!(page.contains("Produces\nanalysis"), "{page}");

    // An admin (everyone, on a server without tokens) uploads a component.
    browser.goto(&format!("{}/plugins", server.base)).await;
    browser.fill("#upload-name", "uploaded").await;
    let file = plugin_path("echo");
    browser
        .client
        .find(fantoccini::Locator::Css("#upload-file"))
        .await
        .expect("file field")
        .send_keys(file.to_str().expect("utf-8 path"))
        .await
        .expect("choose file");
    browser.click("#upload button[type=submit]").await;
    browser
        .text_when("#upload .note", |t| t.contains("Uploaded"))
        .await;
    let plugin = wait_for_plugin(&server, "uploaded", |p| p["status"] == "active").await;
    assert_eq!(plugin["active"], sha256_of(&file).as_str(), "{plugin}");
    browser.close().await;
}

/// Where the graph drew each job: its id → (x, y).
async fn node_places(browser: &Browser) -> std::collections::HashMap<String, (f64, f64)> {
    let found = browser
        .eval(
            "return [...document.querySelectorAll('#run-graph g.node')].map(g => {
               const m = /translate\\(([-0-9.]+),([-0-9.]+)\\)/.exec(g.getAttribute('transform'));
               return [g.dataset.job, Number(m[1]), Number(m[2])];
             });",
        )
        .await;
    found
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n[0].as_str().expect("id").to_owned(),
                (n[1].as_f64().expect("x"), n[2].as_f64().expect("y")),
            )
        })
        .collect()
}

#[tokio::test]
async fn spawned_jobs_are_drawn_under_their_parents_and_dependents_to_the_right() {
    let server = TestServer::open().await;
    // The demo pipeline: plan → dev → test, whose run spawns jobs, then
    // report and alert after test.
    let run_id = submit(
        &server,
        json!({"template": "build-and-check", "input": {"goal": "a word counter"}}),
    )
    .await;
    let run = server.ended(&run_id).await;
    let (_, graph) = server.get(&format!("/v1/runs/{run_id}/graph")).await;
    let jobs = graph["jobs"].as_array().expect("jobs").clone();
    assert!(
        jobs.iter().any(|j| !j["parent_job_id"].is_null()),
        "the demo spawns: {graph}"
    );
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/runs/{run_id}", server.base))
        .await;
    browser.wait_for("#run-graph").await;
    let places = node_places(&browser).await;
    assert_eq!(places.len(), jobs.len(), "{run}");
    for job in &jobs {
        let id = job["id"].as_str().expect("id");
        let (x, y) = places[id];
        if let Some(parent) = job["parent_job_id"].as_str() {
            // Under its parent, indented within the parent's column.
            let (px, py) = places[parent];
            assert!(
                y > py && x > px && x - px < 100.0,
                "{job}: ({x},{y}) under ({px},{py})"
            );
        }
        for dep in job["needs"].as_array().expect("needs") {
            let dep = dep.as_str().expect("id");
            if Some(dep) != job["parent_job_id"].as_str() {
                assert!(places[dep].0 < x, "{job} is right of what it needs");
            }
        }
    }
    browser.screenshot("run").await;
    browser.close().await;
}

#[tokio::test]
async fn a_large_graph_draws_every_job_and_zooms() {
    let server = TestServer::open().await;
    // 300 jobs in layers of ten, each needing two of the layer before.
    let mut jobs = serde_json::Map::new();
    for i in 0..300usize {
        let needs: Vec<String> = if i < 10 {
            Vec::new()
        } else {
            vec![
                format!("j{}", i - 10),
                format!("j{}", (i - 10) / 10 * 10 + (i + 1) % 10),
            ]
        };
        jobs.insert(format!("j{i}"), json!({"plugin": "echo", "needs": needs}));
    }
    let run_id = submit(&server, json!({"pipeline": {"jobs": jobs}, "input": {}})).await;
    assert_eq!(server.ended(&run_id).await["state"], "completed");

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/runs/{run_id}", server.base))
        .await;
    browser.wait_for("#run-graph").await;
    assert_eq!(browser.count("#run-graph g.node").await, 300);
    assert_eq!(
        browser
            .count("#run-graph g.node[data-state='completed']")
            .await,
        300
    );
    // 30 layers left to right: wider than the page, so it opens smaller.
    let width = || async {
        browser
            .eval("return Number(document.getElementById('run-graph').getAttribute('width'));")
            .await
            .as_f64()
            .expect("width")
    };
    let start = width().await;
    browser.click("button[aria-label='Zoom out']").await;
    let smaller = width().await;
    assert!(smaller < start * 0.85, "{start} → {smaller}");
    browser.click("button[aria-label='Zoom in']").await;
    browser.click("button[aria-label='Zoom in']").await;
    assert!(width().await > start, "zooming in grows the graph");
    browser.click("#zoom-fit").await;
    let fitted = width().await;
    let frame = browser
        .eval("return document.getElementById('graph').clientWidth;")
        .await
        .as_f64()
        .expect("frame");
    assert!(fitted <= frame + 1.0, "Fit: {fitted} within {frame}");
    browser.close().await;
}

#[tokio::test]
async fn a_run_is_started_from_a_form_with_the_keyboard_alone() {
    use fantoccini::key::Key;
    let server = TestServer::open().await;
    let (status, created) = server
        .post(
            "/v1/templates",
            &json!({"name": "keys", "pipeline": {
                "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                "jobs": {"say": {"plugin": "echo"}},
            }}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/templates/keys", server.base))
        .await;
    browser.wait_for("#start-run").await;
    // The first stop is the skip link; it moves the focus to the content.
    let (_, first) = browser.tab_to(|_, _| true).await;
    assert_eq!(first, "Skip to content");
    browser.press(&[char::from(Key::Enter)]).await;
    assert_eq!(browser.focused().await.0, "main");
    // From the content, Tab reaches the field, then the Start button.
    browser.tab_to(|id, _| id == "field-text").await;
    browser.press(&"by keys".chars().collect::<Vec<_>>()).await;
    browser.tab_to(|_, text| text == "Start").await;
    browser.press(&[char::from(Key::Enter)]).await;
    browser
        .text_when("#run-state", |t| t.trim() == "completed")
        .await;
    let url = browser.client.current_url().await.expect("url");
    let run = server.ended(url.path().trim_start_matches("/runs/")).await;
    assert_eq!(
        run["jobs"][0]["output"],
        json!({"text": "by keys"}),
        "{run}"
    );
    browser.close().await;
}

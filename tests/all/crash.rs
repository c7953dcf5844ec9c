//! Killing the host with SIGKILL in the middle of a run loses no
//! acknowledged work: a restarted host finishes the run, no completed job
//! runs twice, artifacts match their digests and the database is intact.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::support::guest_path;

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
const JOBS: usize = 500;
const CHAINS: usize = 10;

fn pipeline() -> Value {
    let jobs: serde_json::Map<String, Value> = (0..JOBS)
        .map(|i| {
            let mut job = json!({
                "plugin": "toolbox",
                "input": [
                    {"op": "write_out", "name": "out.txt", "data": format!("output of job {i}")},
                    {"op": "sleep_ms", "ms": 40},
                ],
                "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50},
            });
            if i >= CHAINS {
                job["needs"] = json!([format!("j{}", i - CHAINS)]);
            }
            (format!("j{i}"), job)
        })
        .collect();
    json!({"jobs": jobs})
}

fn engine_args<'a>(data: &'a Path, plugins: &'a Path) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--plugins-dir".as_ref(),
        plugins.as_os_str(),
        "--concurrency".as_ref(),
        "8".as_ref(),
    ]
}

/// A work folder holding one plugin and a pipeline file.
struct Setup {
    work: tempfile::TempDir,
}

impl Setup {
    fn new(plugin: &str, pipeline: &Value) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(work.path().join("plugins")).expect("plugins dir");
        let copy = work.path().join("plugins").join(format!("{plugin}.wasm"));
        std::fs::copy(guest_path(plugin), copy).expect("copy");
        std::fs::write(work.path().join("pipeline.json"), pipeline.to_string()).expect("pipeline");
        Self { work }
    }

    fn data(&self) -> std::path::PathBuf {
        self.work.path().join("data")
    }

    fn db(&self) -> std::path::PathBuf {
        self.data().join("warren.db")
    }

    /// `warren pipeline run` in the background.
    fn start(&self) -> std::process::Child {
        Command::new(WARREN)
            .args(["pipeline", "run"])
            .arg(self.work.path().join("pipeline.json"))
            .args(engine_args(&self.data(), &self.work.path().join("plugins")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warren")
    }

    /// `warren pipeline resume`: its exit code and the run it finished.
    fn resume(&self) -> (Option<i32>, Value) {
        let resumed = Command::new(WARREN)
            .args(["pipeline", "resume", "--json"])
            .args(engine_args(&self.data(), &self.work.path().join("plugins")))
            .output()
            .expect("resume");
        let stderr = String::from_utf8_lossy(&resumed.stderr).into_owned();
        let run =
            serde_json::from_slice(&resumed.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (resumed.status.code(), run)
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count query")
}

/// While the first process may still be creating the database.
fn count_if_ready(path: &Path, sql: &str) -> Option<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

#[test]
fn a_killed_host_finishes_the_run_on_restart_without_running_completed_jobs_again() {
    let setup = Setup::new("toolbox", &pipeline());
    let data = setup.data();
    let mut first = setup.start();

    // Wait until a good part of the run is done, then kill without warning.
    let started = Instant::now();
    let db_path = setup.db();
    loop {
        let done = count_if_ready(
            &db_path,
            "SELECT count(*) FROM jobs WHERE state = 'completed'",
        );
        if done.is_some_and(|n| n >= 100) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let conn = Connection::open(&db_path).expect("open");
    let completed_before: Vec<(String, String)> = conn
        .prepare(
            "SELECT j.id, a.id FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.state = 'succeeded'
             WHERE j.state = 'completed'",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let interrupted = count(
        &conn,
        "SELECT count(*) FROM attempts WHERE state = 'running'",
    );
    assert!(completed_before.len() >= 100 && completed_before.len() < JOBS);
    assert!(interrupted > 0, "the kill should land while attempts run");
    drop(conn);

    let (code, run) = setup.resume();
    assert_eq!(code, Some(0));
    assert_eq!(run["state"], "completed");
    assert_eq!(run["jobs"].as_array().map(Vec::len), Some(JOBS));

    let conn = Connection::open(&db_path).expect("open");
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM jobs WHERE state <> 'completed'"
        ),
        0
    );
    // Every job succeeded exactly once, and nothing ran after its success.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM (SELECT job_id FROM attempts WHERE state = 'succeeded' GROUP BY job_id HAVING count(*) = 1)"
        ),
        JOBS as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM attempts a JOIN attempts s ON s.job_id = a.job_id AND s.state = 'succeeded'
             WHERE a.number > s.number"
        ),
        0
    );
    // Jobs completed before the kill kept their one successful attempt.
    for (job, attempt) in &completed_before {
        let succeeded: String = conn
            .query_row(
                "SELECT id FROM attempts WHERE job_id = ?1 AND state = 'succeeded'",
                [job],
                |r| r.get(0),
            )
            .expect("attempt");
        assert_eq!(&succeeded, attempt);
    }
    // Interrupted attempts were closed as failed by the restart.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM attempts WHERE state = 'running'"
        ),
        0
    );
    let closed = count(
        &conn,
        "SELECT count(*) FROM attempts WHERE state = 'failed' AND error LIKE '%host restart%'",
    );
    assert_eq!(closed, interrupted);

    // Every artifact's bytes match its digest.
    let artifacts: Vec<(String, String)> = conn
        .prepare("SELECT sha256, j.name FROM artifacts a JOIN jobs j ON j.id = a.job_id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(artifacts.len(), JOBS);
    let store = warren_sandbox::artifact_store::ArtifactStore::open(&data.join("artifacts"))
        .expect("store");
    for (sha256, job) in artifacts {
        let bytes = store.get(&sha256, 1 << 20).expect("blob");
        assert_eq!(warren_sandbox::artifact_store::sha256_hex(&bytes), sha256);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            format!("output of job {}", &job[1..])
        );
    }
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(integrity, "ok");
}

/// A job with the default policy (one attempt) that was running when the
/// host died ends failed at restart, with the reason, and the run ends.
#[test]
fn an_interrupted_job_without_retries_fails_with_the_restart_as_reason() {
    let pipeline =
        json!({"jobs": {"spin": {"plugin": "spin_forever", "limits": {"timeout_ms": 600000}}}});
    let setup = Setup::new("spin_forever", &pipeline);
    let mut first = setup.start();
    let db_path = setup.db();
    let started = Instant::now();
    while count_if_ready(
        &db_path,
        "SELECT count(*) FROM attempts WHERE state = 'running'",
    ) != Some(1)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let (code, run) = setup.resume();
    assert_eq!(code, Some(1));
    assert_eq!(run["state"], "failed");
    assert_eq!(run["jobs"][0]["state"], "failed");
    assert_eq!(run["jobs"][0]["attempts"], 1);
    let error = run["jobs"][0]["error"].to_string();
    assert!(error.contains("host restart"), "{error}");
}

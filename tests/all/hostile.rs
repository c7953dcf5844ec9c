//! Hostile guests: each must end with the right reason while the host keeps
//! running, the canary outside the sandbox stays as it was, and the next
//! normal job succeeds.

use std::time::{Duration, Instant};

use warren_sandbox::plugin::PluginError;
use warren_sandbox::runtime::{AttemptFailure, AttemptRequest, LimitHit};
use warren_vocabulary::Limits;

use crate::support::{Canary, TEST_GUESTS_DIR, TestHost, guest_path};

/// Every test guest, so that a new guest without a test is noticed.
const COVERED_GUESTS: &[&str] = &[
    "agent_ops",
    "agent_v010",
    "deep_recursion",
    "describe_loop",
    "describe_nonsense",
    "describe_trap",
    "disk_filler",
    "fs_escape",
    "guard_rules",
    "http_client",
    "huge_output",
    "log_flood",
    "memory_bomb",
    "panics",
    "spin_forever",
    "toolbox",
    "unknown_import",
    "wasi-command",
];

#[test]
fn every_test_guest_has_a_test() {
    let mut built: Vec<String> = std::fs::read_dir(TEST_GUESTS_DIR)
        .expect("guests dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".wasm")
                .map(str::to_owned)
        })
        .collect();
    built.sort();
    assert_eq!(built, COVERED_GUESTS);
}

fn limits_with_timeout(ms: u64) -> Limits {
    Limits {
        timeout_ms: ms,
        ..Limits::default()
    }
}

async fn after_hostile(host: &TestHost, canary: &Canary) {
    canary.assert_untouched();
    host.assert_next_job_succeeds().await;
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_its_deadline() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("spin_forever");
    let mut request = AttemptRequest::new("spin_forever", "{}");
    request.limits = limits_with_timeout(200);
    let started = Instant::now();
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::Deadline { timeout_ms: 200 }
        })
    );
    assert!(
        elapsed >= Duration::from_millis(200),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "stopped late: {elapsed:?}"
    );
    // The loop's work is measured even though it never called out.
    assert!(
        outcome.usage.fuel_consumed > 10_000_000,
        "fuel {}",
        outcome.usage.fuel_consumed
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_fuel() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("spin_forever");
    let mut request = AttemptRequest::new("spin_forever", "{}");
    request.limits.fuel = 5_000_000;
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::Fuel { budget: 5_000_000 }
        })
    );
    assert_eq!(outcome.usage.fuel_consumed, 5_000_000);
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("memory_bomb");
    let mut request = AttemptRequest::new("memory_bomb", "{}");
    request.limits.memory_bytes = 32 << 20;
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    match outcome.result {
        Err(AttemptFailure::Limit {
            hit:
                LimitHit::Memory {
                    limit_bytes,
                    requested_bytes,
                },
        }) => {
            assert_eq!(limit_bytes, 32 << 20);
            assert!(requested_bytes > limit_bytes);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert!(outcome.usage.peak_memory_bytes <= 32 << 20);
    assert!(
        outcome.usage.peak_memory_bytes > 16 << 20,
        "the bomb did allocate"
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn deep_recursion_exhausts_the_wasm_stack() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("deep_recursion");
    let outcome = host.run(&plugin, "{}").await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::Stack
        })
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_guest_panic_is_a_trap_that_carries_the_panic_message() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("panics");
    let outcome = host.run(&plugin, "{}").await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Trap {
            message: "guest panicked: boom: the guest gave up".into()
        })
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn an_output_over_the_limit_is_refused() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("huge_output");
    let mut request = AttemptRequest::new("huge_output", r#"{"bytes": 3000000}"#);
    request.limits.max_output_bytes = 1 << 20;
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::Output {
                // The JSON string adds two quotes.
                size_bytes: 3_000_002,
                limit_bytes: 1 << 20
            }
        })
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_log_flood_is_truncated_at_the_log_limit_and_the_job_still_completes() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("log_flood");
    let mut request = AttemptRequest::new("log_flood", r#"{"lines": 20000}"#);
    request.limits.max_log_bytes = 64 << 10;
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(outcome.result.as_deref(), Ok("20000"));
    let overhead = warren_sandbox::capabilities::log::LINE_OVERHEAD;
    let kept: usize = outcome
        .log
        .lines
        .iter()
        .map(|l| l.message.len() + overhead)
        .sum();
    assert!(kept <= 64 << 10, "kept {kept} bytes of log");
    assert!(
        kept > 60 << 10,
        "the log should be filled up to its limit, kept {kept}"
    );
    // 20,000 lines of ~130 bytes on each of three channels were written.
    assert!(
        outcome.log.dropped_bytes > 5_000_000,
        "dropped {}",
        outcome.log.dropped_bytes
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn filesystem_escapes_are_all_denied() {
    let host = TestHost::new();
    let canary = Canary::new();
    let inputs = tempfile::tempdir().expect("tempdir");
    std::fs::write(inputs.path().join("input.txt"), "read only").expect("write input");
    std::os::unix::fs::symlink(&canary.path, inputs.path().join("link.txt"))
        .expect("plant symlink");
    let plugin = host.guest("fs_escape");
    let input = serde_json::json!({ "canary": canary.path }).to_string();
    let mut request = AttemptRequest::new("fs_escape", input);
    request.in_dir = Some(inputs.path().to_path_buf());
    let outcome = host.runtime.run_attempt(&plugin, request).await;

    let output = outcome.result.expect("the guest reports what it tried");
    let report: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&output).expect("report");
    // What each escape must meet: WASI's "not permitted" where the path
    // leaves a preopen or a read-only one is written, "no such file" where
    // the path names no preopen at all.
    let expected = [
        ("read_absolute", "No such file"),
        ("write_absolute", "No such file"),
        ("read_etc_passwd", "No such file"),
        ("read_dotdot", "not permitted"),
        ("write_dotdot", "not permitted"),
        ("write_relative", "No such file"),
        ("symlink_absolute", "not-permitted"),
        ("symlink_relative", "not permitted"),
        ("read_in_symlink", "not permitted"),
        ("write_in_symlink", "not permitted"),
        ("write_in_new", "not permitted"),
        ("write_in_existing", "not permitted"),
        ("remove_in_existing", "not permitted"),
    ];
    let attempted: Vec<&str> = report
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "out_symlink_created")
        .collect();
    let mut expected_keys: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
    expected_keys.sort();
    assert_eq!(attempted, expected_keys);
    for (attempt, error) in expected {
        let result = &report[attempt];
        assert!(
            result.starts_with("denied") && result.to_lowercase().contains(&error.to_lowercase()),
            "{attempt}: expected a denial with {error:?}, got {result}"
        );
    }
    // The symlink left in /out was skipped: only the regular file became an
    // artifact, so the canary's bytes never reached the artifact store.
    let names: Vec<&str> = outcome.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["legit.txt"]);
    assert_eq!(
        std::fs::read_to_string(inputs.path().join("input.txt")).expect("input"),
        "read only"
    );
    assert_eq!(std::fs::read_dir(inputs.path()).expect("inputs").count(), 2);
    // The scratch directories were removed after the attempt.
    let work = host.data.path().join("work");
    assert_eq!(std::fs::read_dir(work).expect("work root").count(), 0);
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_wasi_command_is_rejected_as_the_wrong_world() {
    let host = TestHost::new();
    let canary = Canary::new();
    let error = host
        .runtime
        .load_file(&guest_path("wasi-command"))
        .expect_err("wrong world");
    match &error {
        PluginError::WrongWorld { exports } => {
            assert!(exports.contains("wasi:cli/run"), "{exports}")
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("exports none of the `job` world")
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn random_bytes_and_core_modules_are_rejected_with_what_they_are() {
    let host = TestHost::new();
    let canary = Canary::new();
    let mut noise = vec![0u8; 4096];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    assert!(matches!(
        host.runtime.load_bytes("noise", &noise),
        Err(PluginError::NotWasm)
    ));
    // Random bytes behind a component header still fail, as invalid.
    let mut fake = b"\0asm\x0d\0\x01\0".to_vec();
    fake.extend_from_slice(&noise);
    assert!(matches!(
        host.runtime.load_bytes("fake", &fake),
        Err(PluginError::Invalid(_))
    ));
    assert!(matches!(
        host.runtime.load_bytes("core", b"\0asm\x01\0\0\0"),
        Err(PluginError::CoreModule)
    ));
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn an_unknown_import_is_rejected_naming_the_import() {
    let host = TestHost::new();
    let canary = Canary::new();
    let error = host
        .runtime
        .load_file(&guest_path("unknown_import"))
        .expect_err("unknown import");
    match &error {
        PluginError::UnsupportedImport { import } => {
            assert_eq!(import, "test:unknown-import/gadget")
        }
        other => panic!("expected UnsupportedImport, got {other:?}"),
    }
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_cancelled_attempt_stops_promptly() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("spin_forever");
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut request = AttemptRequest::new("spin_forever", "{}");
    request.cancel = Some(cancel.clone());
    let flag = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let started = Instant::now();
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(outcome.result, Err(AttemptFailure::Cancelled));
    assert!(started.elapsed() < Duration::from_millis(1000));
    after_hostile(&host, &canary).await;
}

fn disk_limits(bytes: u64, files: u64) -> Limits {
    Limits {
        max_disk_bytes: bytes,
        max_disk_files: files,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_disk_filler_is_stopped_at_its_byte_quota_while_writing() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("disk_filler");
    let mut request = AttemptRequest::new("disk_filler", r#"{"mode":"bytes"}"#);
    request.limits = disk_limits(8 << 20, 100);
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::DiskBytes {
                limit_bytes: 8 << 20
            }
        })
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn a_file_creator_is_stopped_at_its_file_quota() {
    let host = TestHost::new();
    let canary = Canary::new();
    let plugin = host.guest("disk_filler");
    let mut request = AttemptRequest::new("disk_filler", r#"{"mode":"files"}"#);
    request.limits = disk_limits(8 << 20, 100);
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(
        outcome.result,
        Err(AttemptFailure::Limit {
            hit: LimitHit::DiskFiles { limit_files: 100 }
        })
    );
    after_hostile(&host, &canary).await;
}

#[tokio::test]
async fn deleting_a_file_gives_its_bytes_and_its_place_back() {
    let host = TestHost::new();
    let plugin = host.guest("disk_filler");
    // 20 MiB written in all, never more than 1 MiB at once.
    let mut request = AttemptRequest::new("disk_filler", r#"{"mode":"rewrite","rounds":20}"#);
    request.limits = disk_limits(4 << 20, 3);
    let outcome = host.runtime.run_attempt(&plugin, request).await;
    assert_eq!(outcome.result.as_deref(), Ok("20971520"));
}

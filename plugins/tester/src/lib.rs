//! `tester`: checks the latest patch under `/in`. The first check of a run
//! fails once: the tester then spawns a `dev` job with the fix to make (that
//! dev spawns the re-check), and reports what it found.

use std::path::Path;

use serde::Serialize;
use warren_sdk::{Context, Error, Job, jobs, log, memory};

#[derive(Serialize)]
struct Verdict {
    passed: bool,
    checked: String,
    findings: Vec<String>,
    fix_job: Option<String>,
}

struct Tester;

/// The newest `patch.txt` among the upstream jobs' artifacts.
fn latest_patch() -> Result<Option<(String, String)>, Error> {
    let root = Path::new("/in");
    if !root.is_dir() {
        return Ok(None);
    }
    let mut newest: Option<(u64, String, String)> = None;
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path().join("patch.txt");
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let revision = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("revision "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if newest.as_ref().is_none_or(|(r, _, _)| revision > *r) {
            newest = Some((revision, path.display().to_string(), text));
        }
    }
    Ok(newest.map(|(_, path, text)| (path, text)))
}

impl Job for Tester {
    type Input = serde_json::Value;
    type Output = Verdict;

    fn run(_ctx: &Context, _input: serde_json::Value) -> Result<Verdict, Error> {
        let Some((checked, patch)) = latest_patch()? else {
            return Err(Error::needs_input(["a patch.txt from an upstream dev job"]));
        };
        let failed_before = memory::run()
            .get_json::<bool>("failed_once")?
            .unwrap_or(false);
        if !patch.contains("fix:") && !failed_before {
            memory::run().set_json("failed_once", &true)?;
            let finding = "empty input is not handled".to_owned();
            let fix_job = jobs::spawn(
                "dev",
                &serde_json::json!({"fix": finding, "retest": true}),
                "check failed: empty input is not handled",
            )?;
            log::warn(&format!("check failed, asked {fix_job} for a fix"));
            return Ok(Verdict {
                passed: false,
                checked,
                findings: vec![finding],
                fix_job: Some(fix_job),
            });
        }
        log::info("all checks passed");
        Ok(Verdict {
            passed: true,
            checked,
            findings: Vec::new(),
            fix_job: None,
        })
    }
}

warren_sdk::export_job!(Tester);

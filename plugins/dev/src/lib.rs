//! `dev`: "implements" the plan (or a fix asked for by the tester) and
//! writes the result to `/out/patch.txt`. With `flaky`, its first attempt
//! fails with a retryable error, as a busy toolchain would.

use serde::{Deserialize, Serialize};
use warren_sdk::{Context, Error, Job, jobs, log, memory};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Input {
    /// Fail the first attempt (retryable).
    flaky: bool,
    /// A fix asked for by a tester; the plan otherwise.
    fix: Option<String>,
    /// Spawn a tester once the fix is in.
    retest: bool,
}

#[derive(Deserialize)]
struct Plan {
    steps: Vec<String>,
}

#[derive(Serialize)]
struct Patch {
    revision: u64,
    changes: Vec<String>,
    retest_job: Option<String>,
}

struct Dev;

impl Job for Dev {
    type Input = Input;
    type Output = Patch;

    fn run(ctx: &Context, input: Input) -> Result<Patch, Error> {
        if input.flaky && ctx.attempt == 1 {
            return Err(Error::retryable("the toolchain is busy, try again"));
        }
        let changes = match (&input.fix, ctx.upstream::<Plan>("plan")?) {
            (Some(fix), _) => vec![format!("fix: {fix}")],
            (None, Some(plan)) => plan.steps.iter().map(|s| format!("done: {s}")).collect(),
            (None, None) => return Err(Error::needs_input(["a plan or a fix to make"])),
        };
        // Revisions count across the whole run, including spawned devs.
        let revision = memory::run().get_json::<u64>("revision")?.unwrap_or(0) + 1;
        memory::run().set_json("revision", &revision)?;
        std::fs::write(
            "/out/patch.txt",
            format!("revision {revision}\n{}\n", changes.join("\n")),
        )?;
        log::info(&format!("revision {revision}: {} changes", changes.len()));
        let retest_job = if input.retest {
            Some(jobs::spawn(
                "tester",
                &serde_json::json!({}),
                "re-check after the fix",
            )?)
        } else {
            None
        };
        Ok(Patch {
            revision,
            changes,
            retest_job,
        })
    }
}

warren_sdk::export_job!(Dev);

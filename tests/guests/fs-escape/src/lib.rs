//! Hostile: tries every way out of the sandbox it can think of and reports,
//! for each, what happened. The test then checks the canary file outside
//! the sandbox and the read-only inputs are untouched.

use std::collections::BTreeMap;

use serde::Deserialize;
use warren_sdk::{Context, Error, Job};

#[derive(Deserialize)]
struct Input {
    /// Absolute host path of a file outside the sandbox.
    canary: String,
}

struct FsEscape;

/// "denied: <error>" when the attempt failed, "ESCAPED: ..." when it did not.
fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => format!("ESCAPED: {value:?}"),
        Err(e) => format!("denied: {e}"),
    }
}

fn symlink(target: &str, link_in_work: &str) -> Result<(), String> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let (work, _) = dirs
        .iter()
        .find(|(_, path)| path == "/work")
        .ok_or("no /work preopen")?;
    work.symlink_at(target, link_in_work)
        .map_err(|e| format!("{e:?}"))
}

fn symlink_in(dir: &str, target: &str, link: &str) -> Result<(), String> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let (descriptor, _) = dirs
        .iter()
        .find(|(_, path)| path == dir)
        .ok_or("no such preopen")?;
    descriptor
        .symlink_at(target, link)
        .map_err(|e| format!("{e:?}"))
}

impl Job for FsEscape {
    type Input = Input;
    type Output = BTreeMap<String, String>;

    fn run(_ctx: &Context, input: Input) -> Result<Self::Output, Error> {
        let canary = input.canary.as_str();
        let relative_canary = canary.trim_start_matches('/');
        let climb = "../".repeat(12);
        let mut report = BTreeMap::new();
        let mut record = |name: &str, result: String| {
            report.insert(name.to_owned(), result);
        };

        record("read_absolute", outcome(std::fs::read_to_string(canary)));
        record("write_absolute", outcome(std::fs::write(canary, "pwned")));
        record(
            "read_etc_passwd",
            outcome(std::fs::read_to_string("/etc/passwd")),
        );
        let dotdot = format!("/work/{climb}{relative_canary}");
        record("read_dotdot", outcome(std::fs::read_to_string(&dotdot)));
        record("write_dotdot", outcome(std::fs::write(&dotdot, "pwned")));
        record(
            "write_relative",
            outcome(std::fs::write("../canary.txt", "pwned")),
        );

        // A symlink inside /work pointing outside, made by the guest itself.
        let absolute_link = symlink(canary, "link-absolute");
        let absolute_link = match absolute_link {
            Ok(()) => outcome(std::fs::write("/work/link-absolute", "pwned")),
            Err(e) => format!("denied: {e}"),
        };
        record("symlink_absolute", absolute_link);
        let relative_target = format!("{climb}{relative_canary}");
        let relative_link = match symlink(&relative_target, "link-relative") {
            Ok(()) => {
                let read = outcome(std::fs::read_to_string("/work/link-relative"));
                let write = outcome(std::fs::write("/work/link-relative", "pwned"));
                if read.starts_with("ESCAPED") || write.starts_with("ESCAPED") {
                    format!("{read}; {write}")
                } else {
                    format!("denied: {read}; {write}")
                }
            }
            Err(e) => format!("denied: {e}"),
        };
        record("symlink_relative", relative_link);

        // The host planted `/in/link.txt` pointing at the canary.
        record(
            "read_in_symlink",
            outcome(std::fs::read_to_string("/in/link.txt")),
        );
        record(
            "write_in_symlink",
            outcome(std::fs::write("/in/link.txt", "pwned")),
        );

        // Inputs are read-only.
        record(
            "write_in_new",
            outcome(std::fs::write("/in/new.txt", "pwned")),
        );
        record(
            "write_in_existing",
            outcome(std::fs::write("/in/input.txt", "pwned")),
        );
        record(
            "remove_in_existing",
            outcome(std::fs::remove_file("/in/input.txt")),
        );

        // A symlink left in /out must not make the host copy the canary.
        let out_link = symlink_in("/out", &relative_target, "leak.txt");
        record(
            "out_symlink_created",
            match out_link {
                Ok(()) => "created".into(),
                Err(e) => format!("denied: {e}"),
            },
        );
        std::fs::write("/out/legit.txt", "kept")?;
        Ok(report)
    }
}

warren_sdk::export_job!(FsEscape);

//! Hostile: floods the log interface and stdout/stderr, then succeeds.

use serde::Deserialize;
use warren_sdk::{Context, Error, Job, log};

#[derive(Deserialize)]
struct Input {
    lines: u32,
}

struct LogFlood;

impl Job for LogFlood {
    type Input = Input;
    type Output = u32;

    fn run(_ctx: &Context, input: Input) -> Result<u32, Error> {
        let line = "flood ".repeat(20);
        for i in 0..input.lines {
            log::info(&format!("{i} {line}"));
            println!("{i} {line}");
            eprint!("{i} no newline ");
        }
        Ok(input.lines)
    }
}

warren_sdk::export_job!(LogFlood);

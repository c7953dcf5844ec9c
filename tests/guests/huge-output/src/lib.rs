//! Hostile: returns an output of `bytes` bytes (a JSON string).

use serde::Deserialize;
use warren_sdk::{Context, Error, Job};

#[derive(Deserialize)]
struct Input {
    bytes: usize,
}

struct HugeOutput;

impl Job for HugeOutput {
    type Input = Input;
    type Output = String;

    fn run(_ctx: &Context, input: Input) -> Result<String, Error> {
        Ok("x".repeat(input.bytes))
    }
}

warren_sdk::export_job!(HugeOutput);

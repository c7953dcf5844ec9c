//! `echo`: returns its input unchanged. The smallest useful job; used to
//! check a Warren installation and to measure per-job overhead.

use warren_sdk::{Context, Error, Job};

struct Echo;

impl Job for Echo {
    type Input = serde_json::Value;
    type Output = serde_json::Value;

    fn run(_ctx: &Context, input: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(input)
    }
}

warren_sdk::export_job!(Echo);

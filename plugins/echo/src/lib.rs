//! `echo`: returns its input unchanged, byte for byte. The smallest useful
//! job; used to check a Warren installation and to measure per-job overhead.

use serde_json::value::RawValue;
use warren_sdk::{Context, Error, Job};

struct Echo;

impl Job for Echo {
    type Input = Box<RawValue>;
    type Output = Box<RawValue>;

    fn run(_ctx: &Context, input: Box<RawValue>) -> Result<Box<RawValue>, Error> {
        Ok(input)
    }
}

warren_sdk::export_job!(Echo);

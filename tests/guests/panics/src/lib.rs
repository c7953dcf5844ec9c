//! Hostile: panics, which aborts the guest.

use warren_sdk::{Context, Error, Job};

struct Panics;

impl Job for Panics {
    type Input = serde_json::Value;
    type Output = ();

    fn run(_ctx: &Context, _input: serde_json::Value) -> Result<(), Error> {
        panic!("boom: the guest gave up");
    }
}

warren_sdk::export_job!(Panics);

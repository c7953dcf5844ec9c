//! Hostile: never returns. Only the deadline (or fuel) stops it.

use warren_sdk::{Context, Error, Job};

struct SpinForever;

impl Job for SpinForever {
    type Input = serde_json::Value;
    type Output = u64;

    fn run(_ctx: &Context, _input: serde_json::Value) -> Result<u64, Error> {
        let mut counter: u64 = 0;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

warren_sdk::export_job!(SpinForever);

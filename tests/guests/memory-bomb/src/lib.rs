//! Hostile: allocates (and touches) memory until something stops it.

use warren_sdk::{Context, Error, Job};

struct MemoryBomb;

impl Job for MemoryBomb {
    type Input = serde_json::Value;
    type Output = usize;

    fn run(_ctx: &Context, _input: serde_json::Value) -> Result<usize, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

warren_sdk::export_job!(MemoryBomb);

//! Hostile: recurses without end until the wasm stack runs out.

use warren_sdk::{Context, Error, Job};

struct DeepRecursion;

/// Keeps its state in wasm locals, so every call grows the engine's stack
/// (not the guest's own stack in linear memory).
#[inline(never)]
#[allow(unconditional_recursion)]
fn descend(depth: u64) -> u64 {
    // Using the result after the call keeps this from becoming a loop.
    descend(std::hint::black_box(depth + 1)).wrapping_mul(3) ^ depth
}

impl Job for DeepRecursion {
    type Input = serde_json::Value;
    type Output = u64;

    fn run(_ctx: &Context, _input: serde_json::Value) -> Result<u64, Error> {
        Ok(descend(0))
    }
}

warren_sdk::export_job!(DeepRecursion);

//! Embedding Warren's sandbox in another Rust program, with the
//! `warren-sandbox` crate alone: load a plugin, run one attempt under
//! limits, read its output, usage and artifacts.
//!
//! Run with `cargo run -p warren-sandbox --example embed [PLUGIN.wasm]`; without
//! an argument it runs the first-party `wordcount` plugin that building
//! Warren leaves in `target/guests/`.

use std::path::PathBuf;

use warren_sandbox::runtime::{AttemptRequest, Runtime, RuntimeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join("warren-embed-example");
    let runtime = Runtime::new(RuntimeConfig::new(&data_dir))?;
    let path = std::env::args_os().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/guests/plugins/wasm32-wasip2/release/wordcount.wasm")
        },
        PathBuf::from,
    );
    let plugin = runtime.load_file(&path)?;
    println!(
        "loaded {} ({:?}, sha256 {})",
        plugin.name(),
        plugin.kind(),
        plugin.digest()
    );

    let mut request = AttemptRequest::new("wordcount", r#"{"text":"the quick brown fox"}"#);
    request.limits.timeout_ms = 2_000;
    request.limits.memory_bytes = 16 << 20;
    let outcome = runtime.run_attempt(&plugin, request).await;

    match &outcome.result {
        Ok(output) => println!("output: {output}"),
        Err(failure) => println!("failed: {failure}"),
    }
    println!(
        "usage: {} fuel, {} bytes peak memory, {:?}",
        outcome.usage.fuel_consumed, outcome.usage.peak_memory_bytes, outcome.usage.wall_time
    );
    for artifact in &outcome.artifacts {
        let bytes = runtime.artifact_store().get(&artifact.sha256, 1 << 20)?;
        println!(
            "artifact {} ({} bytes):\n{}",
            artifact.name,
            artifact.size,
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

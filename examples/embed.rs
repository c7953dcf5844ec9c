//! Embedding Warren in another Rust program: load a plugin, run one attempt
//! under limits, read its output, usage and artifacts.
//!
//! Run with `cargo run --example embed`.

use std::path::Path;
use std::time::Duration;

use warren::runtime::{AttemptRequest, Runtime, RuntimeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join("warren-embed-example");
    let runtime = Runtime::new(RuntimeConfig::new(&data_dir))?;
    let plugin =
        runtime.load_file(&Path::new(warren::BUILTIN_PLUGINS_DIR).join("wordcount.wasm"))?;
    println!(
        "loaded {} ({:?}, sha256 {})",
        plugin.name(),
        plugin.kind(),
        plugin.digest()
    );

    let mut request = AttemptRequest::new("wordcount", r#"{"text":"the quick brown fox"}"#);
    request.limits.timeout = Duration::from_secs(2);
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

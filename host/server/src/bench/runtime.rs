//! `warren bench runtime`: what Warren's runtime costs, measured in one run
//! against raw wasmtime with the same engine (the floor), a subprocess per
//! job (how the ancestors of this design ran jobs), limits switched off,
//! and compiling without the cache.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::raw::RawWasmtime;
use super::{Measurement, Samples, micros, millis};
use anyhow::Context as _;
use warren_sandbox::runtime::{
    AttemptRequest, CompileCache, EngineSettings, Runtime, RuntimeConfig,
};

#[derive(Debug, Clone)]
pub struct RuntimeBenchOptions {
    /// Folder holding the first-party plugins `echo`, `checksum`, `primes` and `wordcount`.
    pub plugins_dir: PathBuf,
    /// Calls per instantiate+call benchmark.
    pub iterations: usize,
    /// Runs of the CPU-bound guest with and without limits.
    pub cpu_runs: usize,
    /// Compiles of the cold-compile benchmark.
    pub compiles: usize,
}

impl Default for RuntimeBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            iterations: 5_000,
            cpu_runs: 31,
            compiles: 5,
        }
    }
}

const ECHO_INPUT: &str = r#"{"text":"hello warren"}"#;
/// Both sized so one run takes tens of milliseconds.
const CHECKSUM_INPUT: &str = r#"{"text":"warren","rounds":100000}"#;
const PRIMES_INPUT: &str = r#"{"limit":2000000}"#;

pub async fn run(options: &RuntimeBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let data = super::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig::new(&data))?;
    let echo_path = options.plugins_dir.join("echo.wasm");
    let echo = runtime
        .load_file(&echo_path)
        .with_context(|| format!("loading {}", echo_path.display()))?;
    let mut results = Vec::new();

    // Interleaved rounds, so drift on the machine hits both sides alike.
    let mut warren_samples = Vec::with_capacity(options.iterations);
    let mut raw_samples = Vec::with_capacity(options.iterations);
    let raw = RawWasmtime::new(&runtime, &echo_path, ECHO_INPUT)?;
    for _ in 0..200 {
        warren_call(&runtime, &echo).await?;
        raw.call().await?;
    }
    let rounds = 10;
    for _ in 0..rounds {
        for _ in 0..options.iterations / rounds {
            let started = Instant::now();
            warren_call(&runtime, &echo).await?;
            warren_samples.push(started.elapsed());
        }
        for _ in 0..options.iterations / rounds {
            let started = Instant::now();
            raw.call().await?;
            raw_samples.push(started.elapsed());
        }
    }
    let warren_samples = Samples::new(warren_samples);
    let raw_samples = Samples::new(raw_samples);
    results.push(Measurement::new(
        "echo_instantiate_call_raw_wasmtime_median",
        micros(raw_samples.median()),
        "us",
    ));
    results.push(
        Measurement::new(
            "echo_instantiate_call_warren_median",
            micros(warren_samples.median()),
            "us",
        )
        .against(micros(raw_samples.median())),
    );
    results.push(
        Measurement::new(
            "echo_instantiate_call_warren_p99",
            micros(warren_samples.percentile(0.99)),
            "us",
        )
        .against(micros(raw_samples.percentile(0.99))),
    );

    let subprocess = subprocess_samples(options.iterations.min(1_000))?;
    results.push(Measurement::new(
        "subprocess_bin_true_median",
        micros(subprocess.median()),
        "us",
    ));
    results.push(
        Measurement::new(
            "echo_warren_vs_subprocess_median",
            micros(warren_samples.median()),
            "us",
        )
        .against(micros(subprocess.median())),
    );

    results.extend(cpu_bound(&runtime, &options.plugins_dir, options.cpu_runs, &data).await?);
    results.extend(compile_vs_cache(
        &runtime,
        &options.plugins_dir.join("wordcount.wasm"),
        options.compiles,
        &data,
    )?);
    let _ = std::fs::remove_dir_all(&data);
    Ok(results)
}

async fn warren_call(
    runtime: &Runtime,
    plugin: &warren_sandbox::plugin::Plugin,
) -> anyhow::Result<()> {
    let outcome = runtime
        .run_attempt(plugin, AttemptRequest::new("echo", ECHO_INPUT))
        .await;
    match outcome.result {
        Ok(output) if output == ECHO_INPUT => Ok(()),
        other => anyhow::bail!("echo through Warren returned {other:?}"),
    }
}

fn subprocess_samples(iterations: usize) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let status = std::process::Command::new("/bin/true").status()?;
        samples.push(started.elapsed());
        anyhow::ensure!(status.success(), "/bin/true failed");
    }
    Ok(Samples::new(samples))
}

/// A CPU-bound guest with fuel and epoch checks compiled in and enforced,
/// against the same guest on an engine without them. Both must return the
/// same output.
async fn limits_cost(
    limited: &Runtime,
    unlimited: &Runtime,
    path: &Path,
    input: &str,
    runs: usize,
) -> anyhow::Result<(Samples, Samples)> {
    let with_limits = limited.load_file(path)?;
    let without_limits = unlimited.load_file(path)?;
    let name = with_limits.name().to_owned();
    let mut on = Vec::with_capacity(runs);
    let mut off = Vec::with_capacity(runs);
    let mut expected: Option<String> = None;
    for round in 0..runs + 1 {
        for (rt, plugin, samples) in [
            (limited, &with_limits, &mut on),
            (unlimited, &without_limits, &mut off),
        ] {
            let started = Instant::now();
            let outcome = rt
                .run_attempt(plugin, AttemptRequest::new(name.as_str(), input))
                .await;
            let elapsed = started.elapsed();
            let output = outcome
                .result
                .map_err(|e| anyhow::anyhow!("{name} failed: {e}"))?;
            let expected = expected.get_or_insert_with(|| output.clone());
            anyhow::ensure!(
                output == *expected,
                "{name} returned {output}, before {expected}"
            );
            // The first round warms both sides up.
            if round > 0 {
                samples.push(elapsed);
            }
        }
    }
    Ok((Samples::new(on), Samples::new(off)))
}

async fn cpu_bound(
    runtime: &Runtime,
    plugins_dir: &Path,
    runs: usize,
    data: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let unlimited = Runtime::new(RuntimeConfig {
        engine: EngineSettings {
            limits: false,
            ..EngineSettings::default()
        },
        ..RuntimeConfig::new(data.join("unlimited"))
    })?;
    let mut results = Vec::new();
    for (plugin, input, bench) in [
        ("checksum", CHECKSUM_INPUT, "checksum_sha256_chain"),
        ("primes", PRIMES_INPUT, "primes_sieve_tight_loop"),
    ] {
        let path = plugins_dir.join(format!("{plugin}.wasm"));
        let (on, off) = limits_cost(runtime, &unlimited, &path, input, runs).await?;
        results.push(Measurement::new(
            &format!("{bench}_limits_off_median"),
            millis(off.median()),
            "ms",
        ));
        results.push(
            Measurement::new(
                &format!("{bench}_limits_on_median"),
                millis(on.median()),
                "ms",
            )
            .against(millis(off.median())),
        );
    }
    Ok(results)
}

/// Compiling `wordcount` from scratch against loading it from the cache.
fn compile_vs_cache(
    runtime: &Runtime,
    path: &Path,
    compiles: usize,
    data: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let bytes = std::fs::read(path)?;
    let engine = runtime.engine();
    let digest = warren_sandbox::artifact_store::sha256_hex(&bytes);
    let uncached = CompileCache::new(engine, None)?;
    let mut cold = Vec::with_capacity(compiles);
    for _ in 0..compiles {
        let started = Instant::now();
        uncached.load_or_compile(engine, &digest, &bytes)?;
        cold.push(started.elapsed());
    }
    let cache = CompileCache::new(engine, Some(data.join("bench-cache")))?;
    cache.load_or_compile(engine, &digest, &bytes)?;
    let mut cached = Vec::with_capacity(compiles * 20);
    for _ in 0..compiles * 20 {
        let started = Instant::now();
        let (_, outcome) = cache.load_or_compile(engine, &digest, &bytes)?;
        cached.push(started.elapsed());
        anyhow::ensure!(
            outcome == warren_sandbox::runtime::CacheOutcome::Hit,
            "expected a cache hit"
        );
    }
    let cold = Samples::new(cold);
    let cached = Samples::new(cached);
    Ok(vec![
        Measurement::new(
            "wordcount_cached_load_median",
            millis(cached.median()),
            "ms",
        ),
        Measurement::new("wordcount_cold_compile_median", millis(cold.median()), "ms")
            .against(millis(cached.median())),
    ])
}

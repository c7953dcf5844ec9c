//! `warren bench engine`: the durable engine end to end (submit, schedule,
//! commit, run, record) on no-op jobs, against raw wasmtime running the
//! same component in the same process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::raw::RawWasmtime;
use super::{Measurement, millis};
use warren::db::Durability;
use warren::host::HostBuilder;
use warren::scheduler::spec::PipelineSpec;
use warren::scheduler::{Engine, EngineConfig, PipelineSource, Submission};
use warren_sandbox::runtime::{Runtime, RuntimeConfig};
use warren_vocabulary::RunState;

#[derive(Debug, Clone)]
pub struct EngineBenchOptions {
    /// Folder holding `echo.wasm`, the no-op job.
    pub plugins_dir: PathBuf,
    pub fanout_jobs: usize,
    pub chain_jobs: usize,
    /// Attempts running at once.
    pub concurrency: usize,
}

impl Default for EngineBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            fanout_jobs: 10_000,
            chain_jobs: 200,
            concurrency: warren::scheduler::DEFAULT_CONCURRENCY,
        }
    }
}

const NOOP_INPUT: &str = "{}";

pub async fn run(options: &EngineBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let data = super::tempdir()?;
    let echo_path = options.plugins_dir.join("echo.wasm");
    let mut results = Vec::new();

    let raw_runtime = Runtime::new(RuntimeConfig::new(data.join("raw")))?;
    let raw = RawWasmtime::new(&raw_runtime, &echo_path, NOOP_INPUT)
        .with_context(|| format!("loading {}", echo_path.display()))?;
    for _ in 0..200 {
        raw.call().await?;
    }
    let calls = options.fanout_jobs.max(1);
    let started = Instant::now();
    for _ in 0..calls {
        raw.call().await?;
    }
    let raw_per_second = calls as f64 / started.elapsed().as_secs_f64();
    results.push(Measurement::new(
        "raw_wasmtime_echo_calls_per_s",
        raw_per_second,
        "1/s",
    ));
    drop(raw);
    drop(raw_runtime);

    for (durability, label) in [(Durability::Normal, "normal"), (Durability::Full, "full")] {
        let host = HostBuilder::new(data.join(label))
            .durability(durability)
            .open()?;
        host.plugins.insert(host.runtime.load_file(&echo_path)?);
        let engine = host
            .start_engine(EngineConfig {
                max_concurrent_jobs: options.concurrency,
                ..EngineConfig::default()
            })
            .await?;

        let fanout = pipeline(
            (0..options.fanout_jobs).map(|i| (format!("j{i}"), json!({"plugin": "echo"}))),
        )?;
        let elapsed = run_to_end(&engine, fanout).await?;
        let per_second = options.fanout_jobs as f64 / elapsed.as_secs_f64();
        results.push(
            Measurement::new(
                &format!("fanout_{}_noop_jobs_{label}", options.fanout_jobs),
                per_second,
                "1/s",
            )
            .against(raw_per_second),
        );

        let chain = pipeline((0..options.chain_jobs).map(|i| {
            let mut job = json!({"plugin": "echo"});
            if i > 0 {
                job["needs"] = json!([format!("j{}", i - 1)]);
            }
            (format!("j{i}"), job)
        }))?;
        let elapsed = run_to_end(&engine, chain).await?;
        results.push(Measurement::new(
            &format!("chain_{}_noop_jobs_{label}_per_step", options.chain_jobs),
            millis(elapsed) / options.chain_jobs as f64,
            "ms",
        ));
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(results)
}

fn pipeline(
    jobs: impl Iterator<Item = (String, serde_json::Value)>,
) -> anyhow::Result<PipelineSpec> {
    let jobs: serde_json::Map<String, serde_json::Value> = jobs.collect();
    Ok(serde_json::from_value(json!({ "jobs": jobs }))?)
}

/// From submission (validation and the stored run included) to the end of
/// the run.
async fn run_to_end(engine: &Engine, spec: PipelineSpec) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let run_id = engine
        .submit(Submission {
            pipeline: PipelineSource::Inline(spec),
            input: json!({}),
            story_id: None,
            in_dir: None,
            replay: None,
            budget: None,
        })
        .await?;
    let run = engine.wait(&run_id, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        run.state == RunState::Completed,
        "the benchmark run ended {}",
        run.state
    );
    Ok(elapsed)
}

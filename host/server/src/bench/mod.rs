//! `warren bench`: programs that measure, each against a baseline measured
//! in the same run, and print a table or one JSON object per line.

pub mod api;
pub mod approvals;
pub mod engine;
pub mod flows;
pub mod guards;
pub mod hostile;
pub mod outbound;
pub mod plugins;
mod raw;
pub mod runtime;
mod serve_child;
pub mod start;
pub mod ui;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

/// One figure, with the baseline it is compared to.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub bench: String,
    pub value: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// `value / baseline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Measurement {
    pub fn new(bench: &str, value: f64, unit: &'static str) -> Self {
        Self {
            bench: bench.to_owned(),
            value,
            unit,
            baseline: None,
            ratio: None,
        }
    }

    pub fn against(mut self, baseline: f64) -> Self {
        self.baseline = Some(baseline);
        self.ratio = (baseline > 0.0).then(|| self.value / baseline);
        self
    }
}

/// A fresh temporary folder for one benchmark run.
fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("warren-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `root/plugins`, holding a copy of each of `names` (`NAME.wasm`) from
/// the folder `from`: what a benchmark's server loads.
fn plugins_folder(root: &Path, from: &Path, names: &[&str]) -> anyhow::Result<PathBuf> {
    let plugins = root.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for name in names {
        let file = format!("{name}.wasm");
        std::fs::copy(from.join(&file), plugins.join(&file))
            .with_context(|| format!("copying {file} from {}", from.display()))?;
    }
    Ok(plugins)
}

/// Prints measurements as JSON lines or as a table.
pub fn print(measurements: &[Measurement], json: bool) {
    if json {
        for m in measurements {
            if let Ok(line) = serde_json::to_string(m) {
                println!("{line}");
            }
        }
        return;
    }
    println!(
        "{:<44} {:>14} {:<6} {:>14} {:>8}",
        "bench", "value", "unit", "baseline", "ratio"
    );
    for m in measurements {
        let baseline = m.baseline.map_or(String::new(), |b| format!("{b:.2}"));
        let ratio = m.ratio.map_or(String::new(), |r| format!("{r:.3}"));
        println!(
            "{:<44} {:>14.2} {:<6} {:>14} {:>8}",
            m.bench, m.value, m.unit, baseline, ratio
        );
    }
}

/// Per-call timings of one benchmark.
#[derive(Debug, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self(samples)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.0.len() - 1) as f64 * p).round() as usize;
        self.0[index]
    }

    pub fn median(&self) -> Duration {
        self.percentile(0.5)
    }
}

/// Microseconds, for units of `us`.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for units of `ms`.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

//! `warren bench guards`: the first-party `reflex` guard over its labelled
//! corpus (`tests/guards/corpus.jsonl`, built into the binary): precision
//! and recall per category and false positives on clean text, each against
//! its goal; what a check costs per KB, and its fixed cost; and how many
//! runs a second the engine takes with `reflex` checking every input,
//! against none, in the same run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::json;

use super::{Measurement, micros};
use warren::host::HostBuilder;
use warren::scheduler::guards::GuardConfig;
use warren::scheduler::{EngineConfig, PipelineSource, Submission};
use warren_sandbox::plugin::Plugin;
use warren_sandbox::runtime::{GuardSubject, Runtime, RuntimeConfig};
use warren_vocabulary::GuardSubjectKind;

/// The labelled corpus, as shipped with the repository.
const CORPUS: &str = include_str!("../../../../tests/guards/corpus.jsonl");

#[derive(Debug, Clone)]
pub struct GuardsBenchOptions {
    /// Folder holding `reflex.wasm` and `echo.wasm`.
    pub plugins_dir: PathBuf,
    /// Runs submitted with the guard and without.
    pub submissions: u32,
}

impl Default for GuardsBenchOptions {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from(warren::BUILTIN_PLUGINS_DIR),
            submissions: 2_000,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Sample {
    text: String,
    categories: Vec<String>,
    format: String,
}

/// Goals: PII recall ≥ 0.98 with ≤ 1% false positives on clean text;
/// injection recall ≥ 0.9 with ≤ 2%.
const PII_RECALL: f64 = 0.98;
const INJECTION_RECALL: f64 = 0.9;
const PII_CLEAN_FP: f64 = 0.01;
const INJECTION_CLEAN_FP: f64 = 0.02;
const MICROS_PER_KB: f64 = 50.0;

/// Counts of one category over the corpus.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    found: u32,
    missed: u32,
    wrong: u32,
}

/// The categories a check found in `text`.
async fn found(
    runtime: &Runtime,
    reflex: &Plugin,
    sample: &Sample,
) -> anyhow::Result<BTreeSet<String>> {
    let kind = if sample.format == "json" {
        GuardSubjectKind::RunInput
    } else {
        GuardSubjectKind::Document
    };
    let verdict = runtime
        .check_guard(
            reflex,
            GuardSubject {
                kind,
                content: sample.text.clone(),
                origin: String::new(),
                settings: Vec::new(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(verdict
        .findings()
        .iter()
        .map(|f| f.category.clone())
        .collect())
}

pub async fn run(options: &GuardsBenchOptions) -> anyhow::Result<Vec<Measurement>> {
    let data = super::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig::new(data.join("runtime")))?;
    let path = options.plugins_dir.join("reflex.wasm");
    let reflex = runtime
        .load_file(&path)
        .with_context(|| format!("loading {}", path.display()))?;
    let samples: Vec<Sample> = CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the corpus")?;

    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut clean, mut clean_pii, mut clean_injection) = (0u32, 0u32, 0u32);
    for sample in &samples {
        let found = found(&runtime, &reflex, sample).await?;
        let labelled: BTreeSet<String> = sample.categories.iter().cloned().collect();
        for category in labelled.union(&found) {
            let entry = counts.entry(category.clone()).or_default();
            match (labelled.contains(category), found.contains(category)) {
                (true, true) => entry.found += 1,
                (true, false) => entry.missed += 1,
                (false, true) => entry.wrong += 1,
                (false, false) => {}
            }
        }
        if labelled.is_empty() {
            clean += 1;
            clean_pii += u32::from(found.iter().any(|c| c.starts_with("pii.")));
            clean_injection += u32::from(found.iter().any(|c| c.starts_with("injection.")));
        }
    }
    let mut results = Vec::new();
    for (category, c) in &counts {
        let goal = if category.starts_with("pii.") {
            PII_RECALL
        } else {
            INJECTION_RECALL
        };
        let recall = f64::from(c.found) / f64::from((c.found + c.missed).max(1));
        let precision = f64::from(c.found) / f64::from((c.found + c.wrong).max(1));
        results
            .push(Measurement::new(&format!("recall_{category}"), recall, "ratio").against(goal));
        results.push(Measurement::new(
            &format!("precision_{category}"),
            precision,
            "ratio",
        ));
    }
    let rate = |n: u32| f64::from(n) / f64::from(clean.max(1));
    results.push(
        Measurement::new("clean_false_positives_pii", rate(clean_pii), "ratio")
            .against(PII_CLEAN_FP),
    );
    results.push(
        Measurement::new(
            "clean_false_positives_injection",
            rate(clean_injection),
            "ratio",
        )
        .against(INJECTION_CLEAN_FP),
    );

    // Cost: the fixed cost of a check (a fresh instance), and per KB on
    // 64 KB of the corpus's text.
    let tiny = Sample {
        text: "ok".into(),
        categories: Vec::new(),
        format: "text".into(),
    };
    let fixed = fastest(&runtime, &reflex, &tiny, 200).await?;
    results.push(Measurement::new("check_fixed_cost", micros(fixed), "us"));
    // 64 KB of the clean samples (prose, mail, code, data in 13
    // languages), and of every sample (a finding every line or two).
    let clean_text = samples.iter().filter(|s| s.categories.is_empty());
    let every_sample = samples.iter();
    for (name, texts) in [
        ("check_per_kb_clean_text", clean_text.collect::<Vec<_>>()),
        (
            "check_per_kb_whole_corpus",
            every_sample.collect::<Vec<_>>(),
        ),
    ] {
        let mut text = String::new();
        for sample in texts.iter().cycle() {
            if text.len() >= 64 << 10 {
                break;
            }
            text.push_str(&sample.text);
            text.push('\n');
        }
        let kb = text.len() as f64 / 1024.0;
        let big = Sample {
            text,
            categories: Vec::new(),
            format: "text".into(),
        };
        let whole = fastest(&runtime, &reflex, &big, 20).await?;
        results.push(
            Measurement::new(name, micros(whole.saturating_sub(fixed)) / kb, "us")
                .against(MICROS_PER_KB),
        );
    }

    // Runs a second with reflex on every input, against none: three rounds
    // each, taken in turn, the best of each kept (the machine's noise is
    // larger than the difference otherwise).
    let (mut with, mut without) = (0f64, 0f64);
    for round in 0..3 {
        without =
            without.max(submissions(options, &data.join(format!("without-{round}")), false).await?);
        with = with.max(submissions(options, &data.join(format!("with-{round}")), true).await?);
    }
    results.push(Measurement::new(
        "submissions_per_s_without_guard",
        without,
        "1/s",
    ));
    results.push(Measurement::new("submissions_per_s_with_reflex", with, "1/s").against(without));
    let _ = std::fs::remove_dir_all(&data);
    Ok(results)
}

/// The fastest of `times` checks of `sample`.
async fn fastest(
    runtime: &Runtime,
    reflex: &Plugin,
    sample: &Sample,
    times: u32,
) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..times {
        let started = Instant::now();
        found(runtime, reflex, sample).await?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// Runs submitted a second (each validated, checked and committed; its
/// job not waited for), one client after another.
async fn submissions(
    options: &GuardsBenchOptions,
    dir: &std::path::Path,
    guarded: bool,
) -> anyhow::Result<f64> {
    let host = HostBuilder::new(dir).open()?;
    for name in ["echo", "reflex"] {
        host.plugins.insert(
            host.runtime
                .load_file(&options.plugins_dir.join(format!("{name}.wasm")))?,
        );
    }
    let guards = GuardConfig {
        default_guards: if guarded {
            vec!["reflex".into()]
        } else {
            Vec::new()
        },
        ..GuardConfig::default()
    };
    let engine = host
        .start_engine(EngineConfig {
            guards,
            ..EngineConfig::default()
        })
        .await?;
    let spec: warren::scheduler::spec::PipelineSpec =
        serde_json::from_value(json!({"jobs": {"a": {"plugin": "echo"}}}))?;
    let input = json!({"customer": "Ada", "note": "please ship the order to the usual address"});
    let submit = || Submission {
        pipeline: PipelineSource::Inline(spec.clone()),
        input: input.clone(),
        story_id: None,
        in_dir: None,
        replay: None,
        budget: None,
    };
    for _ in 0..50 {
        engine.submit(submit()).await?;
    }
    let count = options.submissions.max(1);
    let started = Instant::now();
    for _ in 0..count {
        engine.submit(submit()).await?;
    }
    let per_second = f64::from(count) / started.elapsed().as_secs_f64();
    engine.drain();
    engine.sync().await?;
    Ok(per_second)
}

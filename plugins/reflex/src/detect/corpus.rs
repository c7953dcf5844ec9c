//! The labelled corpus (tests/guards/corpus.jsonl) against the detectors:
//! recall and precision per category and false positives on clean text,
//! held to the goals reflex is built for. `--nocapture` prints the table.

use std::collections::BTreeSet;

use super::{Category, Enabled, Format, scan};

const CORPUS: &str = include_str!("../../../../tests/guards/corpus.jsonl");

struct Sample {
    id: String,
    text: String,
    format: Format,
    labels: BTreeSet<Category>,
}

fn samples() -> Vec<Sample> {
    CORPUS
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let labels = v["categories"]
                .as_array()
                .expect("categories")
                .iter()
                .map(|c| {
                    Category::from_name(c.as_str().expect("a name")).expect("a known category")
                })
                .collect();
            Sample {
                id: v["id"].as_str().expect("id").to_owned(),
                text: v["text"].as_str().expect("text").to_owned(),
                format: if v["format"] == "json" {
                    Format::Json
                } else {
                    Format::Text
                },
                labels,
            }
        })
        .collect()
}

#[test]
fn the_corpus_meets_the_detection_goals() {
    let samples = samples();
    let found: Vec<BTreeSet<Category>> = samples
        .iter()
        .map(|s| {
            scan(&s.text, s.format, Enabled::ALL)
                .iter()
                .map(|f| f.category)
                .collect()
        })
        .collect();

    for (s, f) in samples.iter().zip(&found) {
        if s.labels != *f {
            let names = |set: &BTreeSet<Category>| set.iter().map(|c| c.name()).collect::<Vec<_>>();
            println!(
                "{:14} labels {:?} found {:?}",
                s.id,
                names(&s.labels),
                names(f)
            );
        }
    }

    println!(
        "\n{:22} {:>5} {:>5} {:>5} {:>8} {:>9}",
        "category", "TP", "FN", "FP", "recall", "precision"
    );
    let mut failures = Vec::new();
    for c in Category::ALL {
        let tp = samples
            .iter()
            .zip(&found)
            .filter(|(s, f)| s.labels.contains(&c) && f.contains(&c))
            .count();
        let fn_ = samples
            .iter()
            .zip(&found)
            .filter(|(s, f)| s.labels.contains(&c) && !f.contains(&c))
            .count();
        let fp = samples
            .iter()
            .zip(&found)
            .filter(|(s, f)| !s.labels.contains(&c) && f.contains(&c))
            .count();
        let recall = tp as f64 / (tp + fn_).max(1) as f64;
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        println!(
            "{:22} {tp:>5} {fn_:>5} {fp:>5} {recall:>8.3} {precision:>9.3}",
            c.name()
        );
        let goal = if c.is_injection() { 0.90 } else { 0.98 };
        if recall < goal {
            failures.push(format!("{} recall {recall:.3} < {goal}", c.name()));
        }
    }

    let clean: Vec<&BTreeSet<Category>> = samples
        .iter()
        .zip(&found)
        .filter(|(s, _)| s.labels.is_empty())
        .map(|(_, f)| f)
        .collect();
    let rate = |injection: bool| {
        let hits = clean
            .iter()
            .filter(|f| f.iter().any(|c| c.is_injection() == injection))
            .count();
        hits as f64 / clean.len().max(1) as f64
    };
    let (pii_rate, injection_rate) = (rate(false), rate(true));
    println!("\nclean samples: {}", clean.len());
    println!("false positive rate on clean text: pii {pii_rate:.3}, injection {injection_rate:.3}");
    if pii_rate > 0.01 {
        failures.push(format!("pii false positives {pii_rate:.3} > 0.01"));
    }
    if injection_rate > 0.02 {
        failures.push(format!(
            "injection false positives {injection_rate:.3} > 0.02"
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_corpus_is_well_formed() {
    let samples = samples();
    assert!(samples.len() >= 320);
    let ids: BTreeSet<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), samples.len(), "ids are unique");
    for s in samples.iter().filter(|s| s.format == Format::Json) {
        serde_json::from_str::<serde_json::Value>(&s.text).expect("json samples are JSON");
    }
}

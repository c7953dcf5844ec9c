//! `analyst`: the first agent of the `brief-to-review` flow. Reads the
//! story's `brief`, finds its key words, and writes an `analysis`. It keeps
//! how many briefs it has read in its own (`agent`) memory, and the key words
//! in the story's memory for the agents after it. Deterministic: no model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply, memory};

/// The request: nothing is required, a `focus` word is optional.
#[derive(Deserialize, Default)]
struct Input {
    #[serde(default)]
    focus: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Analysis {
    words: usize,
    sentences: usize,
    keywords: Vec<String>,
    focus: Option<String>,
    /// How many briefs this agent has analysed in this story.
    briefs_read: u64,
}

struct Analyst;

impl Agent for Analyst {
    type Input = Input;
    type Output = Analysis;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "analyst".into(),
            version: "1.0.0".into(),
            description: "Finds the key words of a brief and writes an analysis".into(),
            requires: vec!["brief".into()],
            produces: vec!["analysis".into()],
        }
    }

    fn invoke(ctx: &AgentContext, input: Input) -> Result<Reply<Analysis>, Error> {
        let Some(brief) = ctx.document("brief") else {
            return Err(Error::needs_input(["brief"]));
        };
        let briefs_read = memory::agent().get_json::<u64>("briefs_read")?.unwrap_or(0) + 1;
        memory::agent().set_json("briefs_read", &briefs_read)?;
        let keywords = keywords(brief, 5);
        memory::story().set_json("keywords", &keywords)?;
        let analysis = Analysis {
            words: brief.split_whitespace().count(),
            sentences: brief
                .split(['.', '!', '?'])
                .filter(|s| !s.trim().is_empty())
                .count(),
            keywords,
            focus: input.focus,
            briefs_read,
        };
        let document = serde_json::to_string_pretty(&analysis)?;
        Ok(Reply::new(analysis).with_document("analysis", document))
    }
}

/// The `count` most frequent words of four letters or more, ties in
/// alphabetical order.
fn keywords(text: &str, count: usize) -> Vec<String> {
    let mut frequency: BTreeMap<String, usize> = BTreeMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.chars().count() >= 4 {
            *frequency.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = frequency.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.into_iter().take(count).map(|(w, _)| w).collect()
}

warren_sdk::export_agent!(Analyst);

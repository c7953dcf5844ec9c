//! `summarizer`: the agent of the `brief-to-summary` flow. Reads the
//! story's `brief`, writes a `summary`: by asking the model `default` when
//! the operator configured one and granted it to this plugin (its manifest
//! says `models = ["default"]`), else by taking the brief's first two
//! sentences. Its output says which.

use serde::Serialize;
use warren_sdk::models::{self, Message};
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, HostError, Reply};

#[derive(Serialize)]
struct Summary {
    /// `model` or `extract`.
    source: String,
    words: usize,
    /// Model tokens used, when a model wrote it.
    tokens: u32,
}

struct Summarizer;

/// The first two sentences of `text`.
fn extract(text: &str) -> String {
    let mut out = String::new();
    let mut sentences = 0;
    for c in text.chars() {
        out.push(c);
        if matches!(c, '.' | '!' | '?') {
            sentences += 1;
            if sentences == 2 {
                break;
            }
        }
    }
    out.trim().to_owned()
}

impl Agent for Summarizer {
    type Input = serde_json::Value;
    type Output = Summary;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "summarizer".into(),
            version: "1.0.0".into(),
            description: "Summarizes the brief, with the configured model when there is one".into(),
            requires: vec!["brief".into()],
            produces: vec!["summary".into()],
        }
    }

    fn invoke(ctx: &AgentContext, _input: serde_json::Value) -> Result<Reply<Summary>, Error> {
        let Some(brief) = ctx.document("brief") else {
            return Err(Error::needs_input(["brief"]));
        };
        let asked = models::complete(
            "default",
            &[
                Message::system("Summarize the text in at most two sentences."),
                Message::user(brief),
            ],
            Some(200),
        );
        let (summary, source, tokens) = match asked {
            Ok(answer) => (answer.text, "model", answer.tokens_in + answer.tokens_out),
            // No model for this plugin: the deterministic summary.
            Err(HostError::AccessDenied(_)) => (extract(brief), "extract", 0),
            Err(other) => return Err(other.into()),
        };
        let output = Summary {
            source: source.into(),
            words: summary.split_whitespace().count(),
            tokens,
        };
        Ok(Reply::new(output).with_document("summary", summary))
    }
}

warren_sdk::export_agent!(Summarizer);

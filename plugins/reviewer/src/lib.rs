//! `reviewer`: the last agent of the `brief-to-review` flow. Reads the
//! `draft`, checks it covers the key words the analyst left in the story's
//! memory, and returns a verdict (its output is the flow's result).

use serde::Serialize;
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply, memory};

#[derive(Serialize)]
struct Verdict {
    verdict: &'static str,
    /// Key words the draft covers, out of those the analyst found.
    covered: usize,
    of: usize,
    missing: Vec<String>,
    /// The writer's output, read through `agent-inputs`.
    draft_number: Option<u64>,
}

struct Reviewer;

impl Agent for Reviewer {
    type Input = serde_json::Value;
    type Output = Verdict;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "reviewer".into(),
            version: "1.0.0".into(),
            description: "Checks that a draft covers the brief's key words".into(),
            requires: vec!["draft".into()],
            produces: vec!["review".into()],
        }
    }

    fn invoke(ctx: &AgentContext, _input: serde_json::Value) -> Result<Reply<Verdict>, Error> {
        let Some(draft) = ctx.document("draft") else {
            return Err(Error::needs_input(["draft"]));
        };
        let keywords: Vec<String> = memory::story().get_json("keywords")?.unwrap_or_default();
        let lowered = draft.to_lowercase();
        let missing: Vec<String> = keywords
            .iter()
            .filter(|k| !lowered.contains(k.as_str()))
            .cloned()
            .collect();
        let draft_number = ctx
            .upstream::<serde_json::Value>("write")?
            .and_then(|w| w["draft_number"].as_u64());
        let verdict = Verdict {
            verdict: if missing.is_empty() {
                "approve"
            } else {
                "revise"
            },
            covered: keywords.len() - missing.len(),
            of: keywords.len(),
            missing,
            draft_number,
        };
        let review = format!(
            "{}: the draft covers {} of {} key words",
            verdict.verdict, verdict.covered, verdict.of
        );
        Ok(Reply::new(verdict).with_document("review", review))
    }
}

warren_sdk::export_agent!(Reviewer);

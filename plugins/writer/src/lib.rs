//! `writer`: the second agent of the `brief-to-review` flow. Turns the
//! `analysis` into a `draft` (Markdown). It numbers its drafts in its own
//! (`agent`) memory, so each draft of a story says which it is.

use serde::{Deserialize, Serialize};
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply, memory};

#[derive(Deserialize)]
struct Analysis {
    words: usize,
    keywords: Vec<String>,
    focus: Option<String>,
}

#[derive(Serialize)]
struct Written {
    draft_number: u64,
    words: usize,
}

struct Writer;

impl Agent for Writer {
    type Input = serde_json::Value;
    type Output = Written;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "writer".into(),
            version: "1.0.0".into(),
            description: "Writes a draft from an analysis".into(),
            requires: vec!["analysis".into()],
            produces: vec!["draft".into()],
        }
    }

    fn invoke(ctx: &AgentContext, _input: serde_json::Value) -> Result<Reply<Written>, Error> {
        let Some(analysis) = ctx.document("analysis") else {
            return Err(Error::needs_input(["analysis"]));
        };
        let analysis: Analysis = serde_json::from_str(analysis)
            .map_err(|e| Error::permanent(format!("the analysis is not readable: {e}")))?;
        let draft_number = memory::agent().get_json::<u64>("drafts")?.unwrap_or(0) + 1;
        memory::agent().set_json("drafts", &draft_number)?;
        let topic = analysis
            .focus
            .clone()
            .or_else(|| analysis.keywords.first().cloned())
            .unwrap_or_else(|| "the brief".into());
        let mut draft = format!("# Draft {draft_number}: {topic}\n\n");
        draft.push_str(&format!(
            "The brief has {} words. It turns on {}.\n\n",
            analysis.words,
            analysis.keywords.join(", ")
        ));
        for keyword in &analysis.keywords {
            draft.push_str(&format!("- On {keyword}: what it means for {topic}.\n"));
        }
        let written = Written {
            draft_number,
            words: draft.split_whitespace().count(),
        };
        Ok(Reply::new(written).with_document("draft", draft))
    }
}

warren_sdk::export_agent!(Writer);

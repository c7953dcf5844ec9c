//! `speckit`: the agent of each phase of a spec-driven workflow (the
//! `speckit` template: specify -> plan -> tasks -> implement, each gated).
//! Deterministic: the same feature, upstream outputs and reviews give the
//! same text. A rework reads the reviews of its job and takes every
//! reviewer's comments in, so what a person asked for shows in the next
//! draft; an approval's data is the reviewer's addition, which the next
//! phase takes in too.
//!
//! Its input names the phase (`{"phase": "plan"}`); without one it is the
//! first phase, `specify`, whose input is the run's (`{"feature": ".."}`).
//! A `specify` without a feature asks for one (`needs-input`), and takes
//! it from the input a person then gives (`{"feature": ".."}`).

use serde::{Deserialize, Serialize};
use warren_sdk::{Agent, AgentContext, AgentInfo, Decision, Error, Reply, Review};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Specify,
    Plan,
    Tasks,
    Implement,
}

impl Phase {
    /// The phase before this one, whose output it builds on.
    fn previous(self) -> Option<Self> {
        match self {
            Self::Specify => None,
            Self::Plan => Some(Self::Specify),
            Self::Tasks => Some(Self::Plan),
            Self::Implement => Some(Self::Tasks),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Specify => "Specification",
            Self::Plan => "Plan",
            Self::Tasks => "Tasks",
            Self::Implement => "Implementation",
        }
    }
}

#[derive(Deserialize)]
struct Input {
    phase: Option<Phase>,
    feature: Option<String>,
}

/// What each phase answers, and the next one reads.
#[derive(Debug, Serialize, Deserialize)]
struct PhaseOutput {
    phase: Phase,
    feature: String,
    /// 1 for the first draft; one more for each rework.
    revision: usize,
    /// The reviewers' comments this draft takes in, oldest first.
    addressed: Vec<String>,
    /// Markdown.
    text: String,
}

#[derive(Deserialize)]
struct GivenFeature {
    feature: String,
}

struct Speckit;

impl Agent for Speckit {
    type Input = serde_json::Value;
    type Output = PhaseOutput;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "speckit".into(),
            version: "1.0.0".into(),
            description: "Writes one phase of a spec-driven workflow (specify, plan, tasks, implement), reworked with reviewers' comments".into(),
            requires: Vec::new(),
            produces: Vec::new(),
        }
    }

    fn invoke(ctx: &AgentContext, input: serde_json::Value) -> Result<Reply<PhaseOutput>, Error> {
        let input: Input = serde_json::from_value(input)
            .map_err(|e| Error::permanent(format!("invalid input: {e}")))?;
        let phase = input.phase.unwrap_or(Phase::Specify);
        let reviews = ctx.reviews();
        let (feature, previous) = match phase.previous() {
            None => {
                let given = reviews
                    .iter()
                    .rev()
                    .filter(|r| r.decision == Decision::Input)
                    .find_map(|r| r.data::<GivenFeature>().ok().flatten());
                let feature = given.map(|g| g.feature).or(input.feature);
                match feature.filter(|f| !f.trim().is_empty()) {
                    Some(feature) => (feature, None),
                    None => return Err(Error::needs_input(["feature"])),
                }
            }
            Some(before) => {
                let job = job_name(before);
                let output: PhaseOutput = ctx.upstream(job)?.ok_or_else(|| {
                    Error::permanent(format!("phase {job:?} must come before this one"))
                })?;
                (output.feature.clone(), Some(output))
            }
        };
        let addressed: Vec<String> = reviews
            .iter()
            .filter(|r| r.decision == Decision::Reject)
            .filter_map(|r| r.comments.clone())
            .collect();
        let additions: Vec<String> = ctx
            .upstream_reviews()
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .filter_map(addition)
            .collect();
        let text = write(
            phase,
            &feature,
            previous.as_ref(),
            &addressed,
            &additions,
            &reviews,
        );
        Ok(Reply::new(PhaseOutput {
            phase,
            feature,
            revision: addressed_count(&reviews) + 1,
            addressed,
            text,
        }))
    }
}

/// The job name of each phase in the `speckit` template.
fn job_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Specify => "specify",
        Phase::Plan => "plan",
        Phase::Tasks => "tasks",
        Phase::Implement => "implement",
    }
}

fn addressed_count(reviews: &[Review]) -> usize {
    reviews
        .iter()
        .filter(|r| r.decision == Decision::Reject)
        .count()
}

/// An approver's data as a line to take in: a string, or JSON as is.
fn addition(review: &Review) -> Option<String> {
    let value: serde_json::Value = review.data().ok().flatten()?;
    Some(match value {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
}

fn write(
    phase: Phase,
    feature: &str,
    previous: Option<&PhaseOutput>,
    addressed: &[String],
    additions: &[String],
    reviews: &[Review],
) -> String {
    let mut text = format!(
        "# {}: {feature}\n\nRevision {}.\n\n",
        phase.title(),
        addressed_count(reviews) + 1
    );
    let items: Vec<String> = match previous {
        None => vec![
            format!("As a user, I can {feature}."),
            "It works the same on every run.".into(),
            "Errors say what went wrong and what to do.".into(),
        ],
        Some(before) => before
            .text
            .lines()
            .filter_map(|line| line.strip_prefix("- "))
            .map(|item| match phase {
                Phase::Plan => format!("Design for: {item}"),
                Phase::Tasks => format!("Task: {item}"),
                _ => format!("Done: {item}"),
            })
            .collect(),
    };
    for item in &items {
        text.push_str(&format!("- {item}\n"));
    }
    for addition in additions {
        text.push_str(&format!("- From the approval before: {addition}\n"));
    }
    for comment in addressed {
        text.push_str(&format!("- As asked in review: {comment}\n"));
    }
    text
}

warren_sdk::export_agent!(Speckit);

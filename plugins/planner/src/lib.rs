//! `planner`: turns a goal into numbered steps, written to `/out/plan.md`.
//! The first job of the example pipeline (`examples/pipelines`).

use serde::{Deserialize, Serialize};
use warren_sdk::{Context, Error, Job, log, memory};

#[derive(Deserialize)]
struct Input {
    goal: String,
}

#[derive(Serialize)]
struct Plan {
    goal: String,
    steps: Vec<String>,
}

struct Planner;

impl Job for Planner {
    type Input = Input;
    type Output = Plan;

    fn run(_ctx: &Context, input: Input) -> Result<Plan, Error> {
        if input.goal.trim().is_empty() {
            return Err(Error::permanent("the goal is empty"));
        }
        let steps = vec![
            format!("write the code for: {}", input.goal),
            "handle empty input".to_owned(),
            "write tests".to_owned(),
        ];
        let mut markdown = format!("# Plan: {}\n\n", input.goal);
        for (i, step) in steps.iter().enumerate() {
            markdown.push_str(&format!("{}. {step}\n", i + 1));
        }
        std::fs::write("/out/plan.md", markdown)?;
        memory::run().set_json("goal", &input.goal)?;
        log::info(&format!("planned {} steps", steps.len()));
        Ok(Plan {
            goal: input.goal,
            steps,
        })
    }
}

warren_sdk::export_job!(Planner);

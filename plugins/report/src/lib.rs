//! `report`: summarises what every upstream job returned and which
//! artifacts it left, in `/out/report.md`.

use serde::Serialize;
use warren_sdk::{Context, Error, Job, artifacts};

#[derive(Serialize)]
struct Summary {
    jobs: Vec<String>,
    artifacts: Vec<String>,
}

struct Report;

impl Job for Report {
    type Input = serde_json::Value;
    type Output = Summary;

    fn run(ctx: &Context, _input: serde_json::Value) -> Result<Summary, Error> {
        let mut markdown = String::from("# Report\n\n## Jobs\n\n");
        let mut jobs = Vec::new();
        for name in ctx.upstream_jobs() {
            let output: Option<serde_json::Value> = ctx.upstream(name)?;
            markdown.push_str(&format!("- {name}: {}\n", output.unwrap_or_default()));
            jobs.push(name.to_owned());
        }
        markdown.push_str("\n## Artifacts\n\n");
        let mut names = Vec::new();
        for artifact in artifacts::list()? {
            markdown.push_str(&format!(
                "- {} ({} bytes, sha256 {})\n",
                artifact.name, artifact.size, artifact.digest
            ));
            names.push(artifact.name);
        }
        std::fs::write("/out/report.md", markdown)?;
        Ok(Summary {
            jobs,
            artifacts: names,
        })
    }
}

warren_sdk::export_job!(Report);

//! Pipelines: the JSON a client submits (or stores as a template), and its
//! validation. Everything is checked before anything is stored, and every
//! error names the job at fault.
//!
//! ```json
//! { "name": "build-and-check",
//!   "max_parallel": 4,
//!   "jobs": {
//!     "plan":   { "plugin": "planner", "input": {"goal": "..."} },
//!     "dev":    { "plugin": "dev", "needs": ["plan"], "retry": {"max_attempts": 3} },
//!     "test":   { "plugin": "tester", "needs": ["dev"], "limits": {"timeout_ms": 5000} },
//!     "report": { "plugin": "report", "needs": [{"job": "test", "when": "always"}] } } }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use warren_vocabulary::names::{is_valid_job_name, is_valid_plugin_name};
use warren_vocabulary::{Condition, Limits, LimitsSpec, RetryPolicy};

/// Most jobs one pipeline may declare.
pub const MAX_JOBS: usize = 20_000;

/// A pipeline as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// Jobs of one run running at once; unlimited (up to the engine's own
    /// limit) when absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_parallel: Option<u32>,
    /// 1 to 20,000 jobs by name (letters, digits, `-`, `_`, `.`, starting
    /// with a letter or digit, at most 64).
    #[serde(deserialize_with = "unique_jobs")]
    pub jobs: BTreeMap<String, JobSpec>,
}

/// One job of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A loaded plugin's name.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plugin: String,
    /// The job's input; the run's input when absent.
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    #[serde(default)]
    pub needs: Vec<Need>,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Its output is (part of) the run's result, as a flow answers it. When
    /// no job says so, the jobs no other job needs make the result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output: bool,
}

impl PipelineSpec {
    /// The jobs whose outputs make the run's result: those marked
    /// `output`, or else those no other job needs.
    pub fn result_jobs(&self) -> Vec<&str> {
        let marked: Vec<&str> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.output)
            .map(|(name, _)| name.as_str())
            .collect();
        if !marked.is_empty() {
            return marked;
        }
        let needed: HashSet<&str> = self
            .jobs
            .values()
            .flat_map(|job| job.needs.iter().map(Need::job))
            .collect();
        self.jobs
            .keys()
            .map(String::as_str)
            .filter(|name| !needed.contains(name))
            .collect()
    }
}

/// A dependency: a job name, or a job and the condition on its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Need {
    Job(String),
    When {
        job: String,
        #[serde(default)]
        when: Condition,
    },
}

impl Need {
    pub fn job(&self) -> &str {
        match self {
            Self::Job(job) | Self::When { job, .. } => job,
        }
    }

    pub fn condition(&self) -> Condition {
        match self {
            Self::Job(_) => Condition::OnSuccess,
            Self::When { when, .. } => *when,
        }
    }
}

/// Why a pipeline was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("a pipeline needs at least one job")]
    NoJobs,
    #[error("a pipeline has at most {MAX_JOBS} jobs, this one has {0}")]
    TooManyJobs(usize),
    #[error("job name {0:?} is declared twice")]
    DuplicateJob(String),
    #[error("job name {0:?} is invalid (letters, digits, `-`, `_`, `.`, at most 64 bytes)")]
    BadJobName(String),
    #[error(
        "job {job:?}: plugin {plugin:?} is not loaded (never added, or retired when its file was removed)"
    )]
    UnknownPlugin { job: String, plugin: String },
    #[error("job {job:?} needs {needs:?}, which is not a job of this pipeline")]
    UnknownDependency { job: String, needs: String },
    #[error("job {job:?} needs {needs:?} twice")]
    DuplicateDependency { job: String, needs: String },
    #[error("jobs form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("job {job:?}: bad limits: {reason}")]
    BadLimits { job: String, reason: String },
    #[error("job {job:?}: bad retry policy: {reason}")]
    BadRetry { job: String, reason: String },
    #[error("max_parallel must be at least 1")]
    BadMaxParallel,
    #[error("template name {0:?} is invalid (letters, digits, `-`, `_`, `.`, at most 64 bytes)")]
    BadTemplateName(String),
}

impl PipelineSpec {
    /// Checks everything that can be checked before a run starts.
    /// `plugin_exists` says whether a plugin name can be run; `ceiling` caps
    /// what a job may ask for.
    pub fn validate(
        &self,
        plugin_exists: &dyn Fn(&str) -> bool,
        ceiling: &Limits,
    ) -> Result<(), SpecError> {
        if self.jobs.is_empty() {
            return Err(SpecError::NoJobs);
        }
        if self.jobs.len() > MAX_JOBS {
            return Err(SpecError::TooManyJobs(self.jobs.len()));
        }
        if self.max_parallel == Some(0) {
            return Err(SpecError::BadMaxParallel);
        }
        for (name, job) in &self.jobs {
            if !is_valid_job_name(name) {
                return Err(SpecError::BadJobName(name.clone()));
            }
            if !is_valid_plugin_name(&job.plugin) || !plugin_exists(&job.plugin) {
                return Err(SpecError::UnknownPlugin {
                    job: name.clone(),
                    plugin: job.plugin.clone(),
                });
            }
            let mut seen = HashSet::new();
            for need in &job.needs {
                if !self.jobs.contains_key(need.job()) {
                    return Err(SpecError::UnknownDependency {
                        job: name.clone(),
                        needs: need.job().to_owned(),
                    });
                }
                if !seen.insert(need.job()) {
                    return Err(SpecError::DuplicateDependency {
                        job: name.clone(),
                        needs: need.job().to_owned(),
                    });
                }
            }
            job.limits
                .check(ceiling)
                .map_err(|reason| SpecError::BadLimits {
                    job: name.clone(),
                    reason,
                })?;
            let retry = &job.retry;
            if retry.max_attempts == 0 || retry.max_attempts > 100 {
                return Err(SpecError::BadRetry {
                    job: name.clone(),
                    reason: "max_attempts must be 1 to 100".into(),
                });
            }
            if retry.initial_backoff_ms > retry.max_backoff_ms || retry.max_backoff_ms > 86_400_000
            {
                return Err(SpecError::BadRetry {
                    job: name.clone(),
                    reason: "backoffs must satisfy initial <= max <= 1 day".into(),
                });
            }
        }
        if let Some(cycle) = self.find_cycle() {
            return Err(SpecError::Cycle(cycle));
        }
        Ok(())
    }

    /// A dependency cycle, as the path of job names that closes it.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Unseen,
            OnPath,
            Done,
        }
        let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let edges: Vec<Vec<usize>> = self
            .jobs
            .values()
            .map(|job| {
                job.needs
                    .iter()
                    .filter_map(|n| index.get(n.job()).copied())
                    .collect()
            })
            .collect();
        let mut marks = vec![Mark::Unseen; names.len()];
        // Iterative depth-first search: pipelines may be deep chains.
        for start in 0..names.len() {
            if marks[start] != Mark::Unseen {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnPath;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&dep) = edges[node].get(*next) {
                    *next += 1;
                    match marks[dep] {
                        Mark::Unseen => {
                            marks[dep] = Mark::OnPath;
                            stack.push((dep, 0));
                        }
                        Mark::OnPath => {
                            let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                            let mut cycle: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| names[*n].to_owned())
                                .collect();
                            cycle.push(names[dep].to_owned());
                            return Some(cycle);
                        }
                        Mark::Done => {}
                    }
                } else {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        None
    }
}

/// Deserializes the jobs map, refusing a name given twice (a plain map
/// would silently keep the last one).
fn unique_jobs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, JobSpec>, D::Error> {
    struct UniqueJobs;

    impl<'de> Visitor<'de> for UniqueJobs {
        type Value = BTreeMap<String, JobSpec>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of job names to jobs")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut jobs = BTreeMap::new();
            while let Some((name, job)) = map.next_entry::<String, JobSpec>()? {
                if jobs.contains_key(&name) {
                    return Err(serde::de::Error::custom(SpecError::DuplicateJob(name)));
                }
                jobs.insert(name, job);
            }
            Ok(jobs)
        }
    }

    deserializer.deserialize_map(UniqueJobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<PipelineSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn validate(json: &str) -> Result<(), SpecError> {
        let known = |p: &str| ["echo", "planner"].contains(&p);
        parse(json)
            .expect("parses")
            .validate(&known, &Limits::default())
    }

    #[test]
    fn the_documented_example_is_valid() {
        let spec = parse(
            r#"{ "name": "x", "max_parallel": 4, "jobs": {
                "plan": { "plugin": "planner", "input": {"goal": "g"} },
                "dev": { "plugin": "echo", "needs": ["plan"], "retry": {"max_attempts": 3} },
                "test": { "plugin": "echo", "needs": ["dev"], "limits": {"timeout_ms": 5000} },
                "report": { "plugin": "echo", "needs": [{"job": "test", "when": "always"}] },
                "alert": { "plugin": "echo", "needs": [{"job": "test", "when": "on_failure"}] } } }"#,
        )
        .expect("parses");
        assert_eq!(spec.jobs["report"].needs[0].condition(), Condition::Always);
        assert_eq!(spec.jobs["dev"].needs[0].condition(), Condition::OnSuccess);
        assert_eq!(spec.jobs["dev"].retry.max_attempts, 3);
        spec.validate(&|_| true, &Limits::default()).expect("valid");
    }

    #[test]
    fn each_bad_pipeline_gets_an_error_naming_the_job() {
        assert_eq!(
            validate(r#"{"jobs": {"a": {"plugin": "nope"}}}"#),
            Err(SpecError::UnknownPlugin {
                job: "a".into(),
                plugin: "nope".into()
            })
        );
        assert_eq!(
            validate(r#"{"jobs": {"a": {"plugin": "echo", "needs": ["b"]}}}"#),
            Err(SpecError::UnknownDependency {
                job: "a".into(),
                needs: "b".into()
            })
        );
        assert_eq!(
            validate(
                r#"{"jobs": {"a": {"plugin": "echo", "needs": ["c"]}, "b": {"plugin": "echo", "needs": ["a"]},
                    "c": {"plugin": "echo", "needs": ["b"]}}}"#
            ),
            Err(SpecError::Cycle(vec![
                "a".into(),
                "c".into(),
                "b".into(),
                "a".into()
            ]))
        );
        assert_eq!(
            validate(r#"{"jobs": {"a": {"plugin": "echo", "needs": ["a"]}}}"#),
            Err(SpecError::Cycle(vec!["a".into(), "a".into()]))
        );
        assert!(matches!(
            validate(r#"{"jobs": {"a": {"plugin": "echo", "limits": {"memory_mb": 100000}}}}"#),
            Err(SpecError::BadLimits { job, .. }) if job == "a"
        ));
        assert!(matches!(
            validate(r#"{"jobs": {"a": {"plugin": "echo", "limits": {"timeout_ms": 0}}}}"#),
            Err(SpecError::BadLimits { job, .. }) if job == "a"
        ));
        assert!(matches!(
            validate(r#"{"jobs": {"a": {"plugin": "echo", "retry": {"max_attempts": 0}}}}"#),
            Err(SpecError::BadRetry { job, .. }) if job == "a"
        ));
        assert_eq!(
            validate(r#"{"jobs": {"../a": {"plugin": "echo"}}}"#),
            Err(SpecError::BadJobName("../a".into()))
        );
        assert_eq!(validate(r#"{"jobs": {}}"#), Err(SpecError::NoJobs));
    }

    #[test]
    fn a_job_declared_twice_is_refused_not_overwritten() {
        let error = parse(r#"{"jobs": {"a": {"plugin": "echo"}, "a": {"plugin": "planner"}}}"#)
            .expect_err("dup");
        assert!(
            error
                .to_string()
                .contains(r#"job name "a" is declared twice"#),
            "{error}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error =
            parse(r#"{"jobs": {"a": {"plugin": "echo", "retries": 3}}}"#).expect_err("typo");
        assert!(
            error.to_string().contains("unknown field `retries`"),
            "{error}"
        );
    }
}

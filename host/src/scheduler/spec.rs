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
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::plugins::is_valid_plugin_name;
use crate::runtime::Limits;

/// Most jobs one pipeline may declare.
pub const MAX_JOBS: usize = 20_000;
/// Longest job name.
pub const MAX_NAME_BYTES: usize = 64;

/// A pipeline as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// Jobs of one run running at once; unlimited (up to the engine's own
    /// limit) when absent.
    #[serde(default)]
    pub max_parallel: Option<u32>,
    #[serde(deserialize_with = "unique_jobs")]
    pub jobs: BTreeMap<String, JobSpec>,
}

/// One job of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
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

/// When a dependency lets its dependent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency completed.
    #[default]
    OnSuccess,
    /// The dependency failed.
    OnFailure,
    /// The dependency ended, whatever the outcome.
    Always,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnSuccess => "on_success",
            Self::OnFailure => "on_failure",
            Self::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "on_success" => Some(Self::OnSuccess),
            "on_failure" => Some(Self::OnFailure),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

/// How often and how fast a job is retried after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled at each further retry.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 for the first retry): doubles
    /// each time up to the maximum, with equal jitter so retries of many
    /// jobs do not land together. `unit` is a random number in [0, 1).
    pub fn backoff(&self, next_attempt: u32, unit: f64) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(32);
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_backoff_ms);
        let half = base as f64 / 2.0;
        Duration::from_millis((half + half * unit.clamp(0.0, 1.0)) as u64)
    }
}

/// Limits a job asks for; unset values take the engine's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub fuel: Option<u64>,
    pub memory_mb: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<usize>,
    pub max_log_bytes: Option<usize>,
    pub max_artifact_bytes: Option<u64>,
    pub max_spawned_jobs: Option<u32>,
}

impl LimitsSpec {
    /// The effective limits over `defaults`.
    pub fn resolve(&self, defaults: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self.memory_mb.map_or(defaults.memory_bytes, |mb| mb << 20),
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            max_output_bytes: self.max_output_bytes.unwrap_or(defaults.max_output_bytes),
            max_log_bytes: self.max_log_bytes.unwrap_or(defaults.max_log_bytes),
            max_artifact_bytes: self
                .max_artifact_bytes
                .unwrap_or(defaults.max_artifact_bytes),
            max_spawned_jobs: self.max_spawned_jobs.unwrap_or(defaults.max_spawned_jobs),
        }
    }

    /// Every field by name, widened to `u64`, in declaration order.
    pub fn fields(&self) -> [(&'static str, Option<u64>); 7] {
        [
            ("fuel", self.fuel),
            ("memory_mb", self.memory_mb),
            ("timeout_ms", self.timeout_ms),
            ("max_output_bytes", self.max_output_bytes.map(|v| v as u64)),
            ("max_log_bytes", self.max_log_bytes.map(|v| v as u64)),
            ("max_artifact_bytes", self.max_artifact_bytes),
            ("max_spawned_jobs", self.max_spawned_jobs.map(u64::from)),
        ]
    }

    /// The inverse of [`LimitsSpec::fields`]; values too large for a field
    /// saturate.
    pub fn from_fields(values: [Option<u64>; 7]) -> Self {
        let [fuel, memory_mb, timeout_ms, output, log, artifact, spawned] = values;
        Self {
            fuel,
            memory_mb,
            timeout_ms,
            max_output_bytes: output.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
            max_log_bytes: log.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
            max_artifact_bytes: artifact,
            max_spawned_jobs: spawned.map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        }
    }

    /// Refuses zeros (but for `max_spawned_jobs`) and values above `ceiling`.
    pub fn check(&self, ceiling: &Limits) -> Result<(), String> {
        let max = LimitsSpec::from(ceiling).fields();
        for ((name, value), (_, max)) in self.fields().into_iter().zip(max) {
            let max = max.unwrap_or(u64::MAX);
            match value {
                Some(0) if name != "max_spawned_jobs" => {
                    return Err(format!("{name} must be above 0"));
                }
                Some(v) if v > max => {
                    return Err(format!("{name} is {v}, above the maximum of {max}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl From<&Limits> for LimitsSpec {
    fn from(limits: &Limits) -> Self {
        Self {
            fuel: Some(limits.fuel),
            memory_mb: Some(limits.memory_bytes >> 20),
            timeout_ms: Some(limits.timeout.as_millis() as u64),
            max_output_bytes: Some(limits.max_output_bytes),
            max_log_bytes: Some(limits.max_log_bytes),
            max_artifact_bytes: Some(limits.max_artifact_bytes),
            max_spawned_jobs: Some(limits.max_spawned_jobs),
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

/// Job names: safe as folder names under `/in` and in URLs.
pub fn is_valid_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        assert_eq!(policy.backoff(2, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(2, 0.999_999), Duration::from_millis(99));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(4, 0.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(9, 0.0), Duration::from_millis(500));
        assert_eq!(policy.backoff(60, 1.0), Duration::from_millis(1_000));
    }
}

//! Pipelines: the JSON a client submits (or stores as a template), and its
//! validation. Everything is checked before anything is stored, and every
//! error names the job at fault. A pipeline may say what its runs' input
//! must be, as a JSON Schema (`input_schema`).
//!
//! ```json
//! { "name": "build-and-check",
//!   "input_schema": { "type": "object", "required": ["goal"] },
//!   "max_parallel": 4,
//!   "jobs": {
//!     "plan":   { "plugin": "planner", "input": {"goal": "..."} },
//!     "dev":    { "plugin": "dev", "needs": ["plan"], "retry": {"max_attempts": 3} },
//!     "test":   { "plugin": "tester", "needs": ["dev"], "limits": {"timeout_ms": 5000} },
//!     "report": { "plugin": "report", "needs": [{"job": "test", "when": "always"}] } } }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use warren_vocabulary::RunBudget;
use warren_vocabulary::names::{is_valid_job_name, is_valid_plugin_name};
use warren_vocabulary::text::{self, MAX_ERROR_BYTES};
use warren_vocabulary::{ApprovalGate, Condition, Limits, LimitsSpec, PluginKind, RetryPolicy};

/// Most jobs one pipeline may declare.
pub const MAX_JOBS: usize = 20_000;

/// Guards a pipeline may list.
pub const MAX_GUARDS: usize = 8;
/// Largest `input_schema`, as JSON: each template version's is compiled
/// and kept in memory.
pub const MAX_INPUT_SCHEMA_BYTES: usize = 64 << 10;
/// Largest compiled form of one `pattern` of an input schema, so that a
/// small schema cannot ask for a large program (`(\w{1000}x){10}` would
/// take megabytes).
const MAX_PATTERN_BYTES: usize = 256 << 10;
/// Most mismatches one refused input is described by.
const MAX_INPUT_ERRORS: usize = 8;

/// A pipeline as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// A JSON Schema (an object or a boolean) that a run's input must
    /// match, checked before the run is stored; at most 64 KiB as JSON.
    /// `$ref`s outside it are not fetched: it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Jobs of one run running at once; unlimited (up to the engine's own
    /// limit) when absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_parallel: Option<u32>,
    /// 1 to 20,000 jobs by name (letters, digits, `-`, `_`, `.`, starting
    /// with a letter or digit, at most 64).
    #[serde(deserialize_with = "unique_jobs")]
    pub jobs: BTreeMap<String, JobSpec>,
    /// What the whole run may use, over all its jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RunBudget>,
    /// Guard plugins that check the run's input before it is stored (after
    /// the server's `default_guards`), and the outputs and documents of the
    /// jobs marked `screen`; at most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 8)]
    pub guards: Vec<String>,
}

/// One job of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A loaded plugin's name; none for an `external` job.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plugin: String,
    /// Runs nothing in Warren: an outside system reports its status
    /// (`PUT /v1/jobs/{id}/status`), and its dependents react as for any
    /// job. It names no plugin, gate or screening.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
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
    /// A person decides on each successful attempt's output before its
    /// dependents see it (see docs/approvals.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalGate>,
    /// The run's guards check its output and the documents it writes before
    /// anything downstream sees them: a denial fails the job
    /// (`guard_denied`), a redaction replaces them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screen: bool,
}

impl JobSpec {
    /// Its gate, if one is required.
    pub fn gate(&self) -> Option<ApprovalGate> {
        self.approval.filter(|gate| gate.required)
    }
}

impl PipelineSpec {
    /// Every plugin it names: its jobs' and its guards.
    pub fn plugins_named(&self) -> Vec<&str> {
        self.jobs
            .values()
            .filter(|j| !j.external)
            .map(|j| j.plugin.as_str())
            .chain(self.guards.iter().map(String::as_str))
            .collect()
    }

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
    #[error("job {job:?}: bad approval gate: {reason}")]
    BadApproval { job: String, reason: String },
    #[error("max_parallel must be at least 1")]
    BadMaxParallel,
    #[error("{0}")]
    BadBudget(String),
    #[error("a pipeline lists at most {MAX_GUARDS} guards, this one {0}")]
    TooManyGuards(usize),
    #[error("guard {guard:?}: {reason}")]
    BadGuard { guard: String, reason: &'static str },
    #[error(
        "job {job:?}: plugin {plugin:?} is a guard: name it in the pipeline's `guards`, it does not run as a job"
    )]
    GuardAsJob { job: String, plugin: String },
    #[error("job {0:?} is to be screened, but the run has no guard (name some in `guards`)")]
    ScreenWithoutGuards(String),
    #[error("job {job:?} is external: it runs nothing in Warren, so it takes no {what}")]
    BadExternal { job: String, what: &'static str },
    #[error("template name {0:?} is invalid (letters, digits, `-`, `_`, `.`, at most 64 bytes)")]
    BadTemplateName(String),
    #[error("input_schema is {0} bytes as JSON; at most {MAX_INPUT_SCHEMA_BYTES}")]
    InputSchemaTooLarge(usize),
    #[error("input_schema is not a JSON Schema Warren can use: {0}")]
    BadInputSchema(String),
}

/// A pipeline's `input_schema`, compiled: it checks a run's input.
pub struct InputSchema(Validator);

impl fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InputSchema")
    }
}

impl InputSchema {
    /// Whether `input` matches; if not, where and why, a few mismatches
    /// at most. Values of the input are not repeated (they may be
    /// large): only where they are, as JSON pointers (`/goal`).
    pub fn check(&self, input: &Value) -> Result<(), String> {
        let mismatches: Vec<String> = self
            .0
            .iter_errors(input)
            .take(MAX_INPUT_ERRORS)
            .map(|error| {
                let mut at = error.instance_path().as_str().to_owned();
                // A missing property is said of the object that lacks it:
                // point at the property.
                if let ValidationErrorKind::Required { property } = error.kind()
                    && let Some(property) = property.as_str()
                {
                    at = format!("{at}/{}", property.replace('~', "~0").replace('/', "~1"));
                }
                format!("{}: {}", place(&at), error.masked())
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(text::bounded(&mismatches.join("; "), MAX_ERROR_BYTES))
        }
    }
}

/// A JSON pointer as a message shows it.
fn place(pointer: &str) -> String {
    if pointer.is_empty() {
        "the input".to_owned()
    } else {
        format!("`{pointer}`")
    }
}

impl PipelineSpec {
    /// Compiles `input_schema`, if the pipeline has one. Nothing is
    /// fetched (a `$ref` outside the schema is an error) and patterns are
    /// regular expressions without look-around or backreferences, which
    /// match in time linear in the input.
    pub fn compile_input_schema(&self) -> Result<Option<InputSchema>, SpecError> {
        let Some(schema) = &self.input_schema else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |json| json.len());
        if bytes > MAX_INPUT_SCHEMA_BYTES {
            return Err(SpecError::InputSchemaTooLarge(bytes));
        }
        jsonschema::options()
            .offline()
            .with_pattern_options(
                PatternOptions::regex()
                    .size_limit(MAX_PATTERN_BYTES)
                    .dfa_size_limit(MAX_PATTERN_BYTES),
            )
            .build(schema)
            .map(|validator| Some(InputSchema(validator)))
            .map_err(|e| SpecError::BadInputSchema(schema_error(&e)))
    }

    /// Checks everything that can be checked before a run starts.
    /// `plugin_exists` says whether a plugin name can be run; `ceiling` caps
    /// what a job may ask for.
    pub fn validate(
        &self,
        plugin_kind: &dyn Fn(&str) -> Option<PluginKind>,
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
        if let Some(budget) = &self.budget {
            budget.check().map_err(SpecError::BadBudget)?;
            if let Some(max) = budget.max_jobs
                && self.jobs.len() as u64 > max
            {
                return Err(SpecError::BadBudget(format!(
                    "the pipeline has {} jobs, more than its budget's max_jobs {max}",
                    self.jobs.len()
                )));
            }
        }
        if self.guards.len() > MAX_GUARDS {
            return Err(SpecError::TooManyGuards(self.guards.len()));
        }
        for (i, guard) in self.guards.iter().enumerate() {
            let kind = is_valid_plugin_name(guard)
                .then(|| plugin_kind(guard))
                .flatten();
            if kind != Some(PluginKind::Guard) || self.guards[..i].contains(guard) {
                return Err(SpecError::BadGuard {
                    guard: guard.clone(),
                    reason: match kind {
                        _ if self.guards[..i].contains(guard) => "listed twice",
                        None => "no such plugin is loaded",
                        Some(_) => "the plugin is not a guard",
                    },
                });
            }
        }
        for (name, job) in &self.jobs {
            if !is_valid_job_name(name) {
                return Err(SpecError::BadJobName(name.clone()));
            }
            if job.external {
                let named = if !job.plugin.is_empty() {
                    Some("a plugin")
                } else if job.approval.is_some() {
                    Some("an approval gate")
                } else if job.screen {
                    Some("screening")
                } else {
                    None
                };
                if let Some(what) = named {
                    return Err(SpecError::BadExternal {
                        job: name.clone(),
                        what,
                    });
                }
            }
            let kind = if job.external {
                Some(PluginKind::Job)
            } else {
                is_valid_plugin_name(&job.plugin)
                    .then(|| plugin_kind(&job.plugin))
                    .flatten()
            };
            match kind {
                None => {
                    return Err(SpecError::UnknownPlugin {
                        job: name.clone(),
                        plugin: job.plugin.clone(),
                    });
                }
                Some(PluginKind::Guard) => {
                    return Err(SpecError::GuardAsJob {
                        job: name.clone(),
                        plugin: job.plugin.clone(),
                    });
                }
                Some(_) => {}
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
            if let Some(gate) = &job.approval {
                gate.check().map_err(|reason| SpecError::BadApproval {
                    job: name.clone(),
                    reason,
                })?;
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

/// Why a schema does not compile, with where in it (a JSON pointer).
fn schema_error(error: &ValidationError<'_>) -> String {
    let at = error.instance_path().as_str();
    let message = if at.is_empty() {
        error.to_string()
    } else {
        format!("at `{at}`: {error}")
    };
    text::bounded(&message, 1 << 10)
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
        let known = |p: &str| ["echo", "planner"].contains(&p).then_some(PluginKind::Job);
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
        spec.validate(&|_| Some(PluginKind::Job), &Limits::default())
            .expect("valid");
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

    /// A pipeline of one job with `schema` as its input schema.
    fn with_schema(schema: serde_json::Value) -> PipelineSpec {
        parse(
            &serde_json::json!({"input_schema": schema, "jobs": {"a": {"plugin": "echo"}}})
                .to_string(),
        )
        .expect("parses")
    }

    #[test]
    fn an_input_schema_checks_inputs_and_names_where_they_are_wrong() {
        use serde_json::json;
        let schema = with_schema(json!({
            "type": "object",
            "required": ["goal", "a/b"],
            "properties": {
                "goal": {"type": "string", "minLength": 1},
                "tries": {"type": "integer", "maximum": 3},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
            }
        }))
        .compile_input_schema()
        .expect("compiles")
        .expect("a schema");
        assert_eq!(
            schema.check(&json!({"goal": "g", "a/b": 1, "tags": ["x"]})),
            Ok(())
        );
        assert_eq!(
            schema.check(&json!({"a/b": 1})),
            Err(r#"`/goal`: "goal" is a required property"#.to_owned())
        );
        assert_eq!(
            schema.check(&json!({"goal": 7, "a/b": 1})),
            Err(r#"`/goal`: value is not of type "string""#.to_owned())
        );
        let error = schema
            .check(&json!({"goal": "", "tries": 9, "tags": ["ok", "NO"]}))
            .expect_err("four mismatches");
        for part in ["`/goal`:", "`/tries`:", "`/tags/1`:", "`/a~1b`:"] {
            assert!(error.contains(part), "{part} in {error}");
        }
        assert_eq!(
            schema.check(&json!([1])),
            Err(r#"the input: value is not of type "object""#.to_owned())
        );
        // The input's values are not echoed back.
        let huge = "x".repeat(1 << 20);
        let error = schema
            .check(&json!({"goal": 1, "a/b": 1, "tags": [huge]}))
            .expect_err("refused");
        assert!(error.len() < 1024, "{} bytes", error.len());
        assert_eq!(
            with_schema(json!(true))
                .compile_input_schema()
                .map(|s| s.is_some()),
            Ok(true)
        );
        assert!(
            parse(r#"{"jobs": {"a": {"plugin": "echo"}}}"#)
                .expect("parses")
                .compile_input_schema()
                .expect("no schema")
                .is_none()
        );
    }

    #[test]
    fn schemas_that_cannot_be_used_are_refused_with_the_reason() {
        use serde_json::json;
        let refused = |schema: serde_json::Value| {
            with_schema(schema)
                .compile_input_schema()
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        let error = refused(json!({"type": "strin"}));
        assert!(
            error.starts_with("input_schema is not a JSON Schema Warren can use: at `/type`"),
            "{error}"
        );
        let error = refused(json!({"properties": {"goal": {"minLength": -1}}}));
        assert!(error.contains("`/properties/goal/minLength`"), "{error}");
        assert!(refused(json!(7)).contains("input_schema is not a JSON Schema"));
        // Nothing is fetched, from the network or the disk.
        for remote in ["https://example.com/schema.json", "file:///etc/passwd"] {
            let error = refused(json!({"$ref": remote}));
            assert!(
                error.contains("input_schema is not a JSON Schema"),
                "{error}"
            );
        }
        // Patterns match in linear time (no look-around, no
        // backreferences) and compile to a bounded program.
        for pattern in ["^(?=a)a$", "^(a)\\1$", "^(\\w{1000}x){10}$"] {
            let error = refused(json!({"properties": {"p": {"pattern": pattern}}}));
            assert!(
                error.contains("`/properties/p/pattern`"),
                "{pattern}: {error}"
            );
        }
        let big = json!({"enum": ["x".repeat(MAX_INPUT_SCHEMA_BYTES)]});
        assert!(matches!(
            with_schema(big).compile_input_schema(),
            Err(SpecError::InputSchemaTooLarge(n)) if n > MAX_INPUT_SCHEMA_BYTES
        ));
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

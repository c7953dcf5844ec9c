//! Guards at the engine's doors: a run's input is checked by the server's
//! `default_guards` and then the pipeline's own before it is stored, and
//! the output and documents of a job marked `screen` before anything
//! downstream sees them. Each guard sees what the one before let through
//! (a redaction included). A guard that cannot answer (not loaded, a
//! trap, a limit, an answer that is not a verdict) stops what it checks:
//! nothing passes by accident.

use std::collections::BTreeMap;
use std::sync::Arc;

use warren_sandbox::artifact_store::sha256_hex;
use warren_sandbox::plugin::Plugin;
use warren_sandbox::runtime::{GuardSubject, Runtime};
use warren_vocabulary::{GuardSubjectKind, GuardVerdict, PluginKind, Screening};

use super::spec::PipelineSpec;
use super::{Engine, EngineError};
use crate::db::DbError;

/// The operator's guards: those of every run, and each one's settings.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Checked on every run's input, before a pipeline's own guards.
    pub default_guards: Vec<String>,
    /// `[guards.NAME]`: handed to guard `NAME` with every check.
    pub settings: BTreeMap<String, Vec<(String, String)>>,
}

impl GuardConfig {
    /// The guards of a run of `spec`: the defaults, then the pipeline's
    /// own, each once.
    pub fn for_pipeline(&self, spec: &PipelineSpec) -> Vec<String> {
        let mut guards = self.default_guards.clone();
        for guard in &spec.guards {
            if !guards.contains(guard) {
                guards.push(guard.clone());
            }
        }
        guards
    }
}

/// A guard to ask: its plugin, when it is loaded, and its settings.
#[derive(Clone)]
pub struct Guard {
    pub name: String,
    pub plugin: Option<Arc<Plugin>>,
    pub settings: Vec<(String, String)>,
}

impl Guard {
    pub fn resolve(
        names: &[String],
        config: &GuardConfig,
        find: impl Fn(&str) -> Option<Arc<Plugin>>,
    ) -> Vec<Self> {
        names
            .iter()
            .map(|name| Self {
                name: name.clone(),
                plugin: find(name).filter(|p| p.kind() == PluginKind::Guard),
                settings: config.settings.get(name).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// Why a text did not pass.
#[derive(Debug)]
pub enum Stopped {
    /// A guard denied it: `screenings` ends with the denial.
    Denied { screenings: Vec<Screening> },
    /// A guard could not answer.
    Unavailable { guard: String, message: String },
}

/// Checks `content` with each of `guards` in turn. Returns what passed
/// (redacted, if a guard redacted it) and every verdict, or why it did
/// not pass.
pub async fn screen(
    runtime: &Runtime,
    guards: &[Guard],
    subject: GuardSubjectKind,
    origin: &str,
    mut content: String,
) -> Result<(String, Vec<Screening>), Stopped> {
    let mut screenings = Vec::with_capacity(guards.len());
    for guard in guards {
        let unavailable = |message: String| Stopped::Unavailable {
            guard: guard.name.clone(),
            message,
        };
        let Some(plugin) = &guard.plugin else {
            return Err(unavailable(format!(
                "guard {:?} is not loaded (or is not a guard)",
                guard.name
            )));
        };
        let sha256 = sha256_hex(content.as_bytes());
        let verdict = runtime
            .check_guard(
                plugin,
                GuardSubject {
                    kind: subject,
                    content: content.clone(),
                    origin: origin.to_owned(),
                    settings: guard.settings.clone(),
                },
            )
            .await
            .map_err(unavailable)?;
        check_findings(&verdict, content.len()).map_err(unavailable)?;
        let recorded = |verdict| Screening {
            guard: guard.name.clone(),
            subject,
            origin: origin.to_owned(),
            sha256: sha256.clone(),
            verdict,
        };
        match verdict {
            GuardVerdict::Allow => screenings.push(recorded(GuardVerdict::Allow)),
            denial @ GuardVerdict::Deny { .. } => {
                screenings.push(recorded(denial));
                return Err(Stopped::Denied { screenings });
            }
            GuardVerdict::Redact {
                content: redacted,
                findings,
            } => {
                // JSON stays JSON: a redaction that breaks it is no answer.
                let is_json = subject != GuardSubjectKind::Document;
                if is_json && serde_json::from_str::<serde::de::IgnoredAny>(&redacted).is_err() {
                    return Err(unavailable(format!(
                        "guard {:?} answered a redaction that is not JSON",
                        guard.name
                    )));
                }
                content = redacted;
                screenings.push(recorded(GuardVerdict::Redact {
                    content: String::new(),
                    findings,
                }));
            }
        }
    }
    Ok((content, screenings))
}

/// Findings must lie within the text checked and be few: they are stored
/// and shown.
fn check_findings(verdict: &GuardVerdict, content_len: usize) -> Result<(), String> {
    const MAX_FINDINGS: usize = 1_000;
    const MAX_CATEGORY_BYTES: usize = 64;
    let findings = verdict.findings();
    if findings.len() > MAX_FINDINGS {
        return Err(format!(
            "answered {} findings, more than {MAX_FINDINGS}",
            findings.len()
        ));
    }
    let category_ok = |c: &str| {
        !c.is_empty()
            && c.len() <= MAX_CATEGORY_BYTES
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    for f in findings {
        let end = u64::from(f.start) + u64::from(f.length);
        if end > content_len as u64 || !category_ok(&f.category) {
            return Err(format!(
                "answered a finding outside the text or with a bad category ({:?} at {}+{})",
                warren_vocabulary::text::bounded(&f.category, MAX_CATEGORY_BYTES),
                f.start,
                f.length
            ));
        }
    }
    if let GuardVerdict::Deny {
        category, reason, ..
    } = verdict
        && (!category_ok(category) || reason.len() > warren_vocabulary::text::MAX_REASON_BYTES)
    {
        return Err("answered a denial with a bad category or an overlong reason".into());
    }
    Ok(())
}

impl Engine {
    /// A submission once its guards let it through: the run's input, and
    /// for a pipeline given inline the inputs its jobs carry (a client's
    /// text too), each redacted if a guard redacted it, with every
    /// verdict. A denial is recorded without the text (its sha256 only)
    /// and refuses the submission.
    pub(super) async fn screen_submission(
        &self,
        spec: &mut Arc<PipelineSpec>,
        spec_text: &mut String,
        inline: bool,
        input: String,
    ) -> Result<(String, Vec<Screening>), EngineError> {
        let names = self.config.guards.for_pipeline(spec);
        if names.is_empty() {
            return Ok((input, Vec::new()));
        }
        let guards = Guard::resolve(&names, &self.config.guards, |n| self.plugins.get(n));
        let origin = spec.name.clone().unwrap_or_default();
        let (input, mut screenings) = self
            .screen_text(&guards, GuardSubjectKind::RunInput, &origin, input)
            .await?;
        if !inline {
            return Ok((input, screenings));
        }
        let mut redacted: Option<PipelineSpec> = None;
        for (name, job) in &spec.jobs {
            let Some(own) = &job.input else { continue };
            let text = own.to_string();
            let (passed, found) = self
                .screen_text(&guards, GuardSubjectKind::RunInput, name, text.clone())
                .await?;
            screenings.extend(found);
            if passed != text {
                let value =
                    serde_json::from_str(&passed).map_err(|e| DbError::Corrupt(e.to_string()))?;
                let copy = redacted.get_or_insert_with(|| (**spec).clone());
                if let Some(job) = copy.jobs.get_mut(name) {
                    job.input = Some(value);
                }
            }
        }
        // The pipeline is stored as it passed.
        if let Some(copy) = redacted {
            *spec_text =
                serde_json::to_string(&copy).map_err(|e| DbError::Corrupt(e.to_string()))?;
            *spec = Arc::new(copy);
        }
        Ok((input, screenings))
    }

    /// The output an outside system reports of an external job of a run
    /// of `pipeline`, once the run's guards let it through: a client's text
    /// like a run's input, checked the same way.
    pub(super) async fn screen_reported_output(
        &self,
        pipeline: &str,
        job_name: &str,
        output: String,
    ) -> Result<(String, Vec<Screening>), EngineError> {
        let spec: PipelineSpec =
            serde_json::from_str(pipeline).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let names = self.config.guards.for_pipeline(&spec);
        if names.is_empty() {
            return Ok((output, Vec::new()));
        }
        let guards = Guard::resolve(&names, &self.config.guards, |n| self.plugins.get(n));
        self.screen_text(&guards, GuardSubjectKind::JobOutput, job_name, output)
            .await
    }

    /// One text through `guards`, on the threads attempts run on.
    async fn screen_text(
        &self,
        guards: &[Guard],
        subject: GuardSubjectKind,
        origin: &str,
        text: String,
    ) -> Result<(String, Vec<Screening>), EngineError> {
        let (runtime, guards, origin) = (self.runtime.clone(), guards.to_vec(), origin.to_owned());
        let screening = async move { screen(&runtime, &guards, subject, &origin, text).await };
        let screened = match &self.config.attempts_on {
            Some(handle) => {
                handle
                    .spawn(screening)
                    .await
                    .map_err(|e| EngineError::GuardUnavailable {
                        guard: String::new(),
                        message: format!("the guards' task failed: {e}"),
                    })?
            }
            None => screening.await,
        };
        let screenings = match screened {
            Ok(passed) => return Ok(passed),
            Err(Stopped::Unavailable { guard, message }) => {
                return Err(EngineError::GuardUnavailable { guard, message });
            }
            Err(Stopped::Denied { screenings }) => screenings,
        };
        let denial = screenings.last().and_then(|s| {
            let (category, reason) = s.denial()?;
            Some(EngineError::RejectedInput {
                guard: s.guard.clone(),
                category: category.to_owned(),
                reason: reason.to_owned(),
                sha256: s.sha256.clone(),
            })
        });
        self.metrics.count_screenings(&screenings);
        let at = warren_vocabulary::now_ms();
        self.db
            .write(move |conn| {
                for screening in &screenings {
                    crate::db::screenings::insert(conn, at, None, None, screening)?;
                }
                Ok(())
            })
            .await?;
        Err(denial.unwrap_or(EngineError::Stopped))
    }
}

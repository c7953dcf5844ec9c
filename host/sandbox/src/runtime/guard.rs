//! Asking a guard plugin for its verdict: one fresh instance per check,
//! under small fixed limits, with nothing granted but its log.

use warren_vocabulary::{GuardFinding, GuardSubjectKind, GuardVerdict, Limits};

use super::Runtime;
use super::attempt::{AttemptRequest, Call};
use crate::bindings::guard_handler as wit;
use crate::plugin::{Grants, Plugin};

/// What a guard is asked to check.
#[derive(Debug, Clone)]
pub struct GuardSubject {
    pub kind: GuardSubjectKind,
    pub content: String,
    /// The pipeline's name, the job's or the document's.
    pub origin: String,
    /// The operator's `[guards.NAME]` settings, lists joined by commas.
    pub settings: Vec<(String, String)>,
}

impl Runtime {
    /// The verdict of guard `plugin` on `subject`, or why there is none (a
    /// trap, a limit, a malformed answer): a guard that cannot answer must
    /// never let the text through.
    pub async fn check_guard(
        &self,
        plugin: &Plugin,
        subject: GuardSubject,
    ) -> Result<GuardVerdict, String> {
        let bare = plugin.clone().with_grants(Grants::default());
        let mut request = AttemptRequest::new(plugin.name(), "null");
        request.limits = guard_limits(subject.content.len());
        let call = Call::Guard(wit::Subject {
            kind: match subject.kind {
                GuardSubjectKind::RunInput => wit::SubjectKind::RunInput,
                GuardSubjectKind::JobOutput => wit::SubjectKind::JobOutput,
                GuardSubjectKind::Document => wit::SubjectKind::Document,
            },
            content: subject.content,
            origin: subject.origin,
            settings: subject.settings,
        });
        let outcome = self.run_call(&bare, request, call).await;
        let output = outcome
            .result
            .map_err(|failure| format!("guard {}: {failure}", plugin.name()))?;
        serde_json::from_str(&output)
            .map_err(|e| format!("guard {} answered something unreadable: {e}", plugin.name()))
    }
}

/// What a check may use: enough to scan a few MiB, little else. A guard
/// that loops is stopped within two seconds.
fn guard_limits(content_bytes: usize) -> Limits {
    Limits {
        fuel: 4_000_000_000,
        memory_bytes: 256 << 20,
        timeout_ms: 2_000,
        // The verdict carries the redacted text: room for it, escaped.
        max_output_bytes: content_bytes.saturating_mul(2) + (64 << 10),
        max_log_bytes: 16 << 10,
        max_artifact_bytes: 0,
        max_spawned_jobs: 0,
        max_disk_bytes: 0,
        max_disk_files: 0,
        max_tokens: 0,
    }
}

/// The guest's verdict in the host's words.
pub(super) fn verdict_of(verdict: wit::Verdict) -> GuardVerdict {
    let findings = |found: Vec<wit::Finding>| {
        found
            .into_iter()
            .map(|f| GuardFinding {
                category: f.category,
                start: f.start,
                length: f.length,
            })
            .collect()
    };
    match verdict {
        wit::Verdict::Allow => GuardVerdict::Allow,
        wit::Verdict::Deny(d) => GuardVerdict::Deny {
            category: d.category,
            reason: d.reason,
            findings: findings(d.findings),
        },
        wit::Verdict::Redact(r) => GuardVerdict::Redact {
            content: r.content,
            findings: findings(r.findings),
        },
    }
}

//! `reflex`: the first-party guard. It denies or redacts personal data
//! (email addresses, phone numbers, payment cards, IBANs, US SSNs) and
//! denies prompt injections (orders to ignore earlier instructions, role
//! and system-prompt hijacking, fake chat delimiters and hidden characters,
//! encoded payloads).
//!
//! Its settings (`[guards.reflex]` in `warren.toml`) are `off`, categories
//! not checked, and `redact`, categories redacted rather than denied, e.g.
//! `redact = ["pii"]`. The rules live in `detect`, the verdict in `policy`;
//! this file only adapts them to the SDK.

mod detect;
mod policy;

use policy::{Kind, Outcome, Settings};
use warren_sdk::guard::{Denial, Finding, Guard, Redaction, Subject, SubjectKind, Verdict};

struct Reflex;

impl Guard for Reflex {
    fn check(subject: &Subject) -> Verdict {
        let settings = Settings::parse(
            subject
                .settings
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        let kind = match subject.kind {
            SubjectKind::RunInput => Kind::RunInput,
            SubjectKind::JobOutput => Kind::JobOutput,
            SubjectKind::Document => Kind::Document,
        };
        match policy::check(kind, &subject.content, &settings) {
            Outcome::Allow => Verdict::Allow,
            Outcome::Deny {
                category,
                reason,
                findings,
            } => Verdict::Deny(Denial {
                category: category.name().into(),
                reason,
                findings: to_wit(&findings),
            }),
            Outcome::Redact { content, findings } => Verdict::Redact(Redaction {
                content,
                findings: to_wit(&findings),
            }),
        }
    }
}

fn to_wit(findings: &[detect::Finding]) -> Vec<Finding> {
    // Content reaches a guard as a WIT string, so it is far below 4 GiB.
    let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    findings
        .iter()
        .map(|f| Finding {
            category: f.category.name().into(),
            start: offset(f.start),
            length: offset(f.end - f.start),
        })
        .collect()
}

warren_sdk::export_guard!(Reflex);

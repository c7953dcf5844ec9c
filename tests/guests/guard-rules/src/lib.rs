//! A test guard whose verdict the text asks for, to check what the host
//! does with each answer: `FORBIDDEN` is denied (`test.keyword`),
//! `secret-word` redacted to `[gone]`, `TRAP` traps, `LOOP` loops,
//! `GARBAGE` answers a finding outside the text, `BREAKJSON` redacts into
//! something that is not JSON. The setting `deny` (comma-separated words)
//! denies those words too. In a job's output or a document (not in a
//! run's input), `BLOCKED-OUT` is denied (`test.output`) and
//! `hidden-word` redacted to `[gone]` too.

use warren_sdk::guard::{Denial, Finding, Guard, Redaction, Subject, SubjectKind, Verdict};

struct Rules;

fn finding(category: &str, start: usize, length: usize) -> Finding {
    Finding {
        category: category.into(),
        start: start as u32,
        length: length as u32,
    }
}

impl Guard for Rules {
    fn check(subject: &Subject) -> Verdict {
        let text = &subject.content;
        if text.contains("TRAP") {
            panic!("asked to trap");
        }
        if text.contains("LOOP") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if text.contains("GARBAGE") {
            // A finding past the end of the text.
            return Verdict::Deny(Denial {
                category: "test.garbage".into(),
                reason: "nonsense".into(),
                findings: vec![finding("test.garbage", text.len() + 10, 5)],
            });
        }
        if text.contains("BREAKJSON") {
            return Verdict::Redact(Redaction {
                content: "{not json".into(),
                findings: Vec::new(),
            });
        }
        let mut denied: Vec<String> = vec!["FORBIDDEN".into()];
        for (key, value) in &subject.settings {
            if key == "deny" {
                denied.extend(value.split(',').map(str::to_owned));
            }
        }
        for word in &denied {
            if let Some(at) = text.find(word.as_str()) {
                return Verdict::Deny(Denial {
                    category: "test.keyword".into(),
                    reason: "a forbidden word".into(),
                    findings: vec![finding("test.keyword", at, word.len())],
                });
            }
        }
        let produced = !matches!(subject.kind, SubjectKind::RunInput);
        if produced && let Some(at) = text.find("BLOCKED-OUT") {
            return Verdict::Deny(Denial {
                category: "test.output".into(),
                reason: "a word outputs may not hold".into(),
                findings: vec![finding("test.output", at, "BLOCKED-OUT".len())],
            });
        }
        let mut redacted: Vec<&str> = vec!["secret-word"];
        if produced {
            redacted.push("hidden-word");
        }
        let mut found: Vec<Finding> = Vec::new();
        let mut content = text.clone();
        for word in redacted {
            found.extend(
                text.match_indices(word)
                    .map(|(at, word)| finding("test.secret", at, word.len())),
            );
            content = content.replace(word, "[gone]");
        }
        if found.is_empty() {
            Verdict::Allow
        } else {
            Verdict::Redact(Redaction {
                content,
                findings: found,
            })
        }
    }
}

warren_sdk::export_guard!(Rules);

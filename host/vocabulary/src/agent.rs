//! What an agent says about itself when the host calls its `describe()`.

use serde::{Deserialize, Serialize};

use crate::names::is_valid_document_name;
use crate::text;

/// Most documents an agent may require, and most it may produce.
pub const MAX_AGENT_DOCUMENTS: usize = 32;
/// Longest agent name or version, in characters.
pub const MAX_AGENT_LABEL_CHARS: usize = 64;
/// Longest description, in bytes.
pub const MAX_AGENT_DESCRIPTION_BYTES: usize = 4 << 10;

/// An agent's description: stored with its plugin version, shown by the
/// API, and read by the scheduler before each of its jobs starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Documents the agent needs before it can run.
    pub requires: Vec<String>,
    /// Documents the agent writes.
    pub produces: Vec<String>,
}

impl AgentInfo {
    /// Checks what a guest answered: labels within bounds and without
    /// hidden characters, document names valid and not repeated.
    pub fn check(&self) -> Result<(), String> {
        for (what, label) in [("name", &self.name), ("version", &self.version)] {
            if label.trim().is_empty() {
                return Err(format!("its {what} is empty"));
            }
            if label.chars().count() > MAX_AGENT_LABEL_CHARS {
                return Err(format!(
                    "its {what} is longer than {MAX_AGENT_LABEL_CHARS} characters"
                ));
            }
            if text::has_hidden_characters(label) {
                return Err(format!(
                    "its {what} {} has control or bidirectional characters",
                    text::shown(label)
                ));
            }
        }
        if self.description.len() > MAX_AGENT_DESCRIPTION_BYTES {
            return Err(format!(
                "its description is longer than {MAX_AGENT_DESCRIPTION_BYTES} bytes"
            ));
        }
        for (what, names) in [("requires", &self.requires), ("produces", &self.produces)] {
            if names.len() > MAX_AGENT_DOCUMENTS {
                return Err(format!(
                    "it {what} {} documents, more than {MAX_AGENT_DOCUMENTS}",
                    names.len()
                ));
            }
            for (index, name) in names.iter().enumerate() {
                if !is_valid_document_name(name) {
                    return Err(format!(
                        "it {what} {}, which is not a document name",
                        text::shown(name)
                    ));
                }
                if names[..index].contains(name) {
                    return Err(format!("it {what} {} twice", text::shown(name)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "writer".into(),
            version: "1.0.0".into(),
            description: "writes drafts".into(),
            requires: vec!["analysis".into()],
            produces: vec!["draft".into()],
        }
    }

    #[test]
    fn a_sensible_description_passes() {
        assert_eq!(info().check(), Ok(()));
    }

    /// Spoils a good description.
    type Spoil = fn(&mut AgentInfo);

    #[test]
    fn nonsense_is_named() {
        let cases: [(Spoil, &str); 6] = [
            (|i| i.name = " ".into(), "its name is empty"),
            (|i| i.version = "1\u{202e}0".into(), "bidirectional"),
            (
                |i| i.requires.push("analysis".into()),
                "requires \"analysis\" twice",
            ),
            (|i| i.produces = vec!["../x".into()], "not a document name"),
            (
                |i| i.description = "d".repeat(5000),
                "description is longer",
            ),
            (
                |i| i.requires = (0..33).map(|n| format!("d{n}")).collect(),
                "more than 32",
            ),
        ];
        for (spoil, expected) in cases {
            let mut spoiled = info();
            spoil(&mut spoiled);
            let error = spoiled.check().expect_err(expected);
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }
}

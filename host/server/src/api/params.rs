//! Path parameters as the OpenAPI description shows them: each with the
//! pattern its check in [`super::extract`] enforces (the names are
//! `warren_vocabulary::names`'), so a client knows what is well-formed
//! before asking. Anything else gets `400 invalid_id`.

use utoipa::IntoParams;

/// `{id}` of a run.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunId {
    /// A run id: a lowercase hyphenated UUID.
    #[param(
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        min_length = 36,
        max_length = 36
    )]
    pub id: String,
}

/// `{flow}`: a template run as a flow.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FlowName {
    /// A template name.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", max_length = 64)]
    pub flow: String,
}

/// `{id}` of a job.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// A job id: a lowercase hyphenated UUID.
    #[param(
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        min_length = 36,
        max_length = 36
    )]
    pub id: String,
}

/// `{id}` of a job and `{number}` of one of its attempts.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AttemptNumber {
    /// A job id: a lowercase hyphenated UUID.
    #[param(
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        min_length = 36,
        max_length = 36
    )]
    pub id: String,
    /// The attempt's number, from 1.
    #[param(minimum = 1, maximum = 4294967295_u64)]
    pub number: u32,
}

/// `{sha256}` of an artifact.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ArtifactDigest {
    /// 64 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{64}$", min_length = 64, max_length = 64)]
    pub sha256: String,
}

/// `{name}` of a template.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TemplateName {
    /// Letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// at most 64.
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
}

/// `{name}` and `{version}` of a template.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TemplateVersion {
    /// Letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// at most 64.
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
    /// A version number: a whole number from 1 to 2^63 - 1.
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub version: i64,
}

/// `{name}` of a plugin.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginName {
    /// Letters, digits, `-` and `_`, starting with a letter or digit; at
    /// most 64 (a name with `.` is well-formed and names no plugin).
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
}

/// `{name}` of a plugin and `{digest}` of one of its versions.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginVersion {
    /// Letters, digits, `-` and `_`, starting with a letter or digit; at
    /// most 64 (a name with `.` is well-formed and names no plugin).
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
    /// sha256 of the version's file: 64 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{64}$", min_length = 64, max_length = 64)]
    pub digest: String,
}

/// `{story}` of a story (its memory, its documents).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StoryId {
    /// 1 to 128 letters, digits, `-`, `_`, `.` and `:`.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$", min_length = 1, max_length = 128)]
    pub story: String,
}

/// What a document name may hold, as a pattern: any character but `/`,
/// `\`, control characters (`Cc`), bidirectional formatting characters and
/// whitespace other than a plain space; dots only one at a time, and not
/// the whole name. (Names are at most 128 bytes, which a pattern cannot
/// count: `maxLength` counts characters.) The OpenAPI description puts it
/// on every parameter that takes a document name (`super::openapi`).
pub const DOCUMENT_NAME_PATTERN: &str = r"^\.?[^./\\\u0000-\u001f\u007f-\u00a0\u061c\u1680\u2000-\u200a\u200e\u200f\u2028-\u202f\u205f\u2066-\u2069\u3000]+(\.[^./\\\u0000-\u001f\u007f-\u00a0\u061c\u1680\u2000-\u200a\u200e\u200f\u2028-\u202f\u205f\u2066-\u2069\u3000]+)*\.?$";

/// `{story}` of a story and `{name}` of one of its documents.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DocumentName {
    /// 1 to 128 letters, digits, `-`, `_`, `.` and `:`.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$", min_length = 1, max_length = 128)]
    pub story: String,
    /// 1 to 128 bytes of printable text: no `/`, `\`, control,
    /// bidirectional formatting or whitespace characters but a plain
    /// space; not `.`, and no `..`.
    #[param(min_length = 1, max_length = 128)]
    pub name: String,
}

/// `Last-Event-ID`, as the OpenAPI description shows it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct LastEventId {
    /// Resume after this event id (what browsers send on reconnecting);
    /// `?after=` wins when both are given.
    #[param(rename = "Last-Event-ID", pattern = "^[0-9]{1,19}$")]
    pub last_event_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_vocabulary::names::is_valid_document_name;

    /// The published pattern takes what the server takes (the byte count
    /// aside, which `maxLength` approaches in characters).
    #[test]
    fn the_document_name_pattern_says_what_the_server_takes() {
        let schema = serde_json::json!({"type": "string", "pattern": DOCUMENT_NAME_PATTERN});
        let pattern = jsonschema::validator_for(&schema).expect("the pattern compiles");
        for name in [
            "plan.md",
            ".config",
            "notes.",
            ".a.b.",
            "Design notes, v2 (draft)",
            "résumé 日本語 🦀",
            "100% {x} [y] ?#&=+;:@!$'*",
            ".",
            "..",
            "...",
            "a..b",
            "../x",
            "a/b",
            "a\\b",
            "a\0b",
            "a\tb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{a0}b",
            "a\u{61c}b",
            "a\u{1680}b",
            "a\u{2000}b",
            "a\u{200b}b",
            "a\u{200e}b",
            "a\u{2028}b",
            "cod\u{202e}txt",
            "a\u{202f}b",
            "a\u{205f}b",
            "a\u{2066}b",
            "a\u{3000}b",
            "",
        ] {
            let value = serde_json::Value::from(name);
            assert_eq!(
                pattern.is_valid(&value),
                is_valid_document_name(name),
                "{name:?}"
            );
        }
    }
}

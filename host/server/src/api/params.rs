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

/// `{story}` of a story's memory.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StoryId {
    /// 1 to 128 letters, digits, `-`, `_`, `.` and `:`.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$", min_length = 1, max_length = 128)]
    pub story: String,
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

//! Warren's wording for what serde refused in a body or a query string.
//! Clients never see a framework's rejection text: serde's messages name
//! Rust types (`i64`, `struct CreateRun`) and axum wraps them in its own
//! sentences. The messages serde builds have a few fixed shapes (see
//! `serde::de::Error`); each is said again here in terms of JSON. Anything
//! else is a message Warren's own types wrote, and stays as it is.

/// Why a value was refused, without Rust type names.
pub fn reason(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, got {}", expectation(expected), got_value(got));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, got {}", expectation(expected), got_value(got));
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((length, expected)) = rest.split_once(", expected ")
    {
        // serde reads a struct from an array too (by position): an array
        // of the wrong length sent for an object ends up here.
        return match expectation(expected).as_str() {
            "an object" => "expected an object, got an array".into(),
            other => format!("expected {other}, got {length} items"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match rest.split_once(", ") {
            Some((field, "there are no fields")) => format!("unknown field {field}: none is taken"),
            Some((field, expected)) => {
                format!("unknown field {field}; expected {}", names(expected))
            }
            None => format!("unknown field {rest}"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return match rest.split_once(", ") {
            Some((value, "there are no variants")) => format!("unknown value {value}"),
            Some((value, expected)) => {
                format!("unknown value {value}; expected {}", names(expected))
            }
            None => format!("unknown value {rest}"),
        };
    }
    if let Some(field) = message.strip_prefix("duplicate field ") {
        return format!("{field} is given twice");
    }
    if message.starts_with("data did not match any variant of untagged enum") {
        return "not one of the accepted shapes".into();
    }
    // Numbers in query strings are parsed with `str::parse`.
    if matches!(
        message,
        "invalid digit found in string"
            | "cannot parse integer from empty string"
            | "number too large to fit in target type"
            | "number too small to fit in target type"
            | "invalid float literal"
    ) {
        return "not a whole number in the accepted range".into();
    }
    message.to_owned()
}

/// serde's `expected one of `a`, `b``, `` `a` or `b` ``, `` `a` ``: kept,
/// they list JSON names.
fn names(expected: &str) -> &str {
    expected.strip_prefix("expected ").unwrap_or(expected)
}

/// What a visitor expected, in JSON's words.
fn expectation(expected: &str) -> String {
    let range = |low: &str, high: &str| format!("a whole number from {low} to {high}");
    match expected {
        "i8" => range("-128", "127"),
        "i16" => range("-32768", "32767"),
        "i32" => range("-2147483648", "2147483647"),
        "i64" | "isize" => range("-9223372036854775808", "9223372036854775807"),
        "u8" => range("0", "255"),
        "u16" => range("0", "65535"),
        "u32" => range("0", "4294967295"),
        "u64" | "usize" => range("0", "18446744073709551615"),
        "i128" | "u128" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "a string" | "a borrowed string" | "a character" | "a char" => {
            expected.replace("a borrowed string", "a string")
        }
        "a map" | "map" => "an object".into(),
        "a sequence" | "sequence" => "an array".into(),
        "unit" => "null".into(),
        "option" => "a value or null".into(),
        "variant identifier" | "field identifier" => "a name".into(),
        other if other.starts_with("struct ") || other.starts_with("struct variant ") => {
            "an object".into()
        }
        other if other.starts_with("enum ") => "one of the accepted values".into(),
        other if other.starts_with("tuple") => "an array".into(),
        other => other.to_owned(),
    }
}

/// What was sent instead, in JSON's words.
fn got_value(got: &str) -> String {
    if let Some(number) = got
        .strip_prefix("integer `")
        .or_else(|| got.strip_prefix("floating point `"))
        .and_then(|n| n.strip_suffix('`'))
    {
        return format!("the number {number}");
    }
    if let Some(boolean) = got
        .strip_prefix("boolean `")
        .and_then(|b| b.strip_suffix('`'))
    {
        return boolean.to_owned();
    }
    if let Some(text) = got.strip_prefix("string ") {
        return format!("the string {text}");
    }
    match got {
        "unit value" => "null".into(),
        "sequence" => "an array".into(),
        "map" => "an object".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde says about `T` given `json`, reworded.
    fn refused<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        let error = serde_json::from_str::<T>(json).expect_err("refused");
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = error.to_string();
        reason(message.strip_suffix(&suffix).unwrap_or(&message))
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        version: Option<i64>,
        limit: Option<u32>,
        name: Option<String>,
        state: Option<warren_vocabulary::RunState>,
    }

    #[test]
    fn serde_messages_are_said_without_rust_types() {
        let cases = [
            (
                r#"{"version": 99999999999999999999}"#,
                "expected a whole number from -9223372036854775808 to 9223372036854775807, got the number 1e+20",
            ),
            (
                r#"{"version": 18446744073709551615}"#,
                "expected a whole number from -9223372036854775808 to 9223372036854775807, got the number 18446744073709551615",
            ),
            (
                r#"{"limit": -1}"#,
                "expected a whole number from 0 to 4294967295, got the number -1",
            ),
            (r#"{"name": 42}"#, "expected a string, got the number 42"),
            (r#"{"name": [1]}"#, "expected a string, got an array"),
            (r#"[]"#, "expected an object, got an array"),
            (
                r#"{"surprise": 1}"#,
                "unknown field `surprise`; expected one of `version`, `limit`, `name`, `state`",
            ),
            (
                r#"{"state": "bogus"}"#,
                "unknown value `bogus`; expected one of `pending`, `running`, `needs_input`, `waiting_approval`, `completed`, `failed`, `cancelled`",
            ),
            (r#"{"name": "a", "name": "b"}"#, "`name` is given twice"),
        ];
        for (json, expected) in cases {
            assert_eq!(refused::<Body>(json), expected, "{json}");
        }
    }

    #[test]
    fn query_number_errors_and_warren_messages() {
        assert_eq!(
            reason("invalid digit found in string"),
            "not a whole number in the accepted range"
        );
        assert_eq!(
            reason("job \"a\" is declared twice"),
            "job \"a\" is declared twice"
        );
    }
}

//! One check per kind of name. Every name a client or a guest gives is
//! checked here before it is stored, used in a path or put in a URL.

/// Longest plugin, job or template name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest story id, in bytes.
pub const MAX_STORY_ID_BYTES: usize = 128;
/// Longest document name, in bytes.
pub const MAX_DOCUMENT_NAME_BYTES: usize = 128;

/// Plugin names: what `jobs.spawn` and pipelines refer to, and a plugin
/// file's stem. Letters, digits, `-` and `_`, starting with a letter or
/// digit.
pub fn is_valid_plugin_name(name: &str) -> bool {
    starts_alphanumeric(name, MAX_NAME_BYTES)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Job names: safe as folder names under `/in` and in URLs. Letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn is_valid_job_name(name: &str) -> bool {
    starts_alphanumeric(name, MAX_NAME_BYTES)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Template names follow the job-name rule.
pub fn is_valid_template_name(name: &str) -> bool {
    is_valid_job_name(name)
}

/// Story ids: 1 to 128 letters, digits, `-`, `_`, `.` and `:`.
pub fn is_valid_story_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_STORY_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Why `name` cannot name a story's document, if it cannot. Document names
/// are chosen by people and agents, so they may hold any printable text
/// (spaces, accents, other scripts) within 128 bytes, but nothing that
/// reads as a path (`/`, `\`, `.`, `..`, any `..`) or hides what the name
/// says (control, bidirectional formatting or whitespace characters other
/// than a plain space).
pub fn check_document_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.len() > MAX_DOCUMENT_NAME_BYTES {
        Err("it is longer than 128 bytes")
    } else if name == "." || name.contains("..") {
        Err("it is `.` or holds `..`")
    } else if name.contains(['/', '\\']) {
        Err("it holds `/` or `\\`")
    } else if crate::text::has_hidden_characters(name) {
        Err("it holds a control or bidirectional formatting character")
    } else if name.chars().any(|c| c.is_whitespace() && c != ' ') {
        Err("it holds whitespace other than a plain space")
    } else {
        Ok(())
    }
}

/// Whether `name` can name a story's document (see [`check_document_name`]).
pub fn is_valid_document_name(name: &str) -> bool {
    check_document_name(name).is_ok()
}

/// Run, job and attempt ids: lowercase hyphenated UUIDs.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 36
        && uuid::Uuid::try_parse(id).is_ok()
        && !id.bytes().any(|b| b.is_ascii_uppercase())
}

/// Artifact digests: 64 lowercase hex digits (sha256).
pub fn is_valid_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn starts_alphanumeric(name: &str, max: usize) -> bool {
    !name.is_empty() && name.len() <= max && name.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_cannot_carry_paths() {
        for bad in ["", "../x", "a/b", "-x", "a b", "x.wasm", &"a".repeat(65)] {
            assert!(!is_valid_plugin_name(bad), "{bad:?}");
        }
        for good in ["echo", "word_count", "a-1", "X"] {
            assert!(is_valid_plugin_name(good), "{good:?}");
        }
    }

    #[test]
    fn job_names_allow_dots_but_not_leading_ones_or_slashes() {
        assert!(
            !is_valid_job_name("dev~5"),
            "spawned jobs are named with `~`"
        );
        assert!(is_valid_job_name("build.v2"));
        assert!(!is_valid_job_name(".hidden"));
        assert!(!is_valid_job_name("a/b"));
        assert!(!is_valid_job_name(".."));
    }

    #[test]
    fn story_ids_ids_and_digests() {
        assert!(is_valid_story_id("story:42"));
        assert!(!is_valid_story_id("a/b"));
        assert!(!is_valid_story_id(&"s".repeat(129)));
        assert!(is_valid_id("01a201c4-5e19-723a-ac05-43416910e8d1"));
        assert!(!is_valid_id("01A201C4-5E19-723A-AC05-43416910E8D1"));
        assert!(!is_valid_id("../x"));
        assert!(is_valid_digest(&"a".repeat(64)));
        assert!(!is_valid_digest(&"A".repeat(64)));
    }

    #[test]
    fn document_names_are_printable_text_that_reads_as_no_path() {
        for good in [
            "plan.md",
            "a",
            "Design notes v2",
            ".config",
            "notes.",
            "résumé",
            "日本語の文書",
            "crab 🦀",
            "a.b.c",
            "100%",
            &"x".repeat(128),
            &"é".repeat(64),
        ] {
            assert_eq!(check_document_name(good), Ok(()), "{good:?}");
        }
        let (empty, long, dots, slash, hidden, space) = (
            "it is empty",
            "it is longer than 128 bytes",
            "it is `.` or holds `..`",
            "it holds `/` or `\\`",
            "it holds a control or bidirectional formatting character",
            "it holds whitespace other than a plain space",
        );
        for (bad, reason) in [
            ("", empty),
            (".", dots),
            ("..", dots),
            ("../x", dots),
            ("a..b", dots),
            ("x..", dots),
            ("a/b", slash),
            ("/a", slash),
            ("a\\b", slash),
            ("a\0b", hidden),
            ("a\nb", hidden),
            ("a\tb", hidden),
            ("a\u{7f}", hidden),
            ("a\u{85}b", hidden),
            ("cod\u{202e}txt.exe", hidden),
            ("a\u{2066}b", hidden),
            ("a\u{200f}", hidden),
            ("a\u{a0}b", space),
            ("a\u{2028}b", space),
            ("a\u{3000}b", space),
            ("x".repeat(129).as_str(), long),
            ("é".repeat(65).as_str(), long),
        ] {
            assert_eq!(check_document_name(bad), Err(reason), "{bad:?}");
            assert!(!is_valid_document_name(bad), "{bad:?}");
        }
    }
}

//! Bounds on text a guest or a client hands over: every string Warren
//! stores, logs or echoes back has a size it cannot exceed, and no name may
//! hide what it says behind control or bidirectional formatting characters.

/// Longest error message kept from a guest (a job error, a trap, a panic).
pub const MAX_ERROR_BYTES: usize = 4 << 10;
/// Most entries of a `needs-input` list kept.
pub const MAX_NEEDS: usize = 32;
/// Longest `needs-input` entry kept, in bytes.
pub const MAX_NEED_BYTES: usize = 256;
/// Longest event reason stored.
pub const MAX_REASON_BYTES: usize = 8 << 10;
/// Longest part of a name echoed back in an error, in characters.
pub const MAX_SHOWN_CHARS: usize = 64;
/// Largest content of a story's document, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Deepest nesting of arrays and objects accepted in JSON a guest or a
/// client gives (inputs, outputs, spawn inputs).
pub const MAX_JSON_DEPTH: usize = 128;

/// `text` cut to at most `max` bytes on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` if it fits in `max` bytes, else its start and a note of how many
/// bytes were cut; the result is never longer than `max` (for `max` ≥ 64).
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let note = format!("… ({} bytes cut)", text.len());
    let kept = prefix(text, max.saturating_sub(note.len()));
    format!("{kept}{note}")
}

/// A name as an error may show it: quoted and escaped, and cut after
/// [`MAX_SHOWN_CHARS`] characters, so an error never echoes a megabyte.
pub fn shown(name: &str) -> String {
    let mut chars = name.chars();
    let start: String = chars.by_ref().take(MAX_SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{start:?}… ({} bytes)", name.len())
    } else {
        format!("{start:?}")
    }
}

/// Bidirectional formatting characters: they reorder how the text around
/// them is displayed, so `cod\u{202e}txt.exe` reads as `codexe.txt`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `name` has a character no name may have: a control character
/// or a bidirectional formatting character.
pub fn has_hidden_characters(name: &str) -> bool {
    name.chars().any(|c| c.is_control() || is_bidi_control(c))
}

/// How deeply arrays and objects nest in the JSON `text` (0 for a scalar),
/// read without parsing: valid JSON is assumed, and strings are skipped.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An error for JSON nested deeper than [`MAX_JSON_DEPTH`], if it is.
pub fn check_json_depth(text: &str) -> Result<(), String> {
    let depth = json_depth(text);
    if depth > MAX_JSON_DEPTH {
        Err(format!(
            "JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_fits_and_says_what_was_cut() {
        assert_eq!(bounded("short", 100), "short");
        let long = "é".repeat(10_000);
        let cut = bounded(&long, 1_000);
        assert!(cut.len() <= 1_000, "{}", cut.len());
        assert!(cut.ends_with("… (20000 bytes cut)"), "{cut}");
        assert_eq!(prefix("héllo", 2), "h");
    }

    #[test]
    fn shown_names_are_escaped_and_short() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let huge = "x".repeat(1 << 20);
        let shown = shown(&huge);
        assert!(shown.len() < 100, "{}", shown.len());
        assert!(shown.ends_with("… (1048576 bytes)"), "{shown}");
    }

    #[test]
    fn hidden_characters_are_found() {
        for bad in [
            "cod\u{202e}txt.exe",
            "a\u{2066}b",
            "a\u{200f}",
            "a\0b",
            "a\u{7f}",
        ] {
            assert!(has_hidden_characters(bad), "{bad:?}");
        }
        for good in ["résumé.md", "日本語", "a-b_c.d", "emoji 🦀"] {
            assert!(!has_hidden_characters(good), "{good:?}");
        }
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(json_depth(r#"["[[[[\"]]"]"#), 1);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(json_depth(&deep), 100_000);
        assert!(check_json_depth(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(check_json_depth(&ok).is_ok());
    }
}

//! Just enough JSON for a guard: where the strings are, their escapes, and a
//! copy of the text with every escape blanked out. No validation: content
//! that is not JSON is scanned the same way and redacted as well as can be.

/// The byte range of a string's content, between its quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Str {
    pub start: usize,
    pub end: usize,
    escaped: bool,
}

pub struct Json {
    strings: Vec<Str>,
    /// The text with each escape sequence replaced by as many spaces, when
    /// it has escapes; same length, same positions.
    masked: Option<String>,
}

impl Json {
    pub fn parse(text: &str) -> Json {
        let b = text.as_bytes();
        let mut strings = Vec::new();
        let mut masked: Option<Vec<u8>> = None;
        let mut i = 0;
        // `i` passes the end after an unterminated last string.
        while let Some(off) = b.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
            let start = i + off + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                j += memchr::memchr2(b'"', b'\\', &b[j..]).unwrap_or(b.len() - j);
                if j >= b.len() || b[j] == b'"' {
                    break;
                }
                escaped = true;
                let len = if b.get(j + 1) == Some(&b'u') { 6 } else { 2 };
                let end = (j + len).min(b.len());
                let m = masked.get_or_insert_with(|| b.to_vec());
                // Only ASCII bytes are blanked, so the copy stays UTF-8
                // even where an escape is malformed.
                let mut k = j;
                while k < end && b[k].is_ascii() {
                    m[k] = b' ';
                    k += 1;
                }
                j = k.max(j + 1);
            }
            strings.push(Str {
                start,
                end: j,
                escaped,
            });
            i = j + 1;
        }
        Json {
            strings,
            masked: masked.and_then(|m| String::from_utf8(m).ok()),
        }
    }

    /// The text to look for personal data in.
    pub fn masked<'a>(&'a self, text: &'a str) -> &'a str {
        self.masked.as_deref().unwrap_or(text)
    }

    /// The text with the content of every escaped string blanked: what is
    /// left to scan once those strings are scanned decoded.
    pub fn without_escaped_strings(&self, text: &str) -> Option<String> {
        let mut blanked: Option<Vec<u8>> = None;
        for s in self.escaped_strings() {
            let b = blanked.get_or_insert_with(|| text.as_bytes().to_vec());
            // Between two quotes, so whole characters: spaces keep it UTF-8.
            b[s.start..s.end].fill(b' ');
        }
        blanked.and_then(|b| String::from_utf8(b).ok())
    }

    /// Whether byte `pos` is inside a string's content.
    pub fn in_string(&self, pos: usize) -> bool {
        let i = self.strings.partition_point(|s| s.start <= pos);
        i > 0 && pos < self.strings[i - 1].end
    }

    /// The strings that have escapes, so read differently once decoded.
    pub fn escaped_strings(&self) -> impl Iterator<Item = Str> + '_ {
        self.strings.iter().copied().filter(|s| s.escaped)
    }

    /// The range widened to the JSON number it is part of, so that it can
    /// be replaced by a quoted string.
    pub fn number_around(&self, text: &str, start: usize, end: usize) -> (usize, usize) {
        let b = text.as_bytes();
        let number = |c: u8| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E');
        let mut s = start.min(b.len());
        while s > 0 && number(b[s - 1]) {
            s -= 1;
        }
        let mut e = end.min(b.len());
        while e < b.len() && number(b[e]) {
            e += 1;
        }
        (s, e)
    }
}

/// Appends a string's content with its escapes decoded. Malformed escapes
/// are kept as they are; lone surrogates become U+FFFD.
pub fn unescape_into(raw: &str, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let rest = chars.as_str();
                let Some(high) = hex4(rest) else {
                    out.push_str("\\u");
                    continue;
                };
                chars = rest[4..].chars();
                let code = if (0xD800..0xDC00).contains(&high) {
                    let tail = chars.as_str();
                    match tail.strip_prefix("\\u").and_then(hex4) {
                        Some(low) if (0xDC00..0xE000).contains(&low) => {
                            chars = tail[6..].chars();
                            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                        }
                        _ => 0xFFFD,
                    }
                } else {
                    high
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
}

fn hex4(s: &str) -> Option<u32> {
    let digits = s.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_blanked_in_place() {
        let text = r#"{"a": "x\ny\u00e9"}"#;
        let j = Json::parse(text);
        assert_eq!(j.masked(text), r#"{"a": "x  y      "}"#);
        assert!(j.in_string(8));
        assert!(!j.in_string(4));
    }

    fn unescape(raw: &str) -> String {
        let mut out = String::new();
        unescape_into(raw, &mut out);
        out
    }

    #[test]
    fn unescape_decodes_surrogate_pairs_and_keeps_malformed_escapes() {
        assert_eq!(unescape(r"\u0069gnore\n"), "ignore\n");
        assert_eq!(unescape(r"\ud83d\ude00"), "😀");
        assert_eq!(unescape(r"\ud83d"), "\u{FFFD}");
        assert_eq!(unescape(r"\uzz"), r"\uzz");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn unterminated_strings_end_at_the_end() {
        let j = Json::parse(r#"{"a": "abc"#);
        assert!(j.in_string(9));
    }
}

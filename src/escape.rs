//! Escaping of text from outside (AMC statuses, reasons and ids, result values, error messages)
//! wherever it is shown to people: text log lines and CLI tables. A newline in such text would
//! forge a separate log line, and an ESC sequence printed raw would drive the terminal. One
//! function does it everywhere, in the style of tracing-subscriber's own ANSI escaping (which
//! already turns ESC into `\x1b` inside log fields), so escaped text looks the same in both.
//!
//! JSON output (logs, `--json`, exports) needs none of this: JSON escapes control characters.

use std::borrow::Cow;

/// Returns `text` with control characters, line separators and Unicode bidi controls escaped:
/// `\n`, `\r`, `\t` by name, other C0 controls and DEL as `\x1b`, C1 controls, separators and bidi
/// controls as `\u{202e}`. Text without any is returned as is (no allocation).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Characters that must not reach a terminal or a line-oriented log raw.
fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(
            c,
            // Arabic letter mark, LRM/RLM, line and paragraph separators, LRE..RLO, LRI..PDI:
            // they reorder or break what follows them on screen ("Trojan Source").
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_returned_untouched_without_copying() {
        let text = "Query failed: table `t` — naïve ünïcode, tabs aside";
        assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn newlines_and_carriage_returns_cannot_start_a_new_line() {
        let escaped = escape_controls("QUEUED\r\n2026-01-01T00:00:00Z ERROR forged");
        assert_eq!(escaped, "QUEUED\\r\\n2026-01-01T00:00:00Z ERROR forged");
        assert!(!escaped.contains(['\n', '\r']));
    }

    #[test]
    fn escape_sequences_and_other_controls_are_shown_as_codes() {
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\u{7}\u{0}\u{7f}\u{85}\u{9b}c\td"),
            "a\\x1b[2Jb\\x07\\x00\\x7f\\u{85}\\u{9b}c\\td"
        );
    }

    #[test]
    fn bidi_overrides_and_line_separators_are_shown_as_codes() {
        assert_eq!(
            escape_controls("id\u{202e}gnp.exe\u{2066}x\u{2069}\u{2028}\u{200f}"),
            "id\\u{202e}gnp.exe\\u{2066}x\\u{2069}\\u{2028}\\u{200f}"
        );
    }
}

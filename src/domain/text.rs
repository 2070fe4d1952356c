//! The one rule for free text (reasons, names, face fields, client names): what enters a signed
//! document or a permanent log leaf must read the same to every person and every program.
//!
//! - normalised to NFC (Unicode UAX #15), so that equal-looking text is equal bytes;
//! - no control characters (C0, DEL, C1: NUL, ESC, newlines, tabs), which corrupt logs and
//!   terminals;
//! - no bidirectional controls (U+202A–202E, U+2066–2069, U+200E/F, U+061C), which reorder what a
//!   reader sees (the "Trojan Source" trick), and no zero-width or invisible formatting
//!   characters, which make two different names look alike;
//! - trimmed, and its length counted in characters, not bytes (经营范围 of 300 characters is
//!   normal).

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} is empty")]
    Empty { field: String },
    #[error("{field} has {len} characters; at most {max}")]
    TooLong { field: String, len: usize, max: usize },
    #[error("{field} contains {what} U+{code:04X} at character {at}; free text may not hold control, bidirectional or invisible formatting characters")]
    Forbidden { field: String, what: &'static str, code: u32, at: usize },
}

impl TextError {
    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::Empty { field } | Self::TooLong { field, .. } | Self::Forbidden { field, .. } => field,
        }
    }
}

/// What kind of forbidden character `c` is, if it is one.
pub fn forbidden(c: char) -> Option<&'static str> {
    match c as u32 {
        0x00..=0x1F | 0x7F..=0x9F => Some("the control character"),
        0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069 => Some("the bidirectional control"),
        0x2028 | 0x2029 => Some("the line or paragraph separator"),
        // Unicode general category Cf (format), except the bidi controls above and the tags
        // below; and the other default-ignorable or blank-looking code points that render as
        // nothing (combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
        // variation selectors, the Braille blank). Variation selectors U+FE00–FE0F and
        // U+E0100–E01EF stay: ideographic variation sequences choose glyphs of rare characters in
        // names.
        0x034F | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x2800 | 0x3164 | 0xFFA0 => {
            Some("the invisible character")
        }
        0x00AD
        | 0x0600..=0x0605
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x200B..=0x200D
        | 0x2060..=0x2065
        | 0x206A..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A => Some("the invisible formatting character"),
        0xE0000..=0xE007F => Some("the tag character"),
        0xFFFE | 0xFFFF | 0xFDD0..=0xFDEF => Some("the noncharacter"),
        _ => None,
    }
}

/// Characters that are allowed and NFC whatever surrounds them (starters that never compose):
/// printable ASCII, CJK unified ideographs, CJK punctuation and full-width forms. Text made only
/// of these — most Chinese licence text — needs no further look.
fn plain(c: char) -> bool {
    matches!(c as u32, 0x20..=0x7E | 0x3000..=0x3029 | 0x3030..=0x303F | 0x4E00..=0x9FFF | 0xFF01..=0xFF5E)
}

/// Applies the rule to `value` of `field`: returns the trimmed NFC text of 1..=`max` characters.
pub fn clean(field: &str, value: &str, max: usize) -> Result<String, TextError> {
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.chars().all(plain) {
        let len = trimmed.chars().count();
        if len > max {
            return Err(TextError::TooLong { field: field.to_string(), len, max });
        }
        return Ok(trimmed.to_string());
    }
    // Most text is NFC already: the quick check spares the rebuild.
    let t: String = match unicode_normalization::is_nfc_quick(trimmed.chars()) {
        unicode_normalization::IsNormalized::Yes => trimmed.to_string(),
        _ => trimmed.nfc().collect(),
    };
    if t.is_empty() {
        return Err(TextError::Empty { field: field.to_string() });
    }
    if let Some((at, c, what)) = t.chars().enumerate().find_map(|(i, c)| forbidden(c).map(|w| (i + 1, c, w))) {
        return Err(TextError::Forbidden { field: field.to_string(), what, code: c as u32, at });
    }
    let len = t.chars().count();
    if len > max {
        return Err(TextError::TooLong { field: field.to_string(), len, max });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(input: &str, want: &str) {
        assert_eq!(clean("f", input, 10).unwrap(), want);
    }

    #[track_caller]
    fn refused(input: &str, what: &str) {
        let e = clean("f", input, 10).unwrap_err().to_string();
        assert!(e.contains(what), "{input:?}: {e}");
        assert!(e.starts_with("f "), "{e}");
    }

    #[test]
    fn the_rule() {
        ok("  张三 ", "张三");
        ok("Zoe\u{0301}", "Zoé"); // decomposed → NFC
        ok("ＡＢＣ", "ＡＢＣ"); // NFC, not NFKC: full-width letters stay
        ok(&"长".repeat(10), &"长".repeat(10));
        refused("", "empty");
        refused("   ", "empty");
        refused(&"长".repeat(11), "11 characters");
        refused("a\u{0}b", "control character U+0000");
        refused("a\u{1b}[31mb", "control character U+001B");
        refused("a\nb", "U+000A");
        refused("a\u{85}b", "U+0085");
        refused("a\u{2028}b", "separator U+2028");
        refused("abc\u{202E}fed", "bidirectional control U+202E");
        refused("a\u{2066}b", "bidirectional control U+2066");
        refused("a\u{200F}b", "U+200F");
        refused("张\u{200B}三", "invisible formatting character U+200B");
        refused("\u{FEFF}x", "U+FEFF");
        refused("x\u{E0041}", "tag character");
        refused("张\u{3164}三", "invisible character U+3164");
        refused("a\u{034F}b", "U+034F");
        ok("\u{845B}\u{E0100}", "\u{845B}\u{E0100}"); // 葛 with an ideographic variation selector
    }

    /// The fast path agrees with the full rule on every character it admits.
    #[test]
    fn plain_characters_are_nfc_and_allowed() {
        for c in (0u32..0x11_0000).filter_map(char::from_u32).filter(|c| plain(*c)) {
            assert!(forbidden(c).is_none(), "{c:?}");
            let s = c.to_string();
            assert_eq!(s.nfc().collect::<String>(), s, "U+{:04X}", c as u32);
            assert_eq!(unicode_normalization::char::canonical_combining_class(c), 0, "U+{:04X}", c as u32);
            // NFC_Quick_Check = Yes: it never composes with what comes before it.
            assert_eq!(
                unicode_normalization::is_nfc_quick(std::iter::once(c)),
                unicode_normalization::IsNormalized::Yes,
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn never_panics_and_output_obeys_the_rule() {
        use proptest::prelude::*;
        proptest!(|(s in ".{0,40}")| {
            if let Ok(t) = clean("f", &s, 20) {
                prop_assert!(t.chars().all(|c| forbidden(c).is_none()));
                prop_assert!(t.chars().count() <= 20 && !t.is_empty());
                prop_assert_eq!(t.nfc().collect::<String>(), t.clone());
            }
        });
    }
}

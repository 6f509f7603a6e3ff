//! Text that people read: key names, descriptions, user ids.
//!
//! One rule for all of them, so that what a UI, a terminal or a log shows is what is
//! stored: no control characters (line breaks and tabs only where several lines are
//! allowed), no line or paragraph separators, no invisible formatting characters
//! (bidirectional overrides, zero-width characters, tags), no characters that render
//! as blank (Hangul fillers, the blank Braille pattern), no noncharacters, and no
//! towers of combining marks.

/// Whether the text may span lines (descriptions) or not (names, user ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

/// The most combining marks allowed in a row. Real scripts stack a few (Vietnamese
/// two, Tibetan up to about five); "Zalgo" text stacks dozens to spill over the lines
/// around it.
pub const MAX_COMBINING_MARKS: usize = 6;

/// The first problem found in `text`, phrased for a client (`must not …`), or `None`.
pub fn problem(text: &str, lines: Lines) -> Option<String> {
    let mut marks = 0;
    for c in text.chars() {
        if c.is_control() && !(lines == Lines::Many && matches!(c, '\n' | '\r' | '\t')) {
            return Some(match lines {
                Lines::One => "must not contain control characters".into(),
                Lines::Many => {
                    "must not contain control characters other than line breaks and tabs".into()
                }
            });
        }
        if matches!(c, '\u{2028}' | '\u{2029}') {
            return Some("must not contain line or paragraph separators (U+2028, U+2029)".into());
        }
        if is_invisible_format(c) {
            return Some("must not contain invisible formatting characters".into());
        }
        if is_blank_looking(c) {
            return Some(format!(
                "must not contain characters that display as blank (U+{:04X})",
                c as u32
            ));
        }
        if is_noncharacter(c) {
            return Some(format!(
                "must not contain noncharacters (U+{:04X})",
                c as u32
            ));
        }
        if unicode_normalization::char::is_combining_mark(c) {
            marks += 1;
            if marks > MAX_COMBINING_MARKS {
                return Some(format!(
                    "must not stack more than {MAX_COMBINING_MARKS} combining marks"
                ));
            }
        } else {
            marks = 0;
        }
    }
    None
}

/// Invisible formatting characters (Unicode category Cf) that can disguise text in a
/// UI or a terminal: bidirectional overrides, zero-width characters, tags.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Letters and symbols that render as nothing, so a name made of them looks empty
/// and one that holds them looks like another: the Hangul fillers, the combining
/// grapheme joiner, Khmer's inherent vowels, the blank Braille pattern.
fn is_blank_looking(c: char) -> bool {
    matches!(
        c,
        '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{034F}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{2800}'
    )
}

/// The 66 code points Unicode reserves never to assign (U+FDD0–FDEF, and the last two
/// of every plane): no text has a reason to carry them.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_in_many_scripts_passes() {
        for text in [
            "ci",
            "naïve café 鍵",
            "Tiếng Việt",
            "हिन्दी क्षि",
            "ключ для CI",
            "🔑 deploy ❤️",
            "བོད་སྐད",
        ] {
            assert_eq!(problem(text, Lines::One), None, "{text}");
        }
        assert_eq!(problem("line one\nline two\ttab", Lines::Many), None);
    }

    #[test]
    fn text_that_looks_blank_or_breaks_lines_is_refused() {
        for text in [
            "\u{3164}",
            "a\u{2800}b",
            "\u{115F}\u{1160}",
            "half\u{FFA0}width",
            "one\u{2028}two",
            "one\u{2029}two",
            "non\u{FFFE}char",
            "non\u{FFFF}char",
            "non\u{FDD0}char",
            "plane\u{1FFFF}",
            "invoice\u{202E}fdp.exe",
            "zero\u{200B}width",
            "a\u{1b}[31mb",
        ] {
            assert!(problem(text, Lines::One).is_some(), "{text:?}");
        }
        assert!(problem("one\u{2028}two", Lines::Many).is_some());
        assert!(problem("a\u{0}b", Lines::Many).is_some());
        assert!(problem("a\nb", Lines::One).is_some());
    }

    #[test]
    fn towers_of_combining_marks_are_refused() {
        let zalgo = format!("z{}", "\u{0301}".repeat(99));
        assert!(
            problem(&zalgo, Lines::One)
                .unwrap()
                .contains("combining marks")
        );
        let six = format!("e{}", "\u{0301}".repeat(MAX_COMBINING_MARKS));
        assert_eq!(problem(&six, Lines::One), None);
        // The count starts again after each base character.
        assert_eq!(problem(&six.repeat(5), Lines::One), None);
    }
}

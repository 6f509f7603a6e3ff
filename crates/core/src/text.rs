//! Text that people read: key names, descriptions, user ids.
//!
//! One rule for all of them, so that what a UI, a terminal or a log shows is what is
//! stored: no control characters (line breaks and tabs only where several lines are
//! allowed), no line or paragraph separators, no invisible formatting characters
//! (bidirectional overrides, zero-width characters, tags: Unicode's default-ignorable
//! code points and format characters, but for a variation selector doing its job after
//! a symbol or an ideograph), no characters that render as blank (Hangul fillers, the
//! blank Braille pattern), no noncharacters, and no towers of combining marks.

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
    let mut previous: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
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
        let varies_previous = is_variation_selector(c)
            && previous.is_some_and(|p| may_vary(p, c, chars.peek().copied()));
        if is_invisible(c) && !varies_previous {
            return Some(format!(
                "must not contain invisible formatting characters (U+{:04X})",
                c as u32
            ));
        }
        if c == '\u{2800}' {
            return Some("must not contain characters that display as blank (U+2800)".into());
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
        } else if !varies_previous {
            marks = 0;
        }
        previous = Some(c);
    }
    None
}

/// Characters that display as nothing in most renderings: Unicode's
/// Default_Ignorable_Code_Point (bidirectional controls, zero-width characters,
/// variation selectors, tags, Hangul fillers, Mongolian free variation selectors,
/// musical beam controls, …) and the other format characters (category Cf).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'
        // Format characters that are not default-ignorable.
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{0890}'..='\u{0891}'
        | '\u{08E2}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{16FE4}')
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Whether a variation selector after `base` does what it exists for, rather than
/// hiding after a letter: text or emoji style after a symbol (`❤️`, and keycaps like
/// `1️⃣`), an ideographic variant after a CJK ideograph.
fn may_vary(base: char, selector: char, next: Option<char>) -> bool {
    match selector {
        '\u{FE0E}' | '\u{FE0F}' => {
            matches!(base,
                '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
                | '\u{2194}'..='\u{21AA}' | '\u{231A}'..='\u{23FF}' | '\u{24C2}'
                | '\u{25AA}'..='\u{27BF}' | '\u{2934}'..='\u{2935}' | '\u{2B05}'..='\u{2B55}'
                | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}' | '\u{1F000}'..='\u{1FAFF}')
                || (matches!(base, '0'..='9' | '#' | '*') && next == Some('\u{20E3}'))
        }
        _ => matches!(base,
            '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{3FFFF}'),
    }
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
            "key 1\u{FE0F}\u{20E3}",
            "葛\u{E0100}城",
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
            "alice\u{FE0F}",
            "\u{FE0F}\u{FE0F}",
            "\u{1D173}",
            "a\u{E0100}",
            "x\u{180B}",
            "x\u{2065}",
            "x\u{13430}",
            "x\u{16FE4}",
            "x\u{1BCA0}",
            "1\u{FE0F}",
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
        // The count starts again after each base character, not after an invisible one.
        assert_eq!(problem(&six.repeat(5), Lines::One), None);
        let split = format!("a{}\u{1D173}{}", "\u{0301}".repeat(6), "\u{0301}".repeat(6));
        assert!(problem(&split, Lines::One).is_some());
    }
}

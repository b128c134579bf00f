//! Names people read: the sharer's display name, in the guest's email and on the code
//! page, and a guest account's first and last name. Checked at the door, because they
//! travel into an email's subject and body: letters, digits, marks, single spaces and a
//! few punctuation marks only, so no control or bidi character, no `@`, no `:` or `/`,
//! and nothing shaped like a web address ("please log in at evil.example").

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest name accepted, in characters.
pub const MAX_NAME: usize = 80;

/// Punctuation a name may hold besides letters, digits and marks.
const PUNCTUATION: &[char] = &['.', ',', '\'', '\u{2019}', '-', '_', '(', ')', '&'];

/// A name as shown to people: NFC, trimmed, checked. The error says why, for a 422.
pub fn person_name(raw: &str) -> Result<String, String> {
    let name: String = raw.trim().nfc().collect();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME {
        return Err(format!("1 to {MAX_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|&c| {
        !(c.is_alphanumeric() || is_combining_mark(c) || c == ' ' || PUNCTUATION.contains(&c))
    }) {
        return Err(format!(
            "letters, digits, spaces and . , ' - _ ( ) & only (found U+{:04X})",
            u32::from(c)
        ));
    }
    if name.contains("  ") {
        return Err("no runs of spaces".into());
    }
    if let Some(c) = name.chars().find(|&c| invisible(c)) {
        return Err(format!(
            "no invisible characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    let chars: Vec<char> = name.chars().collect();
    if let Some(i) = (1..chars.len()).find(|&i| {
        is_combining_mark(chars[i])
            && !chars[i - 1].is_alphanumeric()
            && !is_combining_mark(chars[i - 1])
    }) {
        return Err(format!(
            "a combining mark only after a letter (U+{:04X})",
            u32::from(chars[i])
        ));
    }
    if looks_like_address(&chars) {
        return Err("a name, not a web address".into());
    }
    if mixes_scripts(&chars) {
        return Err("letters of one script (a name that mixes scripts can imitate another)".into());
    }
    Ok(name)
}

/// Code points that show nothing, or change how a neighbour shows, while counting as
/// letters or marks: variation selectors, the combining grapheme joiner, Hangul fillers,
/// Mongolian free variation selectors, Khmer inherent vowels, tag characters.
fn invisible(c: char) -> bool {
    matches!(u32::from(c),
        0x034F | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x3164 | 0xFFA0
        | 0xFE00..=0xFE0F | 0xE0000..=0xE0FFF | 0x200B..=0x200F | 0x2060..=0x206F | 0x00AD)
}

/// A coarse script class for a letter: names use letters of one class, so a lookalike
/// from another script (Lisu `ꓸ` for `.`, Cyrillic `а` for `a`) cannot stand in. Han,
/// kana and Hangul are one class (Japanese names mix Han and kana).
fn script_class(c: char) -> Option<u32> {
    if !c.is_alphabetic() {
        return None;
    }
    let class = match u32::from(c) {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF => 1,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => 2,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => 3,
        0x1100..=0x11FF
        | 0x3040..=0x30FF
        | 0x3130..=0x318F
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F
        | 0x20000..=0x3FFFF => 4,
        // any other script: its 128-code-point block stands for it
        cp => 0x100 + cp / 0x80,
    };
    Some(class)
}

fn mixes_scripts(chars: &[char]) -> bool {
    let mut classes = chars.iter().filter_map(|&c| script_class(c));
    match classes.next() {
        Some(first) => classes.any(|c| c != first),
        None => false,
    }
}

/// `word.word` with two or more letters after the dot (`evil.example`, `bit.ly`), as
/// opposed to initials (`J.R.R. Tolkien`) and abbreviations followed by a space (`St. Ann`);
/// a dot after a space (`evil . example`) or between digits (`127.0.0.1`).
fn looks_like_address(c: &[char]) -> bool {
    (1..c.len()).any(|i| {
        c[i] == '.'
            && (c[i - 1] == ' '
                || (c[i - 1].is_numeric() && c.get(i + 1).is_some_and(|n| n.is_numeric()))
                || (c[i - 1].is_alphanumeric()
                    && c[i + 1..]
                        .iter()
                        .take_while(|x| x.is_alphanumeric())
                        .count()
                        >= 2))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_people_write_pass() {
        for ok in [
            "Ada Okafor",
            "J.R.R. Tolkien",
            "St. Ann's Chambers",
            "María-José Núñez",
            "O\u{2019}Brien & Partners (Legal)",
            "李小龍",
            "Zoë",
            "Paralegal 2",
        ] {
            assert!(person_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            person_name("  Zoe\u{308}  ").unwrap(),
            "Zoë",
            "NFC, trimmed"
        );
    }

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        for bad in [
            "",
            "Chief Justice \u{2026} please also log in at https://evil.example/login",
            "Ada evil.example",
            "Ada\u{202e}rekoO",
            "Ada\u{200f}",
            "Ada\nBcc: x",
            "ada@firm.example",
            "Ada  Okafor",
            "<b>Ada</b>",
            &"a".repeat(81),
            // what a hostile review got through an earlier version
            "IT Helpdesk. Sign in first at https\u{A4FD}\u{30CE}\u{30CE}evil.\u{034F}example",
            "evil.\u{FE0F}example",
            "evil.\u{0301}example",
            "evil\u{A4F8}example",
            "127.0.0.1",
            "1.1.1.1",
            "evil . example",
            "xn--80ak6aa92e . com",
            "\u{3164}",
            "\u{115F}\u{115F}",
            "Ann\u{180B}",
            "Ann\u{E0100}",
            "Lee.\u{034F}example",
            "P\u{0430}ypal Support",
        ] {
            assert!(person_name(bad).is_err(), "{bad:?}");
        }
    }
}

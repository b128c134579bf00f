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
    if looks_like_address(&name) {
        return Err("a name, not a web address".into());
    }
    Ok(name)
}

/// `word.word` with two or more letters after the dot (`evil.example`, `bit.ly`), as
/// opposed to initials (`J.R.R. Tolkien`) and abbreviations followed by a space (`St. Ann`).
fn looks_like_address(name: &str) -> bool {
    let c: Vec<char> = name.chars().collect();
    (1..c.len()).any(|i| {
        c[i] == '.'
            && c[i - 1].is_alphanumeric()
            && c[i + 1..]
                .iter()
                .take_while(|x| x.is_alphanumeric())
                .count()
                >= 2
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
        ] {
            assert!(person_name(bad).is_err(), "{bad:?}");
        }
    }
}

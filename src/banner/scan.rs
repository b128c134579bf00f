//! Where the `<body …>` start tag of a streamed HTML document ends, found the way an HTML
//! parser would: tags, quoted attribute values, comments, doctypes and the raw text of
//! `<script>`, `<style>`, `<title>` are skipped, so a `<body>` inside any of them is not the
//! body. Nothing is buffered: the scanner keeps a few bytes of state across chunks, and
//! reports an offset in the chunk it is given.
//!
//! It gives up (the page passes untouched) as soon as the parser would have started the
//! body implicitly (text, or an element that cannot be in `<head>`), or after a bounded
//! number of bytes.

use memchr::memchr;

/// What a chunk revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The body start tag ends just before this offset of the chunk: insert there.
    Insert(usize),
    /// Not yet: give me the next chunk.
    More,
    /// There is no `<body>` tag to find (or not within the limit): stop looking.
    GiveUp,
}

/// Elements the parser accepts before the body; any other start tag starts it implicitly.
const HEAD_ELEMENTS: &[&[u8]] = &[
    b"html",
    b"head",
    b"title",
    b"meta",
    b"link",
    b"style",
    b"script",
    b"base",
    b"noscript",
    b"template",
    b"noframes",
    b"basefont",
    b"bgsound",
];

/// Elements whose content is text up to their end tag (no tags inside).
const RAW_TEXT: &[&[u8]] = &[b"script", b"style", b"title", b"noscript", b"noframes"];

const NAME_MAX: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After `<`.
    TagOpen,
    /// Reading a tag name.
    TagName {
        end: bool,
    },
    /// Inside a start or end tag, outside attribute values.
    Attrs,
    /// After `=`, before the value.
    BeforeValue,
    /// In a quoted value, until this quote.
    Quoted(u8),
    /// In an unquoted value.
    Unquoted,
    /// After `<!`, with this many `-` seen.
    Markup(u8),
    /// In a comment, with this many `-` just seen.
    Comment(u8),
    /// A doctype, `<?…>` or a malformed tag: until `>`.
    Bogus,
    /// In raw text, with this many bytes of `</name` matched.
    RawText(usize),
    /// Matched `</name`: the next byte says whether it is the end tag.
    RawTextEnd,
    Done,
}

/// The scanner's state between chunks.
#[derive(Debug, Clone)]
pub struct BodyScanner {
    state: State,
    name: [u8; NAME_MAX],
    name_len: usize,
    /// The tag being read is an end tag.
    end_tag: bool,
    /// The raw-text element being skipped.
    raw: &'static [u8],
    seen: usize,
    limit: usize,
}

/// A byte of the UTF-8 byte order mark at the start of the document.
fn is_bom_byte(at: usize, b: u8) -> bool {
    at < 3 && matches!(b, 0xef | 0xbb | 0xbf)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

impl BodyScanner {
    /// A scanner that gives up after `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            state: State::Data,
            name: [0; NAME_MAX],
            name_len: 0,
            end_tag: false,
            raw: b"",
            seen: 0,
            limit,
        }
    }

    fn name(&self) -> Option<&[u8]> {
        (self.name_len <= NAME_MAX).then(|| &self.name[..self.name_len])
    }

    /// Scans the next chunk of the document.
    pub fn scan(&mut self, input: &[u8]) -> Scan {
        if self.state == State::Done {
            return Scan::GiveUp;
        }
        let start = self.seen;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Data => {
                    if b == b'<' {
                        self.state = State::TagOpen;
                    } else if !(is_space(b) || is_bom_byte(start + i, b)) {
                        // Text before any body tag: the parser has started the body.
                        return self.give_up();
                    }
                }
                State::TagOpen => match b {
                    b'!' => self.state = State::Markup(0),
                    b'?' => self.state = State::Bogus,
                    b'/' => {
                        self.name_len = 0;
                        self.state = State::TagName { end: true };
                    }
                    b if b.is_ascii_alphabetic() => {
                        self.name[0] = b.to_ascii_lowercase();
                        self.name_len = 1;
                        self.state = State::TagName { end: false };
                    }
                    // `<` followed by anything else is text.
                    _ => return self.give_up(),
                },
                State::TagName { end } if self.name_len == 0 => {
                    // `</` then a letter starts an end tag; anything else is ignored to `>`.
                    if b.is_ascii_alphabetic() {
                        self.name[0] = b.to_ascii_lowercase();
                        self.name_len = 1;
                    } else {
                        self.state = State::Bogus;
                        continue;
                    }
                    debug_assert!(end);
                }
                State::TagName { end } => {
                    if is_space(b) || b == b'/' || b == b'>' {
                        self.end_tag = end;
                        let name = self.name();
                        if !end && !name.is_some_and(|n| n == b"body" || HEAD_ELEMENTS.contains(&n))
                        {
                            return self.give_up();
                        }
                        self.state = State::Attrs;
                        // The tag may end right here.
                        continue;
                    }
                    if self.name_len < NAME_MAX {
                        self.name[self.name_len] = b.to_ascii_lowercase();
                    }
                    self.name_len = (self.name_len + 1).min(NAME_MAX + 1);
                }
                State::Attrs => match b {
                    b'>' => {
                        let name = self.name().unwrap_or(b"");
                        let end_tag = self.end_tag;
                        if !end_tag && name == b"body" {
                            self.state = State::Done;
                            return Scan::Insert(i + 1);
                        }
                        self.state = match RAW_TEXT.iter().find(|r| **r == name) {
                            Some(raw) if !end_tag => {
                                self.raw = raw;
                                State::RawText(0)
                            }
                            _ => State::Data,
                        };
                    }
                    b'=' => self.state = State::BeforeValue,
                    _ => {}
                },
                State::BeforeValue => match b {
                    b'"' | b'\'' => self.state = State::Quoted(b),
                    b'>' => {
                        self.state = State::Attrs;
                        continue;
                    }
                    b if is_space(b) => {}
                    _ => self.state = State::Unquoted,
                },
                State::Quoted(q) => match memchr(q, &input[i..]) {
                    Some(at) => {
                        i += at;
                        self.state = State::Attrs;
                    }
                    None => i = input.len() - 1,
                },
                State::Unquoted => {
                    if is_space(b) {
                        self.state = State::Attrs;
                    } else if b == b'>' {
                        self.state = State::Attrs;
                        continue;
                    }
                }
                State::Markup(n) => match (n, b) {
                    (0 | 1, b'-') => self.state = State::Markup(n + 1),
                    // `<!--`: a comment; `<!-->` and `<!--->` already end it.
                    (2, _) => {
                        self.state = State::Comment(2);
                        continue;
                    }
                    (_, b'>') => self.state = State::Data,
                    _ => self.state = State::Bogus,
                },
                State::Comment(dashes) => match b {
                    b'-' => self.state = State::Comment(dashes.saturating_add(1)),
                    b'>' if dashes >= 2 => self.state = State::Data,
                    _ => self.state = State::Comment(0),
                },
                State::Bogus => match memchr(b'>', &input[i..]) {
                    Some(at) => {
                        i += at;
                        self.state = State::Data;
                    }
                    None => i = input.len() - 1,
                },
                State::RawText(matched) => {
                    let want = match matched {
                        0 => Some(b'<'),
                        1 => Some(b'/'),
                        n => self.raw.get(n - 2).copied(),
                    };
                    match want {
                        Some(w) if b.to_ascii_lowercase() == w => {
                            self.state = if matched + 1 == self.raw.len() + 2 {
                                State::RawTextEnd
                            } else {
                                State::RawText(matched + 1)
                            };
                        }
                        _ if matched == 0 => {
                            // Jump to the next `<`.
                            match memchr(b'<', &input[i..]) {
                                Some(at) => {
                                    i += at;
                                    continue;
                                }
                                None => i = input.len() - 1,
                            }
                        }
                        _ => {
                            self.state = State::RawText(0);
                            continue;
                        }
                    }
                }
                State::RawTextEnd => {
                    if is_space(b) || b == b'/' || b == b'>' {
                        // The end tag of the raw element; it ends at `>`.
                        self.end_tag = true;
                        self.state = State::Attrs;
                        continue;
                    }
                    self.state = State::RawText(0);
                    continue;
                }
                State::Done => return Scan::GiveUp,
            }
            i += 1;
        }
        self.seen += input.len();
        if self.seen > self.limit {
            return self.give_up();
        }
        Scan::More
    }

    fn give_up(&mut self) -> Scan {
        self.state = State::Done;
        Scan::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `doc` split at every possible point (and byte by byte); every split must
    /// give the same answer as one chunk.
    fn find(doc: &str) -> Option<usize> {
        let bytes = doc.as_bytes();
        let whole = scan_chunks(&[bytes]);
        for cut in 0..=bytes.len() {
            assert_eq!(
                scan_chunks(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "split at {cut}: {doc}"
            );
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(scan_chunks(&singles), whole, "byte by byte: {doc}");
        whole
    }

    fn scan_chunks(chunks: &[&[u8]]) -> Option<usize> {
        let mut s = BodyScanner::new(1 << 20);
        let mut offset = 0;
        for c in chunks {
            match s.scan(c) {
                Scan::Insert(at) => return Some(offset + at),
                Scan::GiveUp => return None,
                Scan::More => offset += c.len(),
            }
        }
        None
    }

    fn after(doc: &str, marker: &str) -> Option<usize> {
        Some(doc.find(marker).expect("marker") + marker.len())
    }

    #[test]
    fn finds_the_end_of_the_body_start_tag() {
        for (doc, marker) in [
            (
                "<!doctype html><html><head><title>t</title></head><body><p>x",
                "<body>",
            ),
            ("<BODY CLASS=x>", "<BODY CLASS=x>"),
            ("\u{feff}<html><body>", "<body>"),
            ("<body class=\"a>b\" data-x='c>d'>text", "'c>d'>"),
            ("<body data-x=a'b>", "a'b>"),
            ("<body/>", "<body/>"),
            ("<body\n>", "<body\n>"),
            ("<body x = \"1\" >", "\" >"),
            ("<head><!-- <body> --></head><body>", "</head><body>"),
            ("<!--><body>", "<!--><body>"),
            ("<!---><body>", "<!---><body>"),
            (
                "<head><script>document.write('<body>')</script><body>",
                "</script><body>",
            ),
            (
                "<script>a='</scripty>'; b='<body>'</script ><body>",
                "</script ><body>",
            ),
            (
                "<style>p::before{content:'<body>'}</STYLE><body>",
                "</STYLE><body>",
            ),
            ("<title><body></title><body id=x>", "<body id=x>"),
            ("<noscript><body></noscript><body>", "</noscript><body>"),
            (
                "<html><head><meta charset=utf-8><link rel=stylesheet href=/a.css></head>\n<body>",
                "\n<body>",
            ),
            ("<?xml version=\"1.0\"?><body>", "?><body>"),
            ("<!DOCTYPE html PUBLIC \"x\"><body>", "\"><body>"),
            ("</head></html><body>", "</html><body>"),
        ] {
            assert_eq!(find(doc), after(doc, marker), "{doc}");
        }
    }

    #[test]
    fn gives_up_where_the_body_starts_without_a_tag() {
        for doc in [
            "<html><p><body>",
            "hello <body>",
            "<html><head></head>text<body>",
            "<div><body>",
            "< body>",
            "<bodyx>",
            "<template-x><body>",
            "",
            "<html><head>",
        ] {
            assert_eq!(find(doc), None, "{doc}");
        }
    }

    #[test]
    fn gives_up_past_the_limit() {
        let mut s = BodyScanner::new(16);
        assert_eq!(s.scan(b"<html><head>    "), Scan::More);
        assert_eq!(s.scan(b"<title>x</title>"), Scan::GiveUp);
        assert_eq!(s.scan(b"<body>"), Scan::GiveUp);
    }
}

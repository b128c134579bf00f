//! Where the `<body …>` start tag of a streamed HTML document ends, found the way the HTML
//! parser (WHATWG tokenizer) finds it: tags with their attribute states, comments (also
//! ended by `--!>`), doctypes, the raw text of `<script>` (with its escaped and
//! double-escaped states), `<style>`, `<title>`, `<noscript>`, and `<template>` contents
//! (where a `<body>` is ignored) are all skipped, so a `<body>` inside any of them is not
//! the body. Nothing is buffered: the scanner keeps a few bytes of state across chunks and
//! reports an offset in the chunk it is given.
//!
//! It gives up (the page passes untouched) as soon as the parser would have started the
//! body implicitly (text, or an element that cannot be in `<head>`), or after a bounded
//! number of bytes.

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
    TagName,
    /// Between attributes (spec: before attribute name).
    BeforeAttrName,
    /// In an attribute name.
    AttrName,
    /// After an attribute name, before `=` or the next attribute.
    AfterAttrName,
    /// After `=`, before the value.
    BeforeValue,
    /// In a quoted value, until this quote.
    Quoted(u8),
    /// Just after a quoted value.
    AfterQuoted,
    /// In an unquoted value.
    Unquoted,
    /// After `<!`, with this many `-` seen.
    Markup(u8),
    /// In a comment: `-` just seen, and whether a `!` followed two of them.
    Comment {
        dashes: u8,
        bang: bool,
    },
    /// A doctype, `<?…>` or a malformed tag: until `>`.
    Bogus,
    /// In the raw text of an element.
    RawText(Escape),
    Done,
}

/// Where `<script>` text stands (spec: script data, escaped, double escaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    Plain,
    Escaped,
    DoubleEscaped,
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
    /// The last bytes of raw text, lower-cased, to recognise `</script`, `<!--`, `-->`.
    window: [u8; 12],
    /// `<template>` elements open: their content is inert, a `<body>` there is ignored.
    templates: usize,
    seen: usize,
    limit: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// A byte of the UTF-8 byte order mark at the start of the document.
fn is_bom_byte(at: usize, b: u8) -> bool {
    at < 3 && matches!(b, 0xef | 0xbb | 0xbf)
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
            window: [0; 12],
            templates: 0,
            seen: 0,
            limit,
        }
    }

    fn name(&self) -> Option<&[u8]> {
        (self.name_len <= NAME_MAX).then(|| &self.name[..self.name_len])
    }

    fn push_name(&mut self, b: u8) {
        if self.name_len < NAME_MAX {
            self.name[self.name_len] = b.to_ascii_lowercase();
        }
        self.name_len = (self.name_len + 1).min(NAME_MAX + 1);
    }

    /// Whether the raw text so far ends with `s`.
    fn window_ends_with(&self, s: &[u8]) -> bool {
        self.window.ends_with(s)
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
                    } else if !(is_space(b) || is_bom_byte(start + i, b)) && self.templates == 0 {
                        // Text before any body tag: the parser has started the body.
                        return self.give_up();
                    }
                }
                State::TagOpen => match b {
                    b'!' => self.state = State::Markup(0),
                    b'?' => self.state = State::Bogus,
                    b'/' => {
                        self.name_len = 0;
                        self.end_tag = true;
                        self.state = State::TagName;
                    }
                    b if b.is_ascii_alphabetic() => {
                        self.name_len = 0;
                        self.end_tag = false;
                        self.push_name(b);
                        self.state = State::TagName;
                    }
                    // `<` followed by anything else is text.
                    _ if self.templates > 0 => self.state = State::Data,
                    _ => return self.give_up(),
                },
                State::TagName if self.name_len == 0 => {
                    // `</` then a letter starts an end tag; anything else is ignored to `>`.
                    if b.is_ascii_alphabetic() {
                        self.push_name(b);
                    } else {
                        self.state = State::Bogus;
                        continue;
                    }
                }
                State::TagName => {
                    if is_space(b) || b == b'/' || b == b'>' {
                        if !self.end_tag && self.templates == 0 {
                            let name = self.name();
                            if !name.is_some_and(|n| n == b"body" || HEAD_ELEMENTS.contains(&n)) {
                                return self.give_up();
                            }
                        }
                        self.state = State::BeforeAttrName;
                        // The tag may end right here.
                        continue;
                    }
                    self.push_name(b);
                }
                State::BeforeAttrName => match b {
                    b'>' => {
                        if let Some(at) = self.tag_ends(i) {
                            return at;
                        }
                    }
                    b'/' => {}
                    b if is_space(b) => {}
                    // Even `=` starts a name here.
                    _ => self.state = State::AttrName,
                },
                State::AttrName => match b {
                    b'=' => self.state = State::BeforeValue,
                    b'/' => self.state = State::BeforeAttrName,
                    b'>' => {
                        self.state = State::BeforeAttrName;
                        continue;
                    }
                    b if is_space(b) => self.state = State::AfterAttrName,
                    _ => {}
                },
                State::AfterAttrName => match b {
                    b'=' => self.state = State::BeforeValue,
                    b'/' => self.state = State::BeforeAttrName,
                    b'>' => {
                        self.state = State::BeforeAttrName;
                        continue;
                    }
                    b if is_space(b) => {}
                    _ => self.state = State::AttrName,
                },
                State::BeforeValue => match b {
                    b'"' | b'\'' => self.state = State::Quoted(b),
                    b'>' => {
                        self.state = State::BeforeAttrName;
                        continue;
                    }
                    b if is_space(b) => {}
                    _ => self.state = State::Unquoted,
                },
                State::Quoted(q) => match memchr::memchr(q, &input[i..]) {
                    Some(at) => {
                        i += at;
                        self.state = State::AfterQuoted;
                    }
                    None => i = input.len() - 1,
                },
                State::AfterQuoted => {
                    self.state = State::BeforeAttrName;
                    if !is_space(b) {
                        continue;
                    }
                }
                State::Unquoted => {
                    if is_space(b) {
                        self.state = State::BeforeAttrName;
                    } else if b == b'>' {
                        self.state = State::BeforeAttrName;
                        continue;
                    }
                }
                State::Markup(n) => match (n, b) {
                    (0 | 1, b'-') => self.state = State::Markup(n + 1),
                    // `<!--`: a comment; `<!-->` and `<!--->` already end it.
                    (2, _) => {
                        self.state = State::Comment {
                            dashes: 2,
                            bang: false,
                        };
                        continue;
                    }
                    (_, b'>') => self.state = State::Data,
                    _ => self.state = State::Bogus,
                },
                State::Comment { dashes, bang } => {
                    self.state = match b {
                        b'>' if dashes >= 2 => State::Data,
                        b'-' if bang => State::Comment {
                            dashes: 1,
                            bang: false,
                        },
                        b'-' => State::Comment {
                            dashes: dashes.saturating_add(1),
                            bang: false,
                        },
                        // `--!>` ends a comment too.
                        b'!' if dashes >= 2 && !bang => State::Comment { dashes, bang: true },
                        _ => State::Comment {
                            dashes: 0,
                            bang: false,
                        },
                    };
                }
                State::Bogus => match memchr::memchr(b'>', &input[i..]) {
                    Some(at) => {
                        i += at;
                        self.state = State::Data;
                    }
                    None => i = input.len() - 1,
                },
                State::RawText(escape) => {
                    if is_space(b) || b == b'/' || b == b'>' {
                        let mut end = [0u8; NAME_MAX + 2];
                        end[..2].copy_from_slice(b"</");
                        end[2..2 + self.raw.len()].copy_from_slice(self.raw);
                        let end = &end[..2 + self.raw.len()];
                        let script = self.raw == b"script";
                        if self.window_ends_with(end) {
                            if escape == Escape::DoubleEscaped {
                                // `</script>` inside `<!-- <script>`: back to escaped.
                                self.state = State::RawText(Escape::Escaped);
                            } else {
                                // The element's end tag; it ends at `>`.
                                self.window = [0; 12];
                                self.end_tag = true;
                                self.name_len = 0;
                                self.state = State::BeforeAttrName;
                                continue;
                            }
                        } else if script
                            && escape == Escape::Escaped
                            && self.window_ends_with(b"<script")
                        {
                            self.state = State::RawText(Escape::DoubleEscaped);
                        }
                    }
                    self.window.rotate_left(1);
                    self.window[11] = b.to_ascii_lowercase();
                    if self.raw == b"script" {
                        if escape == Escape::Plain && self.window_ends_with(b"<!--") {
                            self.state = State::RawText(Escape::Escaped);
                        } else if escape != Escape::Plain && self.window_ends_with(b"-->") {
                            self.state = State::RawText(Escape::Plain);
                        }
                    }
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

    /// A tag ends at offset `i`: the banner goes after the body's start tag; raw-text
    /// elements switch the tokenizer; templates nest.
    fn tag_ends(&mut self, i: usize) -> Option<Scan> {
        let mut name = [0u8; NAME_MAX];
        let len = self.name().map_or(0, <[u8]>::len);
        name[..len].copy_from_slice(&self.name[..len]);
        let name = &name[..len];
        let (start, end) = (!self.end_tag, self.end_tag);
        if start && name == b"body" && self.templates == 0 {
            self.state = State::Done;
            return Some(Scan::Insert(i + 1));
        }
        if name == b"template" {
            if start {
                self.templates += 1;
            } else {
                self.templates = self.templates.saturating_sub(1);
            }
        }
        self.state = match RAW_TEXT.iter().find(|r| **r == name) {
            Some(raw) if !end => {
                self.raw = raw;
                self.window = [0; 12];
                State::RawText(Escape::Plain)
            }
            _ => State::Data,
        };
        None
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
            ("<body a=\"1\"b='2'>", "'2'>"),
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
            // found by a hostile review: each put the banner where no browser shows it
            (
                "<head><meta =\" ><title>Case page\" ><body></title></head><body>",
                "</head><body>",
            ),
            (
                "<head><template id=t><body><p>x</p></template></head><body>",
                "</head><body>",
            ),
            (
                "<head><template><template></template><body></template></head><body>",
                "</head><body>",
            ),
            ("<head><!-- note --!></head><body>", "</head><body>"),
            ("<head><!---!><body>", "<!---!><body>"),
            (
                "<script><!--\nvar s = \"<script></script><body>\";\n--></script><body>",
                "--></script><body>",
            ),
            (
                "<script><!-- <script> </script> --></script><body>",
                "--></script><body>",
            ),
            ("<script><!-- x </script><body>", "</script><body>"),
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
            "\u{feff}\u{feff}<body>",
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

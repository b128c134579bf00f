//! Request-target canonicalisation for guest requests: one strict parse of the raw
//! origin-form target into a decoded path and query (what policies match) and the one
//! encoded form guestgate forwards (what the app receives).
//!
//! Everything that a backend framework might read differently from us is refused rather
//! than interpreted: dot segments in any spelling, encoded `/` `\` `;` `#` `?` `%`, raw
//! backslashes, `//` runs, `;` path parameters, control bytes, bad percent-encoding,
//! invalid UTF-8, anything but origin-form, and over-long targets. Whatever passes has
//! exactly one decoded reading, and the forwarded form is rebuilt from that reading, so
//! "what guestgate matched is what the app receives" holds by construction.

use std::fmt::Write as _;

/// Why a target was refused. Each variant is a fixed, low-cardinality reason label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target is longer than the configured limit.
    #[error("request target is too long")]
    TooLong,
    /// Absolute-form, authority-form, asterisk-form or an empty target.
    #[error("request target is not in origin-form")]
    NotOriginForm,
    /// A `#` fragment: browsers never send one, so it is an attack shape.
    #[error("request target carries a fragment")]
    Fragment,
    /// A raw byte that is not allowed in a target (control, space, backslash, non-ASCII).
    #[error("request target has a forbidden raw byte")]
    ForbiddenByte,
    /// `%` not followed by two hex digits.
    #[error("request target has invalid percent-encoding")]
    BadPercentEncoding,
    /// The decoded path or query is not UTF-8 (this also catches overlong `%c0%ae`).
    #[error("request target does not decode to UTF-8")]
    BadUtf8,
    /// An encoded delimiter or control byte (`%2f` `%5c` `%3b` `%23` `%3f` `%25` `%00`...) in the path.
    #[error("request path has an encoded delimiter or control byte")]
    EncodedDelimiter,
    /// A `.` or `..` segment, in any spelling.
    #[error("request path has a dot segment")]
    DotSegment,
    /// A segment some backends read as `..`: only dots (`...`), or ending in a dot or a
    /// space (`..%20`, `x.`), which Windows-family servers strip.
    #[error("request path has a segment read as a dot segment by some servers")]
    DotLikeSegment,
    /// A non-ASCII character whose compatibility form (NFKC) is `.`, `/`, `\` or a space
    /// (fullwidth `．`, one-dot leader `․`, `…`, `／`, `＼`), or a common look-alike of
    /// `/` or `\` (division slash `∕`, set minus `∖`).
    #[error("request path has a look-alike of a path delimiter")]
    LookalikeDelimiter,
    /// An empty segment from a `//` run.
    #[error("request path has an empty segment")]
    EmptySegment,
    /// A raw `;` (path parameters, or a query separator some frameworks honour).
    #[error("request target has a ';'")]
    Semicolon,
    /// A query key that is empty or holds a control byte.
    #[error("request query has a malformed key or value")]
    BadQuery,
}

/// A target that passed every check: the decoded form policies match on, and the
/// encoded form that is forwarded. The two are in one-to-one correspondence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalTarget {
    /// Decoded path, `/`-separated; no segment contains `/`, `\`, `;`, `#`, `?`, `%` or a control byte.
    pub path: String,
    /// Decoded query pairs in arrival order (`+` decoded as space).
    pub query: Vec<(String, String)>,
}

impl CanonicalTarget {
    /// Parses and canonicalises a raw request target (the bytes of the request line).
    pub fn parse(raw: &[u8], max_len: usize) -> Result<Self, TargetError> {
        if raw.len() > max_len {
            return Err(TargetError::TooLong);
        }
        if raw.first() != Some(&b'/') {
            return Err(TargetError::NotOriginForm);
        }
        if raw.contains(&b'#') {
            return Err(TargetError::Fragment);
        }
        if raw.contains(&b';') {
            return Err(TargetError::Semicolon);
        }
        if !raw.iter().all(|&b| raw_byte_allowed(b)) {
            return Err(TargetError::ForbiddenByte);
        }
        let (raw_path, raw_query) = match raw.iter().position(|&b| b == b'?') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        let path = parse_path(raw_path)?;
        let query = match raw_query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        Ok(Self { path, query })
    }

    /// The encoded target forwarded upstream: every segment and query part re-encoded
    /// from its decoded value with one fixed encode set.
    pub fn to_target(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 16);
        encode_path_into(&self.path, &mut out);
        self.push_query(&mut out);
        out
    }

    /// Like [`Self::to_target`], but with another decoded path (a rule's rewrite) and this query.
    pub fn to_target_with_path(&self, decoded_path: &str) -> String {
        let mut out = String::with_capacity(decoded_path.len() + 16);
        encode_path_into(decoded_path, &mut out);
        self.push_query(&mut out);
        out
    }

    fn push_query(&self, out: &mut String) {
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode_into(k, &QUERY_RAW, out);
            out.push('=');
            encode_into(v, &QUERY_RAW, out);
        }
    }

    /// How many times a query key occurs (keys compare exactly).
    pub fn query_count(&self, key: &str) -> usize {
        self.query.iter().filter(|(k, _)| k == key).count()
    }

    /// Whether any query key is a method override: `_method` in any case and in every
    /// spelling qs, PHP and Rails read as it (`_method[]`, `[_method]`, ` _method`,
    /// `.method`; see [`app_key`]).
    pub fn has_method_override_key(&self) -> bool {
        self.query
            .iter()
            .any(|(k, _)| reads_as(&app_key(k).to_ascii_lowercase(), "_method"))
    }
}

/// A query key as the common app parsers read it, so a rule's key can be compared with
/// what the app will see: leading spaces dropped (PHP), a leading `[name]` unwrapped
/// (qs reads `[case_id]=44` as `case_id`), and `.` or space before the first `[` read as
/// `_` (PHP reads `case.id` and `case id` as `case_id`).
pub fn app_key(key: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let mut k: Cow<'_, str> = Cow::Borrowed(key.trim_start_matches(' '));
    if k.starts_with('[') {
        if let Some(end) = k.find(']') {
            k = Cow::Owned(format!("{}{}", &k[1..end], &k[end + 1..]));
        }
    }
    let head_end = k.find('[').unwrap_or(k.len());
    if k[..head_end].contains(['.', ' ']) {
        let head = k[..head_end].replace(['.', ' '], "_");
        k = Cow::Owned(format!("{head}{}", &k[head_end..]));
    }
    k
}

/// Whether an app reads query key `app` (already through [`app_key`]) as the key `name`
/// or as a member of it: `name`, `name[]`, `name[0]`, `name[x]`, and the unclosed
/// `name[`, all of which qs, PHP and Rails merge into `name`.
pub fn reads_as(app: &str, name: &str) -> bool {
    app == name
        || (app.len() > name.len() && app.starts_with(name) && app.as_bytes()[name.len()] == b'[')
}

/// Raw bytes a target may hold before decoding: visible ASCII except `\`, the bytes every
/// browser percent-encodes (`"`, `<`, `>`, `` ` ``: pingora's parser refuses them too, so
/// `policy explain` and the proxy agree) and the ones checked separately (`#`, `;`).
/// Space, controls, DEL and raw non-ASCII are refused: browsers percent-encode them, and
/// backends disagree on what they mean raw.
fn raw_byte_allowed(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'\\' | b'"' | b'<' | b'>' | b'`')
}

/// Bytes a decoded path segment may not hold: control bytes, DEL, and the delimiters
/// `/ \ ; # ? %` (an encoded one would split or re-decode differently downstream).
static SEGMENT_FORBIDDEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[0x7f] = true;
    let delimiters = b"/\\;#?%";
    let mut i = 0;
    while i < delimiters.len() {
        table[delimiters[i] as usize] = true;
        i += 1;
    }
    table
};

/// Bytes a path may hold for its decoded form to be the bytes themselves: printable
/// ASCII (so valid UTF-8, with no look-alikes), no `%` (so nothing to decode), and none
/// of the bytes a segment may not hold. Most paths are all such bytes.
static PLAIN_PATH_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        table[b] = !SEGMENT_FORBIDDEN[b] || b == b'/' as usize;
        b += 1;
    }
    table
};

fn parse_path(raw: &[u8]) -> Result<String, TargetError> {
    // raw starts with '/': split the rest into segments.
    let rest = raw.get(1..).unwrap_or_default();
    if rest.iter().all(|&b| PLAIN_PATH_BYTE[usize::from(b)]) {
        return parse_plain_path(raw);
    }
    let mut path = String::with_capacity(raw.len());
    let mut segments = crate::split::split(rest, b'/').peekable();
    while let Some(seg) = segments.next() {
        path.push('/');
        if seg.is_empty() {
            // "/" alone and a trailing slash are fine; an empty segment in the middle is a `//` run.
            if segments.peek().is_none() {
                continue;
            }
            return Err(TargetError::EmptySegment);
        }
        // Most segments hold no escape: they are checked as they arrived, not copied.
        let decoded = if seg.contains(&b'%') {
            std::borrow::Cow::Owned(percent_decode(seg, false)?)
        } else {
            std::borrow::Cow::Borrowed(seg)
        };
        if decoded.iter().any(|&b| SEGMENT_FORBIDDEN[usize::from(b)]) {
            return Err(TargetError::EncodedDelimiter);
        }
        let text = std::str::from_utf8(&decoded).map_err(|_| TargetError::BadUtf8)?;
        if text == "." || text == ".." {
            return Err(TargetError::DotSegment);
        }
        if text.bytes().all(|b| b == b'.') || text.ends_with(['.', ' ']) {
            return Err(TargetError::DotLikeSegment);
        }
        // Look-alikes are non-ASCII by definition: an ASCII segment skips the NFKC check.
        if !text.is_ascii() && text.chars().any(is_lookalike_delimiter) {
            return Err(TargetError::LookalikeDelimiter);
        }
        path.push_str(text);
    }
    Ok(path)
}

/// [`parse_path`] for a path of plain bytes only: the same segment checks (empty, dot,
/// dot-like) in the same order, without decoding or copying segment by segment, since
/// the decoded path is the raw one.
fn parse_plain_path(raw: &[u8]) -> Result<String, TargetError> {
    let text = std::str::from_utf8(raw).map_err(|_| TargetError::BadUtf8)?;
    let mut segments = crate::split::split_str(text.get(1..).unwrap_or_default(), b'/').peekable();
    while let Some(seg) = segments.next() {
        if seg.is_empty() {
            if segments.peek().is_none() {
                continue;
            }
            return Err(TargetError::EmptySegment);
        }
        if seg == "." || seg == ".." {
            return Err(TargetError::DotSegment);
        }
        if seg.bytes().all(|b| b == b'.') || seg.ends_with(['.', ' ']) {
            return Err(TargetError::DotLikeSegment);
        }
    }
    Ok(text.to_owned())
}

/// Non-ASCII characters a normalising backend (NFKC, IDNA-style mapping, a filesystem on
/// Windows) may turn into `.`, `/`, `\` or a space, which path segments must not hide.
fn is_lookalike_delimiter(c: char) -> bool {
    use unicode_normalization::UnicodeNormalization;
    // Look-alikes NFKC leaves alone but confusable tables (and some servers) map.
    const CONFUSABLE: &[char] = &[
        '\u{2215}', // DIVISION SLASH
        '\u{2044}', // FRACTION SLASH
        '\u{29F8}', // BIG SOLIDUS
        '\u{2216}', // SET MINUS
        '\u{29F9}', // BIG REVERSE SOLIDUS
        '\u{3002}', // IDEOGRAPHIC FULL STOP (IDNA maps it to `.`)
    ];
    !c.is_ascii()
        && (CONFUSABLE.contains(&c)
            || std::iter::once(c)
                .nfkc()
                .any(|n| matches!(n, '.' | '/' | '\\' | ' ' | '\u{3002}')))
}

fn parse_query(raw: &[u8]) -> Result<Vec<(String, String)>, TargetError> {
    let mut pairs = Vec::new();
    for piece in raw.split(|&b| b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (k, v) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &b""[..]),
        };
        let key = decode_query_part(k)?;
        if key.is_empty() {
            return Err(TargetError::BadQuery);
        }
        let value = decode_query_part(v)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Parses an `application/x-www-form-urlencoded` body with the same strict rules as a
/// query string.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, TargetError> {
    if body
        .iter()
        .any(|&b| !raw_byte_allowed(b) || b == b'#' || b == b';')
    {
        return Err(TargetError::ForbiddenByte);
    }
    parse_query(body)
}

fn decode_query_part(raw: &[u8]) -> Result<String, TargetError> {
    let decoded = percent_decode(raw, true)?;
    // `#` decoded from %23 is listed among attack shapes (DESIGN §3); control bytes
    // (%00, %0a, %0d) split log lines and headers in backends.
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'#') {
        return Err(TargetError::BadQuery);
    }
    String::from_utf8(decoded).map_err(|_| TargetError::BadUtf8)
}

fn percent_decode(raw: &[u8], plus_is_space: bool) -> Result<Vec<u8>, TargetError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&c| hex_val(c));
                let lo = raw.get(i + 2).and_then(|&c| hex_val(c));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(TargetError::BadPercentEncoding),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Characters left raw in a path segment: unreserved plus the sub-delims and `:@`
/// that carry no structure in a path (`;` is refused earlier, `/` separates). Not `+`:
/// some apps decode a path's raw `+` as a space, the way a query is decoded, where
/// guestgate matched a `+`; `%2B` reads as `+` to every decoder.
const PATH_SAFE: &[u8] = b"-._~!$&'()*,=:@";
/// Characters left raw in a query key or value: `&`, `=`, `+` and `;` are always
/// encoded, since each is a separator in some framework.
const QUERY_SAFE: &[u8] = b"-._~!$'()*,:@/?";

/// [`PATH_SAFE`] and [`QUERY_SAFE`] with the ASCII letters and digits, as tables: one
/// lookup per byte instead of a search of the list.
static PATH_RAW: [bool; 256] = raw_table(PATH_SAFE);
static QUERY_RAW: [bool; 256] = raw_table(QUERY_SAFE);

const fn raw_table(safe: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < safe.len() {
        table[safe[i] as usize] = true;
        i += 1;
    }
    table
}

/// [`PATH_RAW`] with `/` left raw too: a decoded segment never holds a `/` (parsing
/// refuses an encoded one), so every `/` of a decoded path separates segments.
static PATH_RAW_WITH_SLASH: [bool; 256] = {
    let mut table = PATH_RAW;
    table[b'/' as usize] = true;
    table
};

fn encode_path_into(decoded_path: &str, out: &mut String) {
    // The decoded path is "/seg/seg...": each segment encoded, the separators kept, in
    // one pass over the whole path.
    encode_into(decoded_path, &PATH_RAW_WITH_SLASH, out);
}

fn encode_into(text: &str, raw: &[bool; 256], out: &mut String) {
    let raw = |b: u8| raw[usize::from(b)];
    // Runs that stay raw are copied whole; only the bytes between them are escaped.
    let mut rest = text;
    while !rest.is_empty() {
        let run = rest.bytes().position(|b| !raw(b)).unwrap_or(rest.len());
        out.push_str(&rest[..run]);
        let Some(&b) = rest.as_bytes().get(run) else {
            return;
        };
        let _ = write!(out, "%{b:02X}");
        // The escaped byte may open a multi-byte character: escape through to the next
        // character boundary, so `rest` stays a `str`.
        let mut next = run + 1;
        while !rest.is_char_boundary(next) {
            let _ = write!(out, "%{:02X}", rest.as_bytes()[next]);
            next += 1;
        }
        rest = &rest[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 2048;

    fn ok(raw: &str) -> String {
        match CanonicalTarget::parse(raw.as_bytes(), MAX) {
            Ok(t) => t.to_target(),
            Err(e) => panic!("{raw:?} refused: {e:?}"),
        }
    }

    fn err(raw: &[u8]) -> TargetError {
        match CanonicalTarget::parse(raw, MAX) {
            Ok(t) => panic!("{:?} accepted as {:?}", String::from_utf8_lossy(raw), t),
            Err(e) => e,
        }
    }

    /// The hostile table: every entry must be refused with exactly this reason.
    /// Grouped by class; the classes are counted in the closing notes.
    pub(crate) const HOSTILE: &[(&[u8], TargetError)] = {
        use TargetError::*;
        &[
            // 1. dot segments, every spelling
            (b"/api/cases/1/../2", DotSegment),
            (b"/api/cases/1/./documents", DotSegment),
            (b"/api/cases/1/%2e%2e/2", DotSegment),
            (b"/api/cases/1/%2E%2E/2", DotSegment),
            (b"/api/cases/1/.%2e/2", DotSegment),
            (b"/api/cases/1/%2e./2", DotSegment),
            (b"/api/cases/1/%2E./2", DotSegment),
            (b"/api/cases/1/%2e/documents", DotSegment),
            (b"/..", DotSegment),
            (b"/.", DotSegment),
            (b"/api/..", DotSegment),
            (b"/api/%2e%2e", DotSegment),
            // 2. encoded slash and backslash
            (b"/api/cases/1%2f..%2f2/documents", EncodedDelimiter),
            (b"/api/cases/1%2F2", EncodedDelimiter),
            (b"/api/cases/1%5c..%5c2", EncodedDelimiter),
            (b"/api/cases/1%5C2", EncodedDelimiter),
            (b"/api%2fcases/1", EncodedDelimiter),
            // 3. raw backslash
            (b"/api/cases/1\\..\\2", ForbiddenByte),
            (b"\\api\\cases", NotOriginForm),
            (b"/api\\cases", ForbiddenByte),
            // 4. `//` runs
            (b"//api/cases/1", EmptySegment),
            (b"/api//cases/1", EmptySegment),
            (b"/api/cases///1", EmptySegment),
            (b"//evil.example/api", EmptySegment),
            // 5. `;` path parameters and `..;`
            (b"/api/cases/1;jsessionid=x", Semicolon),
            (b"/api/cases/1/..;/2", Semicolon),
            (b"/api;/cases/1", Semicolon),
            (b"/api/cases/1%3b/2", EncodedDelimiter),
            (b"/api/cases/1%3B..%3B/2", EncodedDelimiter),
            (b"/api/cases?x=1;y=2", Semicolon),
            // 6. NUL and control bytes, raw and encoded
            (b"/api/cases/1%00", EncodedDelimiter),
            (b"/api/cases/1%00.json", EncodedDelimiter),
            (b"/api/cases/1%0a", EncodedDelimiter),
            (b"/api/cases/1%0d%0aX-Injected:1", EncodedDelimiter),
            (b"/api/cases/1%7f", EncodedDelimiter),
            (b"/api/cases/1%09", EncodedDelimiter),
            (b"/api/cases/\x001", ForbiddenByte),
            (b"/api/cases/1\x7f", ForbiddenByte),
            (b"/api/cases/1\t", ForbiddenByte),
            (b"/api/cases/1 2", ForbiddenByte),
            // what browsers always percent-encode, and pingora's own parser refuses
            (b"/static/a<b.css", ForbiddenByte),
            (b"/static/a`b.css", ForbiddenByte),
            (b"/static/a.css?q=\"x\"", ForbiddenByte),
            (b"/static/a.css?q=<x>", ForbiddenByte),
            (b"/api/cases?q=%00", BadQuery),
            (b"/api/cases?q=%0d%0a", BadQuery),
            (b"/api/cases?%0a=1", BadQuery),
            // 7. invalid percent-encoding
            (b"/api/cases/1%", BadPercentEncoding),
            (b"/api/cases/1%2", BadPercentEncoding),
            (b"/api/cases/1%zz", BadPercentEncoding),
            (b"/api/cases/1%%32", BadPercentEncoding),
            (b"/api/cases?q=%g1", BadPercentEncoding),
            // 8. invalid UTF-8, overlong encodings, raw non-ASCII
            (b"/api/cases/%ff", BadUtf8),
            (b"/api/cases/%c0%ae%c0%ae/2", BadUtf8),
            (b"/api/cases/%e0%80%ae", BadUtf8),
            (b"/api/cases?q=%fe", BadUtf8),
            (b"/api/cases/\xc3\xa9", ForbiddenByte),
            // 9. other encoded delimiters: fragment, query, double encoding
            (b"/api/cases/1%23/2", EncodedDelimiter),
            (b"/api/cases/1%3f/2", EncodedDelimiter),
            (b"/api/cases/1%3F", EncodedDelimiter),
            (b"/api/cases/%252e%252e/2", EncodedDelimiter),
            (b"/api/cases/1%252f2", EncodedDelimiter),
            (b"/api/cases?q=%23x", BadQuery),
            // 10. fragments
            (b"/api/cases/1#/../2", Fragment),
            (b"/api/cases/1#", Fragment),
            (b"/api/cases/1?x=1#y", Fragment),
            // 11. absolute-form, authority-form, asterisk-form, empty
            (b"http://app.internal/api/cases/1", NotOriginForm),
            (b"https://app.internal/api/cases/1", NotOriginForm),
            (b"HTTP://app/api", NotOriginForm),
            (b"app.internal:443", NotOriginForm),
            (b"*", NotOriginForm),
            (b"", NotOriginForm),
            (b"?x=1", NotOriginForm),
            // 12. malformed query keys
            (b"/api/cases?=1", BadQuery),
            (b"/api/cases?&=", BadQuery),
            // 13. segments some servers read as `..`: only dots, a trailing dot or space
            (b"/api/cases/.../2", DotLikeSegment),
            (b"/api/cases/..../2", DotLikeSegment),
            (b"/api/cases/%2e%2e%2e/2", DotLikeSegment),
            (b"/api/cases/..%20/2", DotLikeSegment),
            (b"/api/cases/.%20/2", DotLikeSegment),
            (b"/api/cases/1./2", DotLikeSegment),
            (b"/api/cases/1%20", DotLikeSegment),
            (b"/api/cases/..%2e%20", DotLikeSegment),
            // 14. non-ASCII look-alikes of `.`, `/` and `\` (NFKC and confusables)
            (b"/api/cases/%ef%bc%8e%ef%bc%8e/2", LookalikeDelimiter), // fullwidth ．．
            (b"/api/cases/%e2%80%a4%e2%80%a4/2", LookalikeDelimiter), // one-dot leader ․․
            (b"/api/cases/%e2%80%a5/2", LookalikeDelimiter),          // two-dot leader ‥
            (b"/api/cases/%e2%80%a6/2", LookalikeDelimiter),          // ellipsis …
            (b"/api/cases/%ef%b9%92x/2", LookalikeDelimiter),         // small full stop ﹒
            (b"/api/cases/1%ef%bc%8f2", LookalikeDelimiter),          // fullwidth solidus ／
            (b"/api/cases/1%ef%bc%bc2", LookalikeDelimiter), // fullwidth reverse solidus ＼
            (b"/api/cases/1%ef%b9%a82", LookalikeDelimiter), // small reverse solidus ﹨
            (b"/api/cases/1%e2%88%952", LookalikeDelimiter), // division slash ∕
            (b"/api/cases/1%e2%81%842", LookalikeDelimiter), // fraction slash ⁄
            (b"/api/cases/1%e2%88%962", LookalikeDelimiter), // set minus ∖
            (b"/api/cases/%e3%80%82%e3%80%82/2", LookalikeDelimiter), // ideographic full stop 。
            (b"/api/cases/%ef%bd%a1/2", LookalikeDelimiter), // halfwidth ｡
            (b"/api/cases/1%e3%80%80", LookalikeDelimiter),  // ideographic space
            (b"/api/cases/1%c2%a0", LookalikeDelimiter),     // no-break space
        ]
    };

    #[test]
    fn hostile_targets_are_refused_with_their_reason() {
        assert!(HOSTILE.len() >= 60, "table has {} entries", HOSTILE.len());
        for (raw, want) in HOSTILE {
            let got = err(raw);
            assert_eq!(
                got,
                *want,
                "target {:?}: got {got:?}, want {want:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn over_long_targets_get_414() {
        let long = format!("/{}", "a".repeat(MAX));
        assert_eq!(err(long.as_bytes()), TargetError::TooLong);
        let exact = format!("/{}", "a".repeat(MAX - 1));
        assert_eq!(ok(&exact), exact);
    }

    #[test]
    fn benign_targets_canonicalise() {
        let table: &[(&str, &str)] = &[
            ("/", "/"),
            (
                "/api/cases/42/versions/3/documents",
                "/api/cases/42/versions/3/documents",
            ),
            ("/cases/42/", "/cases/42/"),
            // unreserved characters are decoded; case of escapes does not matter
            ("/api/cases/%34%32", "/api/cases/42"),
            ("/docs/a%2db", "/docs/a-b"),
            // non-ASCII data stays one segment, encoded in upper-case hex
            ("/docs/%c3%a9t%C3%A9", "/docs/%C3%A9t%C3%A9"),
            ("/docs/%e2%82%ac", "/docs/%E2%82%AC"),
            // raw characters backends decode the same way are forwarded encoded
            ("/docs/a|b", "/docs/a%7Cb"),
            // `+` is a `+` in a path, sent so that no app reads it as a space
            ("/docs/a+b", "/docs/a%2Bb"),
            ("/docs/a%2bb", "/docs/a%2Bb"),
            ("/docs/.hidden", "/docs/.hidden"),
            ("/docs/a.b.c", "/docs/a.b.c"),
            // query: + is a space, separators in values stay encoded, empties drop
            ("/search?q=a+b&page=2", "/search?q=a%20b&page=2"),
            ("/search?q=a%2Bb", "/search?q=a%2Bb"),
            ("/search?q=a%26case_id%3D9", "/search?q=a%26case_id%3D9"),
            ("/search?&&q=1&", "/search?q=1"),
            ("/search?flag", "/search?flag="),
            ("/search?", "/search"),
            ("/search?next=/a/b?c", "/search?next=/a/b?c"),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), *want, "raw {raw:?}");
        }
    }

    #[test]
    fn decoded_forms_are_what_policies_see() {
        let t = CanonicalTarget::parse(b"/api/cases/%34%32?case_id=4%32&x=a+b", MAX).unwrap();
        assert_eq!(t.path, "/api/cases/42");
        assert_eq!(
            t.query,
            vec![("case_id".into(), "42".into()), ("x".into(), "a b".into())]
        );
        assert_eq!(t.query_count("case_id"), 1);
        // case of path segments is kept exactly
        let t = CanonicalTarget::parse(b"/API/Cases/42", MAX).unwrap();
        assert_eq!(t.path, "/API/Cases/42");
    }

    #[test]
    fn method_override_query_keys_are_detected_in_any_case() {
        for raw in [
            "/a?_method=DELETE",
            "/a?_METHOD=put",
            "/a?x=1&_Method=PATCH",
            "/a?_method[]=DELETE",
            "/a?_METHOD[0]=put",
            // qs's leading bracket, PHP's leading space and `.` for `_`
            "/a?[_method]=DELETE",
            "/a?+_method=DELETE",
            "/a?.method=DELETE",
            "/a?_method[=DELETE",
        ] {
            let t = CanonicalTarget::parse(raw.as_bytes(), MAX).unwrap();
            assert!(t.has_method_override_key(), "{raw}");
        }
        let t = CanonicalTarget::parse(b"/a?method=x", MAX).unwrap();
        assert!(!t.has_method_override_key());
    }

    #[test]
    fn rewrite_keeps_the_canonical_query() {
        let t = CanonicalTarget::parse(b"/a/b?page=2", MAX).unwrap();
        assert_eq!(
            t.to_target_with_path("/internal/a b"),
            "/internal/a%20b?page=2"
        );
    }

    /// The routines as first written, byte by byte: the reference the faster ones are
    /// held to.
    mod reference {
        use super::super::*;

        pub fn parse_path(raw: &[u8]) -> Result<String, TargetError> {
            let rest = &raw[1..];
            let mut path = String::with_capacity(raw.len());
            let segments: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
            let last = segments.len() - 1;
            for (i, seg) in segments.iter().enumerate() {
                path.push('/');
                if seg.is_empty() {
                    if i == last {
                        continue;
                    }
                    return Err(TargetError::EmptySegment);
                }
                let decoded = percent_decode(seg, false)?;
                if decoded
                    .iter()
                    .any(|&b| b < 0x20 || b == 0x7f || b"/\\;#?%".contains(&b))
                {
                    return Err(TargetError::EncodedDelimiter);
                }
                let text = std::str::from_utf8(&decoded).map_err(|_| TargetError::BadUtf8)?;
                if text == "." || text == ".." {
                    return Err(TargetError::DotSegment);
                }
                if text.bytes().all(|b| b == b'.') || text.ends_with(['.', ' ']) {
                    return Err(TargetError::DotLikeSegment);
                }
                if text.chars().any(is_lookalike_delimiter) {
                    return Err(TargetError::LookalikeDelimiter);
                }
                path.push_str(text);
            }
            Ok(path)
        }

        pub fn encode_into(text: &str, safe: &[u8], out: &mut String) {
            for &b in text.as_bytes() {
                if b.is_ascii_alphanumeric() || safe.contains(&b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn target_bytes() -> impl Strategy<Value = Vec<u8>> {
            // Mostly path-ish bytes with the interesting delimiters over-represented.
            let atom = prop_oneof![
                Just(b"/".to_vec()),
                Just(b".".to_vec()),
                Just(b"..".to_vec()),
                Just(b"%2e".to_vec()),
                Just(b"%2f".to_vec()),
                Just(b"%25".to_vec()),
                Just(b"%c3%a9".to_vec()),
                Just(b"?".to_vec()),
                Just(b"&".to_vec()),
                Just(b"=".to_vec()),
                Just(b"+".to_vec()),
                Just(b";".to_vec()),
                Just(b"#".to_vec()),
                Just(b"\\".to_vec()),
                "[a-zA-Z0-9_~-]{1,4}".prop_map(|s| s.into_bytes()),
                any::<u8>().prop_map(|b| vec![b]),
                (any::<u8>()).prop_map(|b| format!("%{b:02x}").into_bytes()),
            ];
            proptest::collection::vec(atom, 0..24).prop_map(|parts| {
                let mut v = b"/".to_vec();
                for p in parts {
                    v.extend_from_slice(&p);
                }
                v
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// Canonical form is a fixed point, and what is forwarded parses back to
            /// exactly what was matched.
            #[test]
            fn canonical_form_is_a_fixed_point(raw in target_bytes()) {
                if let Ok(t) = CanonicalTarget::parse(&raw, MAX) {
                    let forwarded = t.to_target();
                    let again = CanonicalTarget::parse(forwarded.as_bytes(), MAX * 4)
                        .expect("forwarded target must itself be canonical");
                    prop_assert_eq!(&again, &t);
                    prop_assert_eq!(again.to_target(), forwarded);
                }
            }

            /// The segment-at-a-time parser and the run-copying encoder give exactly what
            /// the plain byte-by-byte versions they replaced gave, refusals included.
            #[test]
            fn fast_paths_equal_the_plain_routines(raw in target_bytes(), any_text in any::<String>()) {
                let rest = raw.split(|&b| b == b'?').next().unwrap_or(&raw);
                prop_assert_eq!(parse_path(rest), reference::parse_path(rest));
                // A decoded path is encoded segment by segment, its separators kept.
                if let Ok(decoded) = parse_path(rest) {
                    let mut fast = String::new();
                    encode_path_into(&decoded, &mut fast);
                    let plain: Vec<String> = decoded
                        .split('/')
                        .map(|seg| {
                            let mut out = String::new();
                            reference::encode_into(seg, PATH_SAFE, &mut out);
                            out
                        })
                        .collect();
                    prop_assert_eq!(fast, plain.join("/"));
                }
                // Decoded text may hold any character, 2- to 4-byte ones included.
                let text = format!("{}{any_text}", String::from_utf8_lossy(&raw));
                for (safe, table) in [(PATH_SAFE, &PATH_RAW), (QUERY_SAFE, &QUERY_RAW)] {
                    let (mut fast, mut plain) = (String::new(), String::new());
                    encode_into(&text, table, &mut fast);
                    reference::encode_into(&text, safe, &mut plain);
                    prop_assert_eq!(fast, plain);
                }
            }

            /// Nothing that passes can carry a dot segment, a `//` run or a smuggled
            /// delimiter into the decoded path policies match on.
            #[test]
            fn accepted_paths_are_clean(raw in target_bytes()) {
                if let Ok(t) = CanonicalTarget::parse(&raw, MAX) {
                    let segs: Vec<&str> = t.path.split('/').skip(1).collect();
                    let n = segs.len();
                    for (i, s) in segs.iter().enumerate() {
                        prop_assert!(*s != "." && *s != "..");
                        prop_assert!(s.is_empty() || !(s.ends_with('.') || s.ends_with(' ')));
                        prop_assert!(!s.is_empty() || i + 1 == n);
                        prop_assert!(!s.contains(['\\', ';', '#', '?', '%', '\0']));
                    }
                }
            }
        }
    }
}

//! Message framing, read from the request head exactly as the client sent it: which
//! body the request announces (none, a length, or chunked) and whether that has one
//! reading only. pingora silently drops `Content-Length` when `Transfer-Encoding` is also
//! present, reconciles `Content-Length: 97, 97` to 97 and forwards the list as sent, and
//! strips fragments from the target, so the parsed header cannot show these shapes:
//! this module reads the bytes on the wire.
//!
//! Only the framings RFC 9112 §6 defines pass, in their one strict spelling: a single
//! `Content-Length` of digits, or a single `Transfer-Encoding: chunked`. Whatever passes
//! is described by a [`Body`], from which guestgate writes the framing headers it sends
//! upstream itself; the client's spelling is never forwarded.

use crate::header_names::same_header;

/// The body a request announces, as guestgate will forward it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (no framing header, or `Content-Length: 0`).
    None,
    /// Exactly this many bytes (`Content-Length`, or an HTTP/2 `content-length`).
    Length(u64),
    /// Chunked (HTTP/1.1), or HTTP/2 DATA frames without a `content-length`.
    Chunked,
}

impl Body {
    /// Whether any body bytes follow the head.
    pub fn is_some(self) -> bool {
        !matches!(self, Self::None | Self::Length(0))
    }
}

/// Methods that carry no content by definition (RFC 9110 §9.3): a body on one of them
/// is not read by many apps and becomes the next request on the connection (§9.3.1
/// names the smuggling risk).
pub const BODILESS_METHODS: &[&str] = &["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"];

/// Whether `method` carries no body by definition. Without regard to case: methods are
/// case-sensitive in HTTP, but many frameworks upper-case them, and would then read
/// `get` as a GET that never reads its body.
pub fn is_bodiless(method: &str) -> bool {
    BODILESS_METHODS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Why a request head is refused (the connection is closed after the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthAndTransferEncoding,
    /// More than one `Content-Length` field line (even equal ones).
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    /// A `Content-Length` that is not one run of digits: a list, a sign, inner space, empty.
    #[error("Content-Length is not a single number")]
    ContentLengthInvalid,
    /// A `Content-Length` above the configured maximum.
    #[error("Content-Length is too large")]
    ContentLengthTooLarge,
    /// More than one `Transfer-Encoding` field line.
    #[error("more than one Transfer-Encoding")]
    DuplicateTransferEncoding,
    /// `Transfer-Encoding` that names a coding guestgate does not forward (501).
    #[error("Transfer-Encoding other than chunked")]
    TransferEncodingUnsupported,
    /// `Transfer-Encoding` that is not exactly `chunked` once (`Chunked`, `chunked, chunked`, empty).
    #[error("Transfer-Encoding is not exactly `chunked`")]
    TransferEncodingInvalid,
    /// A header line continued on the next line (obs-fold, RFC 9112 §5.2).
    #[error("folded header line")]
    ObsFold,
    /// Zero or several `Host` headers.
    #[error("missing or repeated Host")]
    HostCount,
    /// A `Host` that is not `host[:port]`.
    #[error("malformed Host")]
    HostInvalid,
    /// A header spelled with `_` that some backends read as a framing or routing header
    /// (`Content_Length`, `Transfer_Encoding`, `Host`).
    #[error("framing header spelled with '_'")]
    ConfusableHeaderName,
    /// A body on a method that carries none (GET, HEAD, DELETE, OPTIONS, TRACE).
    #[error("a body on a method that carries none")]
    BodyOnBodilessMethod,
    /// A chunked body (or HTTP/2 DATA without `content-length`) for an app configured as
    /// unable to read chunked bodies (`upstream.chunked_request_bodies = false`): 411.
    #[error("a body without a length for an app that needs one")]
    LengthRequired,
    /// A `Connection` header that nominates `Host` or a forwarding header
    /// (`X-Forwarded-For`, `-Host`, `-Proto`), names something that is not a token (a
    /// pseudo-header, a quoted name), or lists ten options or more. The headers a proxy
    /// fills in cannot be made hop-by-hop, and pingora refuses such a request when it
    /// prepares the upstream copy, after the decision: guestgate refuses it first, so the
    /// decision, the audit line and the answer agree.
    #[error("a Connection header that names a header the proxy sets, or is not a list of tokens")]
    ConnectionNomination,
    /// The head cannot be read (no request line, a line without a colon).
    #[error("malformed request head")]
    Malformed,
}

/// What the raw head says, once its framing is known to be unambiguous.
#[derive(Debug, PartialEq, Eq)]
pub struct RawHead<'a> {
    /// The method as sent.
    pub method: &'a [u8],
    /// The request-target bytes exactly as sent (fragment included).
    pub target: &'a [u8],
    /// The one `Host` value (trimmed), absent only on HTTP/2 (`:authority` stands in).
    pub host: Option<&'a [u8]>,
    /// The body the head announces. On HTTP/2 the frames decide instead (see the caller).
    pub body: Body,
}

/// Checks the raw head (request line + header lines) of one request. `http2`: the head
/// is pingora's rendering of an HTTP/2 request, where `:authority` stands in for `Host`.
pub fn inspect(
    raw: &[u8],
    http2: bool,
    max_content_length: u64,
) -> Result<RawHead<'_>, FramingError> {
    // Lines are read up to the first empty one, the end of the head: whatever follows
    // it (a body, a pipelined request) is never looked at.
    let mut lines = crate::split::split(raw, b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(FramingError::Malformed)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(_version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::Malformed);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(FramingError::Malformed);
    }
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut host: Option<&[u8]> = None;
    let (mut cl_lines, mut te_lines, mut host_lines) = (0usize, 0usize, 0usize);
    let mut nominations = 0usize;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(FramingError::ObsFold);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(FramingError::Malformed);
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(FramingError::Malformed);
        }
        let value = trim_ows(&line[colon + 1..]);
        if same_header(name, "connection") {
            nominations += count_connection_options(value)?;
            if nominations >= MAX_CONNECTION_OPTIONS {
                return Err(FramingError::ConnectionNomination);
            }
            continue;
        }
        let slot = if same_header(name, "content-length") {
            cl_lines += 1;
            &mut content_length
        } else if same_header(name, "transfer-encoding") {
            te_lines += 1;
            &mut transfer_encoding
        } else if same_header(name, "host") {
            host_lines += 1;
            &mut host
        } else {
            continue;
        };
        if name.contains(&b'_') {
            return Err(FramingError::ConfusableHeaderName);
        }
        *slot = Some(value);
    }
    if cl_lines > 0 && te_lines > 0 {
        return Err(FramingError::ContentLengthAndTransferEncoding);
    }
    if cl_lines > 1 {
        return Err(FramingError::DuplicateContentLength);
    }
    if te_lines > 1 {
        return Err(FramingError::DuplicateTransferEncoding);
    }
    if host_lines > 1 || (host_lines == 0 && !http2) {
        return Err(FramingError::HostCount);
    }
    if let Some(h) = host {
        if !valid_host(h) {
            return Err(FramingError::HostInvalid);
        }
    }
    let body = match (content_length, transfer_encoding) {
        (Some(v), _) => match parse_length(v)? {
            n if n > max_content_length => return Err(FramingError::ContentLengthTooLarge),
            0 => Body::None,
            n => Body::Length(n),
        },
        (None, Some(v)) => {
            check_transfer_encoding(v)?;
            Body::Chunked
        }
        (None, None) => Body::None,
    };
    Ok(RawHead {
        method,
        target,
        host,
        body,
    })
}

/// The longest header name the `http` crate (and so pingora) accepts.
const MAX_HEADER_NAME_LEN: usize = (1 << 16) - 1;

/// How many `Connection` options pingora refuses at: it forwards nine at most.
pub const MAX_CONNECTION_OPTIONS: usize = 10;

/// Headers that must reach the app as guestgate or pingora set them, so no `Connection`
/// option may name them (pingora refuses exactly these; guestgate sets `Host` and
/// `X-Forwarded-For` itself).
const UNNOMINABLE: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// The options one `Connection` value lists (RFC 9110 §7.6.1: a list of tokens), each
/// trimmed, empty ones skipped: what framing checks here and what the guest head drops.
pub fn connection_options(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|o| !o.is_empty())
}

/// The number of options one `Connection` value lists, or why it cannot be forwarded.
fn count_connection_options(value: &[u8]) -> Result<usize, FramingError> {
    let mut n = 0;
    for option in connection_options(value) {
        // A token that is no header name (over 64 KiB) is refused by pingora too; its
        // length is the one way a token fails that parse (a test holds the two alike),
        // checked without parsing: browsers send `Connection: keep-alive` every time.
        if !option.iter().all(|&b| is_tchar(b))
            || option.len() > MAX_HEADER_NAME_LEN
            || UNNOMINABLE.iter().any(|h| same_header(option, h))
        {
            return Err(FramingError::ConnectionNomination);
        }
        n += 1;
    }
    Ok(n)
}

/// `Content-Length = 1*DIGIT`: no list, no sign, no inner space, at most 19 digits.
fn parse_length(v: &[u8]) -> Result<u64, FramingError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::ContentLengthInvalid);
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Exactly `chunked`, once. Any other coding name, alone or listed, is a coding guestgate
/// does not forward (501); a case variant, a repeat or an empty value is malformed (400).
fn check_transfer_encoding(v: &[u8]) -> Result<(), FramingError> {
    if v == b"chunked" {
        return Ok(());
    }
    let codings: Vec<&[u8]> = v.split(|&b| b == b',').map(trim_ows).collect();
    if codings
        .iter()
        .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"))
    {
        return Err(FramingError::TransferEncodingUnsupported);
    }
    Err(FramingError::TransferEncodingInvalid)
}

/// `host[:port]` with a registered name, IPv4 address or bracketed IPv6 literal; no
/// userinfo, path, list or percent-encoding.
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..=close], None),
            [b':', port @ ..] => (&v[..=close], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.first() == Some(&b'[')
            || host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// RFC 9110 `tchar`: the bytes of a method or a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Strips optional whitespace (SP, HTAB) at both ends, as field values allow (RFC 9110 §5.5).
fn trim_ows(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 30;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    fn body_of(lines: &[&str]) -> Result<Body, FramingError> {
        inspect(&head(lines), false, MAX).map(|h| h.body)
    }

    #[test]
    fn nothing_after_the_head_is_read() {
        let mut h = head(&["GET /a HTTP/1.1", "Host: x"]);
        h.extend_from_slice(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(inspect(&h, false, MAX).map(|r| r.body), Ok(Body::None));
        let lf_only = b"GET /a HTTP/1.1\r\nHost: x\n\nContent-Length: 5\r\n\r\n";
        assert_eq!(inspect(lf_only, false, MAX).map(|r| r.body), Ok(Body::None));
    }

    #[test]
    fn ordinary_heads_pass_with_their_raw_target_and_body() {
        let h = head(&["GET /a#frag HTTP/1.1", "Host: x", "Accept: */*"]);
        let r = inspect(&h, false, MAX).unwrap();
        assert_eq!(r.target, b"/a#frag");
        assert_eq!(r.method, b"GET");
        assert_eq!(r.host, Some(&b"x"[..]));
        assert_eq!(r.body, Body::None);
        let ok: &[(&[&str], Body)] = &[
            (
                &["POST /a HTTP/1.1", "host: x", "Content-Length: 5"],
                Body::Length(5),
            ),
            (
                &["POST /a HTTP/1.1", "host: x", "Content-Length:5"],
                Body::Length(5),
            ),
            (
                &["POST /a HTTP/1.1", "host: x", "Content-Length: \t5 "],
                Body::Length(5),
            ),
            (
                &["POST /a HTTP/1.1", "host: x", "Content-Length: 007"],
                Body::Length(7),
            ),
            (
                &["POST /a HTTP/1.1", "host: x", "Content-Length: 0"],
                Body::None,
            ),
            (
                &["GET /a HTTP/1.1", "host: x", "Content-Length: 0"],
                Body::None,
            ),
            (
                &["POST /a HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"],
                Body::Chunked,
            ),
            (
                &[
                    "POST /a HTTP/1.1",
                    "Host: x",
                    "transfer-encoding:  chunked ",
                ],
                Body::Chunked,
            ),
            (&["POST /a HTTP/1.1", "Host: x"], Body::None),
            // options guestgate (and pingora) strip: nothing they name is the proxy's
            (
                &[
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: close, X-Guest-Email",
                ],
                Body::None,
            ),
            (
                &[
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: ,keep-alive,, TE ,",
                ],
                Body::None,
            ),
            (
                &[
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: a, b, c, d, e",
                    "Connection: f, g, h, i",
                ],
                Body::None,
            ),
        ];
        for (lines, want) in ok {
            assert_eq!(body_of(lines), Ok(*want), "{lines:?}");
        }
    }

    proptest::proptest! {
        /// A token is a header name to the `http` crate (which pingora parses
        /// `Connection` options with) exactly when framing's length check says so.
        #[test]
        fn a_token_is_a_header_name_by_its_length_alone(
            token in "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,40}",
            pad in proptest::prop_oneof![0usize..4, 65_490usize..65_540],
        ) {
            let t = format!("{token}{}", "a".repeat(pad));
            proptest::prop_assert_eq!(
                http::HeaderName::from_bytes(t.as_bytes()).is_ok(),
                t.len() <= MAX_HEADER_NAME_LEN
            );
        }
    }

    #[test]
    fn a_connection_option_too_long_for_a_header_name_is_refused() {
        let line = |n: usize| format!("Connection: {}", "a".repeat(n));
        let (longest, too_long) = (line(65_535), line(65_536));
        assert_eq!(
            body_of(&["GET / HTTP/1.1", "Host: x", &longest]),
            Ok(Body::None)
        );
        assert_eq!(
            body_of(&["GET / HTTP/1.1", "Host: x", &too_long]),
            Err(FramingError::ConnectionNomination)
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        use FramingError::*;
        let post = |extra: &'static [&'static str]| -> Vec<&'static str> {
            let mut v = vec!["POST / HTTP/1.1", "Host: x"];
            v.extend_from_slice(extra);
            v
        };
        let table: &[(Vec<&str>, FramingError)] = &[
            (
                post(&["Content-Length: 4", "Transfer-Encoding: chunked"]),
                ContentLengthAndTransferEncoding,
            ),
            (
                post(&["transfer-encoding: chunked", "content-length: 4"]),
                ContentLengthAndTransferEncoding,
            ),
            (
                post(&["Content-Length: 4", "Content-Length: 5"]),
                DuplicateContentLength,
            ),
            (
                post(&["Content-Length: 4", "Content-Length: 4"]),
                DuplicateContentLength,
            ),
            (post(&["Content-Length: 97, 97"]), ContentLengthInvalid),
            (post(&["Content-Length: 97,97"]), ContentLengthInvalid),
            (post(&["Content-Length: +5"]), ContentLengthInvalid),
            (post(&["Content-Length: -5"]), ContentLengthInvalid),
            (post(&["Content-Length: 5 5"]), ContentLengthInvalid),
            (post(&["Content-Length: 0x5"]), ContentLengthInvalid),
            (post(&["Content-Length: 5e2"]), ContentLengthInvalid),
            (post(&["Content-Length: "]), ContentLengthInvalid),
            (
                post(&["Content-Length: 99999999999999999999"]),
                ContentLengthInvalid,
            ),
            (post(&["Content-Length: 1073741825"]), ContentLengthTooLarge),
            (post(&["Content-Length: \u{b3}"]), ContentLengthInvalid),
            (
                post(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
                DuplicateTransferEncoding,
            ),
            (
                post(&["Transfer-Encoding: gzip, chunked"]),
                TransferEncodingUnsupported,
            ),
            (
                post(&["Transfer-Encoding: chunked, identity"]),
                TransferEncodingUnsupported,
            ),
            (
                post(&["Transfer-Encoding: identity"]),
                TransferEncodingUnsupported,
            ),
            (
                post(&["Transfer-Encoding: xchunked"]),
                TransferEncodingUnsupported,
            ),
            (
                post(&["Transfer-Encoding: chunked;q=1"]),
                TransferEncodingUnsupported,
            ),
            (
                post(&["Transfer-Encoding: Chunked"]),
                TransferEncodingInvalid,
            ),
            (
                post(&["Transfer-Encoding: CHUNKED"]),
                TransferEncodingInvalid,
            ),
            (
                post(&["Transfer-Encoding: chunked, chunked"]),
                TransferEncodingInvalid,
            ),
            (
                post(&["Transfer-Encoding: chunked,"]),
                TransferEncodingInvalid,
            ),
            (post(&["Transfer-Encoding: "]), TransferEncodingInvalid),
            (post(&["Transfer-Encoding: chunked", " identity"]), ObsFold),
            (post(&["Content-Length: 4", "\tX: y"]), ObsFold),
            (vec!["GET / HTTP/1.1", "Host: x", "Host: y"], HostCount),
            (vec!["GET / HTTP/1.1", "Host: x", "host: y"], HostCount),
            (vec!["GET / HTTP/1.1"], HostCount),
            (vec!["GET / HTTP/1.1", "Host: a@b"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a, b"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a b"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a/b"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a:b"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a:"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: "], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: [::1"], HostInvalid),
            (vec!["GET / HTTP/1.1", "Host: a%2eb"], HostInvalid),
            (
                vec!["GET / HTTP/1.1", "Host: x", "Connection: Host"],
                ConnectionNomination,
            ),
            (
                vec![
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: close, x-forwarded-for",
                ],
                ConnectionNomination,
            ),
            (
                vec!["GET / HTTP/1.1", "Host: x", "connection: X_Forwarded_Host"],
                ConnectionNomination,
            ),
            (
                vec!["GET / HTTP/1.1", "Host: x", "Connection: X-FORWARDED-PROTO"],
                ConnectionNomination,
            ),
            (
                vec!["GET / HTTP/1.1", "Host: x", "Connection: :authority"],
                ConnectionNomination,
            ),
            (
                vec![
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: \"X-Forwarded-For\"",
                ],
                ConnectionNomination,
            ),
            (
                vec!["GET / HTTP/1.1", "Host: x", "Connection: a b"],
                ConnectionNomination,
            ),
            (
                vec![
                    "GET / HTTP/1.1",
                    "Host: x",
                    "Connection: a, b, c, d, e",
                    "Connection: f, g, h, i, j",
                ],
                ConnectionNomination,
            ),
            (post(&["Content_Length: 4"]), ConfusableHeaderName),
            (post(&["Transfer_Encoding: chunked"]), ConfusableHeaderName),
            (post(&["Content-Length : 4"]), Malformed),
            (post(&["no colon here"]), Malformed),
            (vec!["GET /  HTTP/1.1", "Host: x"], Malformed),
            (vec!["G(T / HTTP/1.1", "Host: x"], Malformed),
        ];
        for (lines, want) in table {
            assert_eq!(inspect(&head(lines), false, MAX), Err(*want), "{lines:?}");
        }
    }

    #[test]
    fn hosts_and_http2_heads() {
        for ok in [
            "x",
            "cases.example.com",
            "127.0.0.1:8080",
            "[::1]:8443",
            "[::1]",
            "a-b_c~d",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        // HTTP/2: no Host line needed (`:authority`), but a second one is still refused.
        let h = head(&["GET / HTTP/2", "accept: */*"]);
        assert_eq!(inspect(&h, true, MAX).unwrap().host, None);
        let h = head(&["GET / HTTP/2", "host: a", "host: b"]);
        assert_eq!(inspect(&h, true, MAX), Err(FramingError::HostCount));
    }

    #[test]
    fn only_the_head_is_read_and_statuses_follow_the_rfcs() {
        // Body bytes after the blank line are not header lines.
        let mut raw = head(&["POST / HTTP/1.1", "Host: x", "Content-Length: 20"]);
        raw.extend_from_slice(b"Content-Length: 9\r\n\r\n");
        assert_eq!(inspect(&raw, false, MAX).unwrap().body, Body::Length(20));
        assert!(is_bodiless("GET") && is_bodiless("TRACE") && !is_bodiless("POST"));
        assert!(is_bodiless("get") && is_bodiless("Delete") && !is_bodiless("post"));
        assert!(Body::Chunked.is_some() && Body::Length(1).is_some() && !Body::None.is_some());
    }
}

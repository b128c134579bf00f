//! Message framing checks on the raw request head, as the client sent it. pingora
//! silently drops `Content-Length` when `Transfer-Encoding` is also present and strips
//! fragments from the target, so the parsed header cannot show those shapes: this
//! module reads the bytes on the wire instead and refuses smuggling shapes outright.

/// Why a request head is refused (400, connection closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthAndTransferEncoding,
    /// More than one `Content-Length` (even equal ones).
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    /// More than one `Transfer-Encoding` header line.
    #[error("more than one Transfer-Encoding")]
    DuplicateTransferEncoding,
    /// Zero or several `Host` headers.
    #[error("missing or repeated Host")]
    HostCount,
    /// A header spelled with `_` that some backends read as a framing or routing header
    /// (`Content_Length`, `Transfer_Encoding`, `Host`).
    #[error("framing header spelled with '_'")]
    ConfusableHeaderName,
    /// The head cannot be read (no request line).
    #[error("malformed request head")]
    Malformed,
}

impl FramingError {
    /// Fixed reason label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ContentLengthAndTransferEncoding => "framing_cl_and_te",
            Self::DuplicateContentLength => "framing_duplicate_content_length",
            Self::DuplicateTransferEncoding => "framing_duplicate_transfer_encoding",
            Self::HostCount => "framing_host_count",
            Self::ConfusableHeaderName => "framing_confusable_header",
            Self::Malformed => "framing_malformed",
        }
    }
}

/// What the raw head says, once framing is known to be unambiguous.
#[derive(Debug, PartialEq, Eq)]
pub struct RawHead<'a> {
    /// The request-target bytes exactly as sent (fragment included).
    pub target: &'a [u8],
    /// Whether the request announces a body.
    pub has_body: bool,
}

/// Checks the raw head (request line + header lines) of one request.
pub fn inspect(raw: &[u8]) -> Result<RawHead<'_>, FramingError> {
    inspect_version(raw, false)
}

/// Like [`inspect`]; for HTTP/2 the head is pingora's rendering of the parsed request,
/// where `:authority` may stand in for `Host` (a second `Host` is still refused).
pub fn inspect_version(raw: &[u8], http2: bool) -> Result<RawHead<'_>, FramingError> {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(FramingError::Malformed)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(_method), Some(target), Some(_version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::Malformed);
    };
    let (mut cl, mut te, mut host) = (0usize, 0usize, 0usize);
    let mut body_length_nonzero = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(FramingError::Malformed);
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        for (want, counter) in [
            ("content-length", &mut cl),
            ("transfer-encoding", &mut te),
            ("host", &mut host),
        ] {
            if same_header(name, want) {
                if name.contains(&b'_') {
                    return Err(FramingError::ConfusableHeaderName);
                }
                *counter += 1;
                if want == "content-length" && value != b"0" {
                    body_length_nonzero = true;
                }
            }
        }
    }
    if cl > 0 && te > 0 {
        return Err(FramingError::ContentLengthAndTransferEncoding);
    }
    if cl > 1 {
        return Err(FramingError::DuplicateContentLength);
    }
    if te > 1 {
        return Err(FramingError::DuplicateTransferEncoding);
    }
    if host > 1 || (host == 0 && !http2) {
        return Err(FramingError::HostCount);
    }
    Ok(RawHead {
        target,
        has_body: te > 0 || body_length_nonzero,
    })
}

/// Whether a header name, as sent, is `canonical` (lower-case, `-`-separated) when read
/// case-insensitively with `_` as `-`: the way CGI-style backends (`HTTP_X_GUEST_EMAIL`)
/// see it. Every check on a header name that matters for security goes through this.
pub fn same_header(name: &[u8], canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical.bytes())
            .all(|(&a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    #[test]
    fn ordinary_heads_pass_with_their_raw_target() {
        let h = head(&["GET /a#frag HTTP/1.1", "Host: x", "Accept: */*"]);
        let r = inspect(&h).unwrap();
        assert_eq!(r.target, b"/a#frag");
        assert!(!r.has_body);
        let h = head(&["POST /a HTTP/1.1", "host: x", "Content-Length: 5"]);
        assert!(inspect(&h).unwrap().has_body);
        let h = head(&["POST /a HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"]);
        assert!(inspect(&h).unwrap().has_body);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        use FramingError::*;
        let table: &[(&[&str], FramingError)] = &[
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Content-Length: 4",
                    "Transfer-Encoding: chunked",
                ],
                ContentLengthAndTransferEncoding,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "transfer-encoding: chunked",
                    "content-length: 4",
                ],
                ContentLengthAndTransferEncoding,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Content-Length: 4",
                    "Content-Length: 5",
                ],
                DuplicateContentLength,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Content-Length: 4",
                    "Content-Length: 4",
                ],
                DuplicateContentLength,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Transfer-Encoding: chunked",
                    "Transfer-Encoding: chunked",
                ],
                DuplicateTransferEncoding,
            ),
            (&["GET / HTTP/1.1", "Host: x", "Host: y"], HostCount),
            (&["GET / HTTP/1.1"], HostCount),
            (
                &["POST / HTTP/1.1", "Host: x", "Content_Length: 4"],
                ConfusableHeaderName,
            ),
            (
                &["POST / HTTP/1.1", "Host: x", "Transfer_Encoding: chunked"],
                ConfusableHeaderName,
            ),
            (&["GET / HTTP/1.1", "Host: x", "host: y"], HostCount),
            (&["GET /  HTTP/1.1", "Host: x"], Malformed),
        ];
        for (lines, want) in table {
            assert_eq!(inspect(&head(lines)), Err(*want), "{lines:?}");
        }
    }
}

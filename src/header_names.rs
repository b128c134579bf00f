//! Header names guestgate treats specially, as data: the hop-by-hop headers, the URL and
//! client overrides stripped from guest requests, the method-override headers refused for
//! guests, and the identity headers guestgate owns. Plus the one comparison every check
//! on a name goes through, which reads `_` as `-` the way CGI-style backends do. The edits
//! on a pingora request live in `proxy/headers.rs`; this is a leaf.

/// Hop-by-hop headers: meaningful for one connection only. Never forwarded from a guest,
/// never set or removed by a profile (framing and connection handling are guestgate's).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // HTTP/1.1's upgrade to HTTP/2 (RFC 7540, 3.2.1): connection-specific as well.
    "http2-settings",
];

/// Headers that name a URL or a client, which some backend frameworks trust: removed from
/// every guest request (guestgate sets `X-Forwarded-For` itself).
pub const URL_AND_CLIENT: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-envoy-original-path",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];

/// Any header starting with this is removed from guest requests (`X-Forwarded-For`,
/// `-Host`, `-Proto`, `-Prefix`, `-Uri`, ...).
pub const FORWARDED_PREFIX: &str = "x-forwarded-";

/// Headers clients use to override the method; refused for guests.
pub const METHOD_OVERRIDE: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a header name, as sent, is `canonical` (lower-case, `-`-separated) when read
/// case-insensitively with any other character than a letter or a digit as `-`: the way
/// CGI-style backends see it (`X_Guest_Email` and, under lighttpd, `X.Guest~Email` both
/// become `HTTP_X_GUEST_EMAIL`). Every check on a header name that matters for security
/// goes through this.
pub fn same_header(name: &[u8], canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical.bytes())
            .all(|(&a, b)| a.to_ascii_lowercase() == b || (!a.is_ascii_alphanumeric() && b == b'-'))
}

/// Request headers whose value guestgate writes itself; besides the hop-by-hop ones.
pub const MANAGED_REQUEST: &[&str] = &["host", "content-length", "cookie"];

/// Response headers that describe the bytes guestgate sends (the banner changes them);
/// besides the hop-by-hop ones.
pub const MANAGED_RESPONSE: &[&str] = &["content-length", "content-encoding"];

/// Whether a request header is guestgate's to write: a profile cannot set or remove it.
pub fn is_managed(name: &str) -> bool {
    MANAGED_REQUEST
        .iter()
        .chain(HOP_BY_HOP)
        .any(|h| same_header(name.as_bytes(), h))
}

/// Whether a response header is guestgate's to write.
pub fn is_managed_response(name: &str) -> bool {
    MANAGED_RESPONSE
        .iter()
        .chain(HOP_BY_HOP)
        .any(|h| same_header(name.as_bytes(), h))
}

/// Whether a guest request must lose this header: hop-by-hop, URL or client override.
pub fn is_stripped_for_guests(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| same_header(name, h))
        || URL_AND_CLIENT.iter().any(|h| same_header(name, h))
        || (name.len() > FORWARDED_PREFIX.len()
            && same_header(&name[..FORWARDED_PREFIX.len()], FORWARDED_PREFIX))
}

/// Whether a header overrides the request method.
pub fn is_method_override(name: &[u8]) -> bool {
    METHOD_OVERRIDE.iter().any(|h| same_header(name, h))
}

/// The identity headers guestgate owns (every header a profile sets, plus
/// `identity.strip_headers`) and its cookie: no incoming copy of either reaches the app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedHeaders {
    names: Vec<String>,
    cookie: String,
}

impl OwnedHeaders {
    /// `names` in any spelling (kept lower-case, every other character than a letter or a
    /// digit as `-`); `cookie` is the cookie name without prefix.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, cookie: &str) -> Self {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|h| {
                h.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '-'
                        }
                    })
                    .collect()
            })
            .collect();
        names.sort();
        names.dedup();
        Self {
            names,
            cookie: cookie.to_string(),
        }
    }

    /// Whether an incoming header, in any spelling, is one guestgate owns.
    pub fn owns(&self, name: &[u8]) -> bool {
        self.names.iter().any(|o| same_header(name, o))
    }

    /// guestgate's cookie name, without prefix.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_and_underscores() {
        assert!(same_header(b"X_Guest-EMAIL", "x-guest-email"));
        assert!(same_header(b"X.Guest~Email", "x-guest-email"));
        assert!(!same_header(b"X-Guest-Emai1", "x-guest-email"));
        assert!(OwnedHeaders::new(["X.Custom_ID"], "gg").owns(b"x-custom-id"));
        assert!(!same_header(b"x-guest-emails", "x-guest-email"));
        let owned = OwnedHeaders::new(["X-Guest-Email"], "gg");
        assert!(owned.owns(b"x_guest_email") && !owned.owns(b"x-guest"));
        for stripped in [
            &b"Connection"[..],
            b"X_Forwarded_Host",
            b"x-forwarded-for",
            b"Forwarded",
            b"TE",
        ] {
            assert!(is_stripped_for_guests(stripped), "{stripped:?}");
        }
        assert!(!is_stripped_for_guests(b"x-forwarded-") && !is_stripped_for_guests(b"accept"));
        assert!(is_method_override(b"X_HTTP_Method_Override"));
    }
}

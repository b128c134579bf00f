//! Header edits on the request sent upstream: guestgate's cookie and identity headers
//! never arrive from outside (any spelling, `_` included), guest requests lose every
//! header that names a URL, a client or a hop, and then get the profile's headers.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderName;
use pingora::http::RequestHeader;

use crate::framing::{same_header, Body};
use crate::session;

/// Headers removed from every guest request: URL overrides some frameworks trust,
/// client-identity headers guestgate cannot vouch for, and hop-by-hop headers (so a
/// `Connection: X-Guest-Email` cannot make a later hop drop what guestgate adds).
const GUEST_STRIP: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-envoy-original-path",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];
/// Any header starting with this is removed from guest requests (`X-Forwarded-For`,
/// `-Host`, `-Proto`, `-Prefix`, `-Uri`, ...).
const GUEST_STRIP_PREFIX: &str = "x-forwarded-";

/// Which headers guestgate owns, and its cookie.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    owned: Vec<String>,
    cookie_name: String,
}

impl HeaderRules {
    /// Owned = every header a profile sets plus the configured extras.
    pub fn new(owned: impl IntoIterator<Item = HeaderName>, cookie_name: &str) -> Self {
        // HeaderName is already lower-case; a profile's header with `_` is refused at load.
        let mut owned: Vec<String> = owned
            .into_iter()
            .map(|h| h.as_str().replace('_', "-"))
            .collect();
        owned.sort();
        owned.dedup();
        Self {
            owned,
            cookie_name: cookie_name.to_string(),
        }
    }

    /// For every request: drop guestgate's cookie and any incoming owned header.
    pub fn strip_owned(&self, req: &mut RequestHeader) {
        self.remove_where(req, |n| self.owned.iter().any(|o| same_header(n, o)));
        let cookies: Vec<Vec<u8>> = req
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        if cookies.is_empty() {
            return;
        }
        req.remove_header("cookie");
        for c in cookies {
            if let Some(kept) = session::strip_cookie(&c, &self.cookie_name) {
                // A value built from a valid header value minus a cookie stays valid.
                let _ = req.append_header("cookie", kept);
            }
        }
    }

    /// For guest requests only: drop URL-override, client-identity and hop headers.
    pub fn strip_guest(&self, req: &mut RequestHeader) {
        self.remove_where(req, |n| {
            GUEST_STRIP.iter().any(|g| same_header(n, g))
                || (n.len() > GUEST_STRIP_PREFIX.len()
                    && same_header(&n[..GUEST_STRIP_PREFIX.len()], GUEST_STRIP_PREFIX))
        });
    }

    fn remove_where(&self, req: &mut RequestHeader, drop: impl Fn(&[u8]) -> bool) {
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|k| drop(k.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in doomed {
            req.remove_header(&name);
        }
    }
}

/// Writes the framing headers sent upstream from what guestgate parsed, replacing the
/// client's spelling: `Content-Length: N` in canonical digits, or
/// `Transfer-Encoding: chunked`; nothing for a bodiless method without a body, and
/// `Content-Length: 0` for an empty body on a method that carries one.
pub fn write_framing(req: &mut RequestHeader, body: Body, bodiless: bool) -> pingora::Result<()> {
    req.remove_header(&CONTENT_LENGTH);
    req.remove_header(&TRANSFER_ENCODING);
    match body {
        Body::Chunked => req.insert_header(TRANSFER_ENCODING, "chunked"),
        Body::Length(n) if n > 0 => req.insert_header(CONTENT_LENGTH, n),
        _ if bodiless => Ok(()),
        _ => req.insert_header(CONTENT_LENGTH, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn names(r: &RequestHeader) -> Vec<String> {
        let mut v: Vec<String> = r.headers.keys().map(|k| k.as_str().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn owned_headers_go_in_every_spelling() {
        let rules = HeaderRules::new([HeaderName::from_static("x-guest-email")], "gg");
        let mut r = req(&[
            ("X-Guest-Email", "spoof@x"),
            ("x_guest_email", "spoof@x"),
            ("X_Guest-Email", "spoof@x"),
            ("x-guest-emails", "kept"),
            ("cookie", "gg=secret; app=1"),
        ]);
        rules.strip_owned(&mut r);
        assert_eq!(names(&r), ["cookie", "x-guest-emails"]);
        assert_eq!(r.headers.get("cookie").unwrap(), "app=1");
    }

    #[test]
    fn framing_headers_are_written_not_copied() {
        let framed = |method: &str, headers: &[(&str, &str)], body: Body| {
            let mut r = RequestHeader::build(method, b"/", None).unwrap();
            for (k, v) in headers {
                r.append_header(k.to_string(), *v).unwrap();
            }
            write_framing(&mut r, body, crate::framing::is_bodiless(method)).unwrap();
            let mut v: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            framed("POST", &[("Content-Length", "007")], Body::Length(7)),
            ["content-length: 7"]
        );
        assert_eq!(
            framed("POST", &[("Transfer-Encoding", "chunked")], Body::Chunked),
            ["transfer-encoding: chunked"]
        );
        assert_eq!(framed("POST", &[], Body::None), ["content-length: 0"]);
        assert_eq!(
            framed("GET", &[("Content-Length", "0")], Body::None),
            Vec::<String>::new()
        );
        // HTTP/2 DATA without a content-length travels chunked on HTTP/1.1.
        assert_eq!(
            framed("PATCH", &[("accept", "*/*")], Body::Chunked),
            ["accept: */*", "transfer-encoding: chunked"]
        );
    }

    #[test]
    fn guest_requests_lose_url_client_and_hop_headers() {
        let rules = HeaderRules::new([], "gg");
        let mut r = req(&[
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-Url", "/admin"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X_Forwarded_Host", "evil"),
            ("X-Forwarded-Prefix", "/x"),
            ("X-Envoy-Original-Path", "/admin"),
            ("Connection", "close, X-Guest-Email"),
            ("Upgrade", "websocket"),
            ("Accept", "text/html"),
        ]);
        rules.strip_guest(&mut r);
        assert_eq!(names(&r), ["accept"]);
    }
}

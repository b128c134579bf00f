//! Header edits on the request sent upstream: guestgate's cookie and identity headers
//! never arrive from outside (any spelling, `_` included), guest requests lose every
//! header that names a URL, a client or a hop, and then get the profile's headers, the
//! signed scope assertion, and an `Accept-Encoding` the banner can work with.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderName;
use pingora::http::RequestHeader;

use crate::assertion::{Asserted, AssertionKeys};
use crate::decision::{AllowedRequest, Verdict};
use crate::framing::{self, Body};
use crate::header_names::{is_stripped_for_guests, OwnedHeaders};
use crate::session;

/// The edits a forwarded request gets, in order: guestgate's cookie and owned headers go
/// from every request; a guest request also loses URL, client and hop headers, then gets
/// the profile's headers, the configured `Host`, `X-Forwarded-For` and the canonical
/// target; last, the framing headers guestgate parsed, so no strip can touch them.
pub fn edit(
    req: &mut RequestHeader,
    verdict: &Verdict,
    owned: &OwnedHeaders,
    upstream_host: &http::HeaderValue,
    client: Option<&crate::client_addr::IpText>,
) -> pingora::Result<()> {
    let body = match verdict {
        Verdict::Allow(a) => a.body,
        Verdict::Pass { body } => *body,
        // Nothing else is forwarded; refuse rather than send an undecided request.
        Verdict::Refuse { .. } => {
            return Err(pingora::Error::new(pingora::ErrorType::InternalError))
        }
    };
    strip_owned(req, owned);
    if let Verdict::Allow(allowed) = verdict {
        strip_for_guest(req);
        for name in &allowed.remove_headers {
            req.remove_header(name);
        }
        req.insert_header(http::header::HOST, upstream_host.clone())?;
        if let Some(ip) = client {
            req.insert_header("x-forwarded-for", ip.as_str())?;
        }
        // Cloned, never moved out of the verdict: pingora runs this filter again on a
        // fresh copy of the client's request when it retries on a new connection, and
        // that copy must get the same headers and target.
        for (name, value) in &allowed.set_headers {
            req.insert_header(name.clone(), value.clone())?;
        }
        req.set_uri(allowed.target.clone());
    }
    let bodiless = framing::is_bodiless(req.method.as_str());
    write_framing(req, body, bodiless)
}

/// Adds the signed scope assertion to an allowed guest request: who, which share and
/// rule, and exactly the method and target the app receives.
pub fn assert_scope(
    req: &mut RequestHeader,
    keys: &AssertionKeys,
    header: &HeaderName,
    allowed: &AllowedRequest,
    request_id: &str,
    now: u64,
) -> pingora::Result<()> {
    let guest = &allowed.guest;
    let Some(share) = &guest.share else {
        // An allow always names its share; refuse rather than assert nothing.
        return Err(pingora::Error::new(pingora::ErrorType::InternalError));
    };
    // Read from the request after `edit` set it: exactly the target the app receives.
    let target = req
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let token = keys.sign(
        now,
        &Asserted {
            request_id,
            email: &guest.email,
            share: &share.id,
            case: &share.case,
            version: &share.version,
            profile: &share.profile,
            rule: guest.rule.as_deref().unwrap_or(""),
            method: req.method.as_str(),
            target,
        },
    );
    req.insert_header(header.clone(), token)
}

/// Codings guestgate can undo on an HTML response.
const DECODABLE: &[&str] = &["gzip", "x-gzip", "deflate", "br", "identity"];

/// The `Accept-Encoding` of an allowed guest request whose profile shows the banner:
/// `identity` for a page request (its HTML would be decoded to insert the banner anyway,
/// so compressing it upstream only costs CPU twice), otherwise the client's codings that
/// guestgate can decode, should the answer turn out to be HTML.
pub fn banner_accept_encoding(
    accept: Option<&[u8]>,
    accept_encoding: Option<&[u8]>,
) -> http::HeaderValue {
    let identity = http::HeaderValue::from_static("identity");
    let wants_html =
        accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
    let Some(ae) = accept_encoding.and_then(|v| std::str::from_utf8(v).ok()) else {
        return identity;
    };
    if wants_html {
        return identity;
    }
    let kept: Vec<&str> = ae
        .split(',')
        .map(str::trim)
        .filter(|t| {
            let coding = t.split(';').next().unwrap_or("").trim();
            DECODABLE.iter().any(|d| d.eq_ignore_ascii_case(coding))
        })
        .collect();
    if kept.is_empty() {
        return identity;
    }
    http::HeaderValue::from_str(&kept.join(", ")).unwrap_or(identity)
}

/// For every request: drops guestgate's cookie (any spelling) and any incoming copy of a
/// header guestgate owns.
pub fn strip_owned(req: &mut RequestHeader, owned: &OwnedHeaders) {
    remove_where(req, |n| owned.owns(n));
    let cookies: Vec<(http::HeaderValue, session::Stripped)> = req
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| {
            (
                v.clone(),
                session::strip_cookie(v.as_bytes(), owned.cookie()),
            )
        })
        .collect();
    if cookies
        .iter()
        .all(|(_, s)| *s == session::Stripped::Unchanged)
    {
        return;
    }
    req.remove_header("cookie");
    for (value, stripped) in cookies {
        let kept = match stripped {
            session::Stripped::Unchanged => Some(value),
            // Bytes of a valid header value, minus whole pairs, stay a valid header value.
            session::Stripped::Removed(rest) => {
                rest.and_then(|r| http::HeaderValue::from_bytes(&r).ok())
            }
        };
        if let Some(v) = kept {
            let _ = req.append_header("cookie", v);
        }
    }
}

/// For guest requests only: drops URL-override, client-identity and hop-by-hop headers.
pub fn strip_for_guest(req: &mut RequestHeader) {
    remove_where(req, is_stripped_for_guests);
}

fn remove_where(req: &mut RequestHeader, drop: impl Fn(&[u8]) -> bool) {
    // Most requests carry nothing to drop: look before collecting (and allocating).
    if !req.headers.keys().any(|k| drop(k.as_str().as_bytes())) {
        return;
    }
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
        let owned = OwnedHeaders::new(["x-guest-email"], "gg");
        let mut r = req(&[
            ("X-Guest-Email", "spoof@x"),
            ("x_guest_email", "spoof@x"),
            ("X_Guest-Email", "spoof@x"),
            ("x-guest-emails", "kept"),
            ("cookie", "gg=secret; app=1"),
        ]);
        strip_owned(&mut r, &owned);
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
        strip_for_guest(&mut r);
        assert_eq!(names(&r), ["accept"]);
    }

    #[test]
    fn the_banner_asks_for_codings_it_can_undo() {
        let ae = |accept: Option<&str>, ae: Option<&str>| {
            banner_accept_encoding(accept.map(str::as_bytes), ae.map(str::as_bytes))
                .to_str()
                .unwrap()
                .to_string()
        };
        let page = Some("text/html,application/xhtml+xml,*/*;q=0.8");
        assert_eq!(ae(page, Some("gzip, deflate, br, zstd")), "identity");
        assert_eq!(
            ae(Some("application/json"), Some("gzip, deflate, br, zstd")),
            "gzip, deflate, br"
        );
        assert_eq!(ae(Some("*/*"), Some("zstd;q=1, br;q=0.5")), "br;q=0.5");
        assert_eq!(ae(Some("*/*"), Some("zstd, *")), "identity");
        assert_eq!(
            ae(Some("*/*"), None),
            "identity",
            "none sent: identity, never a guess"
        );
    }
}

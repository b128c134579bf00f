//! Header edits on the request sent upstream: guestgate's cookie and identity headers
//! never arrive from outside (any spelling, `_` included), guest requests lose every
//! header that names a URL, a client or a hop, and then get the profile's headers, the
//! signed scope assertion, and an `Accept-Encoding` the banner can work with.

use http::header::{CONTENT_LENGTH, COOKIE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{ErrorType::InternalError, OrErr};

use crate::assertion::{Asserted, AssertionKeys};
use crate::decision::AllowedRequest;
use crate::framing::{self, Body};
use crate::header_names::{is_stripped_for_guests, same_header, OwnedHeaders};
use crate::session;

/// A request passed through (no guest session): guestgate's cookie and owned headers go,
/// in any spelling, and the framing headers are written from what guestgate parsed. The
/// rest, header case included, is the client's.
pub fn pass_through(
    req: &mut RequestHeader,
    owned: &OwnedHeaders,
    body: Body,
) -> pingora::Result<()> {
    strip_owned(req, owned);
    write_framing(req, body)
}

/// The head an allowed guest request reaches the app with, built anew rather than edited
/// from the client's: the decided method and canonical target; the client's headers minus
/// guestgate's cookie and owned headers (any spelling), URL, client and hop headers, the
/// profile's removals, `Host` and the framing headers; then the configured `Host`,
/// `X-Forwarded-For`, the profile's headers and the framing headers guestgate parsed.
///
/// Built into a map sized once, with names the client's request already parsed: editing
/// pingora's copy instead re-parses every inserted name, keeps a second, case-preserving
/// map in step, and grows both maps (cloned at their exact size) as headers are added.
/// Header names reach the app in lower case (`Host` and the framing headers titled), as
/// they do from any HTTP/2 client; names are case-insensitive (RFC 9110, 5.1).
///
/// Called again, on a fresh copy of the client's request, when pingora retries on a new
/// connection: everything comes from the verdict by reference, so every copy is the same.
pub fn guest_request(
    req: &mut RequestHeader,
    allowed: &AllowedRequest,
    owned: &OwnedHeaders,
    upstream_host: &HeaderValue,
    client: Option<&crate::client_addr::IpText>,
) -> pingora::Result<http::request::Parts> {
    let extra = allowed.set_headers.len() + 4;
    let mut headers =
        HeaderMap::try_with_capacity(req.headers.len() + extra).or_err(InternalError, TOO_MANY)?;
    let nominated = Nominated::of(&req.headers)?;
    for (name, value) in &req.headers {
        let n = name.as_str().as_bytes();
        if *name == HOST
            || *name == CONTENT_LENGTH
            || *name == TRANSFER_ENCODING
            || owned.owns(n)
            || is_stripped_for_guests(n)
            || nominated.names(n)
            || allowed
                .remove_headers
                .iter()
                .any(|r| same_header(n, r.as_str()))
        {
            continue;
        }
        let value = if *name == COOKIE {
            let stripped = session::strip_cookie(value.as_bytes(), owned.cookie());
            match forwarded_cookie(value, stripped) {
                Some(v) => v,
                None => continue,
            }
        } else {
            value.clone()
        };
        headers
            .try_append(name.clone(), value)
            .or_err(InternalError, TOO_MANY)?;
    }
    put(&mut headers, HOST, upstream_host.clone())?;
    if let Some(ip) = client {
        put(
            &mut headers,
            X_FORWARDED_FOR,
            HeaderValue::from_str(ip.as_str()).or_err(InternalError, "client address")?,
        )?;
    }
    for (name, value) in allowed.set_headers.iter() {
        put(&mut headers, name.clone(), value.clone())?;
    }
    if let Some((name, value)) = framing_header(allowed.body, req.method.as_str()) {
        put(&mut headers, name, value)?;
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = req.method.clone();
    parts.uri = allowed.target.clone();
    // What pingora set for the upstream connection (HTTP/1.1 today).
    parts.version = req.version;
    parts.headers = headers;
    parts.extensions = std::mem::take(req.extensions_mut());
    Ok(parts)
}

/// The headers a request's `Connection` names, hop-by-hop by its sender's say (RFC 9110,
/// 7.6.1): a guest request is built without them. Guest requests go upstream under
/// pingora's `preserve` policy (see `upstream_peer`), so this is the only place they
/// are dropped; framing has already refused a list that names a header the proxy sets,
/// holds a non-token, or has ten options or more.
struct Nominated<'a> {
    names: [&'a [u8]; NOMINATED_MAX],
    len: usize,
}

/// The most options framing lets through.
const NOMINATED_MAX: usize = framing::MAX_CONNECTION_OPTIONS - 1;

impl<'a> Nominated<'a> {
    fn of(headers: &'a HeaderMap) -> pingora::Result<Self> {
        let mut out = Self {
            names: [&[]; NOMINATED_MAX],
            len: 0,
        };
        for value in headers.get_all(http::header::CONNECTION) {
            for option in framing::connection_options(value.as_bytes()) {
                // Framing refused longer lists; refuse rather than forward a name unchecked.
                let Some(slot) = out.names.get_mut(out.len) else {
                    return Err(pingora::Error::explain(
                        InternalError,
                        "too many Connection options",
                    ));
                };
                *slot = option;
                out.len += 1;
            }
        }
        Ok(out)
    }

    fn names(&self, name: &[u8]) -> bool {
        self.names[..self.len]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(name))
    }
}

/// Sets one header on a guest request being built, replacing any copy.
pub fn put(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) -> pingora::Result<()> {
    headers
        .try_insert(name, value)
        .map(drop)
        .or_err(InternalError, TOO_MANY)
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

const TOO_MANY: &str = "too many headers for the upstream request";

/// Adds the signed scope assertion to an allowed guest request being built: who, which
/// share and rule, and exactly the method and target the app receives.
pub fn assert_scope(
    parts: &mut http::request::Parts,
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
    // Read from the request being built: exactly the method and target the app receives.
    let target = parts
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
            method: parts.method.as_str(),
            target,
        },
    );
    let value = HeaderValue::try_from(token).or_err(InternalError, "assertion")?;
    put(&mut parts.headers, header.clone(), value)
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
        if let Some(v) = forwarded_cookie(&value, stripped) {
            let _ = req.append_header("cookie", v);
        }
    }
}

/// What a `Cookie` value becomes upstream once guestgate's pairs are out (`None`: drop it).
fn forwarded_cookie(value: &HeaderValue, stripped: session::Stripped) -> Option<HeaderValue> {
    match stripped {
        session::Stripped::Unchanged => Some(value.clone()),
        // Bytes of a valid header value, minus whole pairs, stay a valid header value.
        session::Stripped::Removed(rest) => rest.and_then(|r| HeaderValue::from_bytes(&r).ok()),
    }
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
pub fn write_framing(req: &mut RequestHeader, body: Body) -> pingora::Result<()> {
    let framing = framing_header(body, req.method.as_str());
    req.remove_header(&CONTENT_LENGTH);
    req.remove_header(&TRANSFER_ENCODING);
    match framing {
        Some((name, value)) => req.insert_header(name, value),
        None => Ok(()),
    }
}

/// The one framing header a request carries upstream for the body guestgate parsed.
fn framing_header(body: Body, method: &str) -> Option<(HeaderName, HeaderValue)> {
    match body {
        Body::Chunked => Some((TRANSFER_ENCODING, HeaderValue::from_static("chunked"))),
        Body::Length(n) if n > 0 => Some((CONTENT_LENGTH, HeaderValue::from(n))),
        _ if framing::is_bodiless(method) => None,
        _ => Some((CONTENT_LENGTH, HeaderValue::from_static("0"))),
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

    /// What a request's framing headers become upstream, whichever path writes them
    /// (pass-through edit or guest head): (method, headers sent, body parsed, headers out).
    #[allow(clippy::type_complexity)]
    fn framing_cases() -> [(
        &'static str,
        &'static [(&'static str, &'static str)],
        Body,
        Vec<&'static str>,
    ); 4] {
        [
            (
                "POST",
                &[("Content-Length", "007")],
                Body::Length(7),
                vec!["content-length: 7"],
            ),
            (
                "POST",
                &[("Transfer-Encoding", "chunked")],
                Body::Chunked,
                vec!["transfer-encoding: chunked"],
            ),
            ("POST", &[], Body::None, vec!["content-length: 0"]),
            ("GET", &[("Content-Length", "0")], Body::None, vec![]),
        ]
    }

    #[test]
    fn framing_headers_are_written_not_copied() {
        let framed = |method: &str, headers: &[(&str, &str)], body: Body| {
            let mut r = RequestHeader::build(method, b"/", None).unwrap();
            for (k, v) in headers {
                r.append_header(k.to_string(), *v).unwrap();
            }
            write_framing(&mut r, body).unwrap();
            let mut v: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                .collect();
            v.sort();
            v
        };
        for (method, sent, body, want) in framing_cases() {
            assert_eq!(framed(method, sent, body), want, "{method} {sent:?}");
        }
        // HTTP/2 DATA without a content-length travels chunked on HTTP/1.1.
        assert_eq!(
            framed("PATCH", &[("accept", "*/*")], Body::Chunked),
            ["accept: */*", "transfer-encoding: chunked"]
        );
    }

    fn allowed(body: Body) -> AllowedRequest {
        AllowedRequest {
            guest: crate::decision::Guest {
                email: "g@example.test".into(),
                jti: "j".into(),
                share: None,
                rule: Some("document".into()),
                held: Vec::new(),
            },
            path: "/api/cases/42/versions/3/documents/1".into(),
            target: http::Uri::from_static("/api/cases/42/versions/3/documents/1?page=2"),
            set_headers: vec![(
                HeaderName::from_static("x-guest-email"),
                HeaderValue::from_static("g@example.test"),
            )]
            .into(),
            remove_headers: vec![HeaderName::from_static("x-app-debug")],
            response: std::sync::Arc::new(crate::policy::ResponsePlan {
                remove_headers: Vec::new(),
                set_headers: Vec::new(),
                banner: None,
            }),
            body,
        }
    }

    fn built(method: &str, headers: &[(&str, &str)], a: &AllowedRequest) -> Vec<String> {
        let mut r = RequestHeader::build(
            method,
            b"/api/cases/42/../42/versions/3/documents/1?page=2",
            None,
        )
        .unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        let owned = OwnedHeaders::new(["x-guest-email"], "gg");
        let host = HeaderValue::from_static("app.internal");
        let ip = crate::client_addr::IpText::new("192.0.2.7".parse().unwrap());
        let parts = guest_request(&mut r, a, &owned, &host, Some(&ip)).unwrap();
        assert_eq!(parts.method.as_str(), method);
        assert_eq!(parts.uri, a.target);
        assert_eq!(parts.version, r.version);
        let mut v: Vec<String> = parts
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn guest_requests_keep_only_what_was_decided() {
        let a = allowed(Body::None);
        let got = built(
            "GET",
            &[
                ("Host", "evil.example"),
                ("X-Original-URL", "/admin"),
                ("X-Rewrite-Url", "/admin"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("X_Forwarded_Host", "evil"),
                ("X-Forwarded-Prefix", "/x"),
                ("X-Envoy-Original-Path", "/admin"),
                ("Connection", "close, X-Guest-Email"),
                ("Upgrade", "websocket"),
                ("X-Guest-Email", "ceo@victim.example"),
                ("X_Guest_Email", "ceo@victim.example"),
                ("X-App-Debug", "1"),
                ("x_app_debug", "2"),
                ("Content-Length", "0"),
                ("Transfer-Encoding", "chunked"),
                ("Cookie", "gg=secret; app=1"),
                ("Cookie", "gg=secret"),
                ("Accept", "text/html"),
                ("Accept", "*/*"),
            ],
            &a,
        );
        assert_eq!(
            got,
            [
                "accept: */*",
                "accept: text/html",
                "cookie: app=1",
                "host: app.internal",
                "x-forwarded-for: 192.0.2.7",
                "x-guest-email: g@example.test",
            ]
        );
    }

    #[test]
    fn guest_request_framing_is_what_was_parsed() {
        let framing = |method: &str, sent: &[(&str, &str)], body: Body| {
            built(method, sent, &allowed(body))
                .into_iter()
                .filter(|h| h.starts_with("content-length") || h.starts_with("transfer-encoding"))
                .collect::<Vec<_>>()
        };
        for (method, sent, body, want) in framing_cases() {
            assert_eq!(framing(method, sent, body), want, "{method} {sent:?}");
        }
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

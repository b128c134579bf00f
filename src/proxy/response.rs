//! What the app's response becomes for a guest: the profile's response plan (guestgate's
//! `no-store` and `nosniff` defaults, the profile's own edits), and, for an HTML page, the
//! header changes the banner needs. The body side is [`crate::banner::Injector`].

use http::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, SET_COOKIE, TRAILER,
    TRANSFER_ENCODING,
};
use http::{Method, StatusCode, Version};
use pingora::http::ResponseHeader;
use pingora::{ErrorType::InternalError, OrErr};

use crate::banner::decode::Coding;
use crate::banner::is_banner_html;
use crate::policy::ResponsePlan;
use crate::session::is_guestgate_cookie;

/// Headers that describe the app's exact bytes; wrong once the banner is in.
const DIGESTS: &[&str] = &["content-md5", "digest", "content-digest", "repr-digest"];

/// Drops every `Set-Cookie` of the app's that names one of guestgate's cookies (any
/// spelling): the app cannot sign a browser out of guestgate, plant a session, or fix the
/// form cookie. The mirror of the request side, where those cookies never reach the app.
pub fn strip_owned_cookies(resp: &mut ResponseHeader, cookie_base: &str) -> pingora::Result<()> {
    let all: Vec<http::HeaderValue> = resp.headers.get_all(SET_COOKIE).iter().cloned().collect();
    let owned = |v: &http::HeaderValue| {
        let pair = v.as_bytes().split(|&b| b == b';').next().unwrap_or(b"");
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (&b""[..], pair),
        };
        // A nameless cookie (`=n=v`, or a pair with no `=` at all) is stored with an
        // empty name and sent back as its value alone, which then reads as `n=v`
        // (RFC 6265bis, 5.6): what it comes back as is what must not be guestgate's.
        let comes_back_as = if name.iter().all(|&b| b == b' ' || b == b'\t') {
            value.split(|&b| b == b'=').next().unwrap_or(b"")
        } else {
            name
        };
        std::str::from_utf8(comes_back_as).map_or(true, |n| is_guestgate_cookie(n, cookie_base))
    };
    if !all.iter().any(owned) {
        return Ok(());
    }
    resp.remove_header(&SET_COOKIE);
    for v in all.into_iter().filter(|v| !owned(v)) {
        resp.append_header(SET_COOKIE, v)?;
    }
    Ok(())
}

/// Removes, then sets, what the profile's plan says. The head is rebuilt around its
/// header map, so the plan's names go in as parsed when the policy loaded: pingora's
/// `insert_header` would parse each again and keep a second, case-preserving map in step.
/// The guest's browser gets the app's header names in lower case (as over HTTP/2) and
/// the status's standard reason phrase.
pub fn apply_plan(resp: &mut ResponseHeader, plan: &ResponsePlan) -> pingora::Result<()> {
    let (empty, ()) = http::Response::new(()).into_parts();
    let mut parts: http::response::Parts =
        std::mem::replace(resp, ResponseHeader::from(empty)).into();
    for name in &plan.remove_headers {
        parts.headers.remove(name);
    }
    // The app's head was parsed into a map of its own size: grown once here, not per
    // header set.
    parts
        .headers
        .try_reserve(plan.set_headers.len())
        .or_err(InternalError, "too many response headers")?;
    for (name, value) in &plan.set_headers {
        parts
            .headers
            .try_insert(name.clone(), value.clone())
            .or_err(InternalError, "too many response headers")?;
    }
    *resp = ResponseHeader::from(parts);
    Ok(())
}

/// Whether a response gets a banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerFit {
    /// Not an HTML page with a body (JSON, an image, a 304, a range).
    NotAPage,
    /// The head of a page, answering HEAD: its headers must say what GET would.
    HeadOfPage(Coding),
    /// An HTML page in a coding guestgate cannot undo.
    EncodingUnsupported,
    /// An HTML page in this coding.
    Page(Coding),
}

/// Looks at the request method and the response head.
pub fn banner_fit(method: &Method, resp: &ResponseHeader) -> BannerFit {
    let status = resp.status;
    // Two content types: browsers take the last, guestgate would read the first. Most
    // answers are not HTML, so the content type is looked at first, and once.
    let mut types = resp.headers.get_all(CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return BannerFit::NotAPage;
    };
    if !is_banner_html(Some(content_type.as_bytes()))
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || resp.headers.contains_key(http::header::CONTENT_RANGE)
    {
        return BannerFit::NotAPage;
    }
    match Coding::from_header(resp.headers.get(CONTENT_ENCODING).map(|v| v.as_bytes())) {
        Some(c) if *method == Method::HEAD => BannerFit::HeadOfPage(c),
        Some(c) => BannerFit::Page(c),
        None => BannerFit::EncodingUnsupported,
    }
}

/// The head of a page that gets a banner: its length is unknown now (chunked on HTTP/1.1,
/// to the close on HTTP/1.0, frames on HTTP/2), its coding is undone, its validators and
/// digests no longer describe these bytes.
pub fn prepare_for_banner(
    resp: &mut ResponseHeader,
    coding: Coding,
    downstream: Version,
) -> pingora::Result<()> {
    resp.remove_header(&CONTENT_LENGTH);
    if coding != Coding::Identity {
        resp.remove_header(&CONTENT_ENCODING);
    }
    for d in DIGESTS {
        resp.remove_header(*d);
    }
    // The representation is the app's plus the banner: equivalent, not byte-identical.
    if let Some(tag) = resp.headers.get(ETAG).cloned() {
        if !tag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(tag.as_bytes());
            match http::HeaderValue::from_bytes(&weak) {
                Ok(v) => resp.insert_header(ETAG, v)?,
                Err(_) => {
                    resp.remove_header(&ETAG);
                }
            }
        }
    }
    // Trailers would be dropped on the way; do not announce them.
    resp.remove_header(&TRAILER);
    resp.remove_header(&TRANSFER_ENCODING);
    match downstream {
        Version::HTTP_11 => resp.insert_header(TRANSFER_ENCODING, "chunked")?,
        // No length and no chunks: the close ends the page, and the head says so.
        Version::HTTP_10 | Version::HTTP_09 => resp.insert_header(CONNECTION, "close")?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_html_pages_with_a_body_fit() {
        let html = [("content-type", "text/html; charset=utf-8")];
        assert_eq!(
            banner_fit(&Method::GET, &resp(200, &html)),
            BannerFit::Page(Coding::Identity)
        );
        assert_eq!(
            banner_fit(&Method::GET, &resp(404, &html)),
            BannerFit::Page(Coding::Identity)
        );
        assert_eq!(
            banner_fit(&Method::HEAD, &resp(200, &html)),
            BannerFit::HeadOfPage(Coding::Identity)
        );
        for (m, r) in [
            (
                Method::GET,
                resp(200, &[html[0], ("content-type", "text/plain")]),
            ),
            (Method::GET, resp(304, &html)),
            (Method::GET, resp(206, &html)),
            (Method::GET, resp(204, &html)),
            (
                Method::GET,
                resp(200, &[("content-type", "application/json")]),
            ),
            (Method::GET, resp(200, &[])),
        ] {
            assert_eq!(banner_fit(&m, &r), BannerFit::NotAPage, "{m} {}", r.status);
        }
        let zstd = resp(200, &[html[0], ("content-encoding", "zstd")]);
        assert_eq!(
            banner_fit(&Method::GET, &zstd),
            BannerFit::EncodingUnsupported
        );
        let br = resp(200, &[html[0], ("content-encoding", "br")]);
        assert_eq!(
            banner_fit(&Method::GET, &br),
            BannerFit::Page(Coding::Brotli)
        );
    }

    #[test]
    fn a_bannered_head_loses_length_coding_and_strong_validators() {
        let mut r = resp(
            200,
            &[
                ("content-type", "text/html"),
                ("content-length", "120"),
                ("content-encoding", "gzip"),
                ("etag", "\"v1\""),
                ("digest", "sha-256=abc"),
            ],
        );
        prepare_for_banner(&mut r, Coding::Gzip, Version::HTTP_11).unwrap();
        let mut names: Vec<_> = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "content-type: text/html",
                "etag: W/\"v1\"",
                "transfer-encoding: chunked"
            ]
        );
        let mut r = resp(200, &[("content-length", "5"), ("trailer", "x-sum")]);
        prepare_for_banner(&mut r, Coding::Identity, Version::HTTP_10).unwrap();
        let names: Vec<_> = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            ["connection: close"],
            "HTTP/1.0: the body runs to the close"
        );
    }

    #[test]
    fn the_apps_set_cookie_for_guestgates_cookies_is_dropped() {
        let mut r = resp(
            200,
            &[
                ("set-cookie", "guestgate_session=attacker; Path=/"),
                ("set-cookie", "app_pref=compact; Path=/"),
                ("set-cookie", "__Host-GuestGate_Session=x"),
                ("set-cookie", "guestgate_session_form=fixed"),
                ("set-cookie", " guestgate_session =y"),
                ("set-cookie", "=guestgate_session=planted; Path=/"),
                ("set-cookie", "guestgate_session; Path=/"),
                ("set-cookie", "=other=kept"),
            ],
        );
        strip_owned_cookies(&mut r, "guestgate_session").unwrap();
        let kept: Vec<_> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(kept, ["app_pref=compact; Path=/", "=other=kept"]);
    }
}

//! The banner that tells a guest, on the app's own HTML pages, that they are a guest:
//! what is shared with them, in what capacity ("View-only"), and the ways out (My shares,
//! Sign out). It is inserted right after the page's `<body …>` tag while the response
//! streams through: nothing is buffered beyond the current chunk, pages without a body
//! tag pass untouched, compressed pages are decoded first. The banner carries no inline
//! script or style: its stylesheet is served by guestgate under its prefix, so an app's
//! Content-Security-Policy (`style-src 'self'`) keeps working.
//!
//! This module is the pure part (rendering, finding the tag, decoding); the proxy decides
//! which responses get a banner.

pub mod decode;
pub mod scan;

use bytes::{Bytes, BytesMut};

use decode::{Coding, DecodeError, Decoder};
use scan::{BodyScanner, Scan};

/// How far into a page the body tag is looked for (a `<head>` with inline scripts and
/// styles can be long; past this the page passes untouched).
pub const LOOKAHEAD: usize = 256 * 1024;

/// The banner's stylesheet, served at `{prefix}/banner.css`. Every rule is scoped to the
/// banner's class and starts from `all: revert`, so neither the app's styles leak into
/// the banner nor the banner's into the app.
pub const STYLESHEET: &str = "\
.guestgate-banner,.guestgate-banner *{all:revert;box-sizing:border-box}
.guestgate-banner{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;\
gap:.25rem 1rem;margin:0;padding:.5rem 1rem;background:#1d3557;color:#fff;\
font:15px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;border-bottom:3px solid #f4a261}
.guestgate-banner p{margin:0}
.guestgate-banner-label{display:inline-block;margin-right:.5rem;padding:.05rem .5rem;\
background:#f4a261;color:#1d1d1d;border-radius:3px;font-weight:700}
.guestgate-banner nav{display:flex;align-items:center;gap:1rem}
.guestgate-banner form{display:inline;margin:0}
.guestgate-banner a,.guestgate-banner button{color:#fff;font:inherit;text-decoration:underline;\
background:none;border:0;padding:0;cursor:pointer}
.guestgate-banner a:focus-visible,.guestgate-banner button:focus-visible{outline:2px solid #f4a261;\
outline-offset:2px}
@media print{.guestgate-banner{background:none;color:#000;border-bottom:1px solid #000}}
";

/// What one banner shows.
#[derive(Debug, Clone, Copy)]
pub struct BannerView<'a> {
    /// "View-only".
    pub label: &'a str,
    /// "You can read the documents of this case version."
    pub text: &'a str,
    /// The share's case.
    pub case: &'a str,
    /// The share's version.
    pub version: &'a str,
    /// guestgate's prefix (`/_guestgate`).
    pub prefix: &'a str,
    /// The sign-out form's anti-forgery token.
    pub sign_out_token: &'a str,
}

use crate::html::push_escaped_ascii;

/// The banner's HTML.
pub fn render(v: &BannerView<'_>) -> Bytes {
    let mut h = String::with_capacity(900);
    h.push_str("<link rel=\"stylesheet\" href=\"");
    push_escaped_ascii(&mut h, v.prefix);
    h.push_str("/banner.css\"><aside class=\"guestgate-banner\" aria-label=\"Guest access\"><p><strong class=\"guestgate-banner-label\">");
    push_escaped_ascii(&mut h, v.label);
    h.push_str("</strong> <span>Case ");
    push_escaped_ascii(&mut h, v.case);
    h.push_str(", version ");
    push_escaped_ascii(&mut h, v.version);
    h.push_str(".</span> <span>");
    push_escaped_ascii(&mut h, v.text);
    h.push_str("</span></p><nav aria-label=\"Guest links\"><a href=\"");
    push_escaped_ascii(&mut h, v.prefix);
    h.push_str("/guest\">My shares</a><form method=\"post\" action=\"");
    push_escaped_ascii(&mut h, v.prefix);
    h.push_str("/logout\"><input type=\"hidden\" name=\"form_token\" value=\"");
    push_escaped_ascii(&mut h, v.sign_out_token);
    h.push_str("\"><button type=\"submit\">Sign out</button></form></nav></aside>");
    Bytes::from(h)
}

/// Whether a `Content-Type` is HTML in a charset where ASCII bytes are ASCII (the banner
/// is ASCII; UTF-16 and friends would be corrupted by it).
pub fn is_banner_html(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type.and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let mut parts = ct.split(';');
    if !parts
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
    {
        return false;
    }
    parts.all(|p| {
        let Some((k, v)) = p.split_once('=') else {
            return true;
        };
        if !k.trim().eq_ignore_ascii_case("charset") {
            return true;
        }
        let v = v.trim().trim_matches('"').to_ascii_lowercase();
        // Every WHATWG label of an encoding where ASCII bytes are not ASCII (UTF-16 and its
        // aliases, the ISO-2022 family and the `replacement` encoding's labels).
        const NOT_ASCII: &[&str] = &[
            "utf-16",
            "utf-32",
            "ucs-",
            "unicode",
            "csunicode",
            "iso-10646-ucs",
            "utf-7",
            "iso-2022",
            "csiso2022",
            "hz-gb-2312",
            "replacement",
        ];
        // (`unicode-1-1-utf-8` and friends are UTF-8.)
        v.contains("utf-8") || v.contains("utf8") || !NOT_ASCII.iter().any(|p| v.starts_with(p))
    })
}

/// What happened to a page, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still looking.
    Pending,
    /// The banner is in.
    Inserted,
    /// No body tag to put it after: the page went through untouched.
    NoBody,
}

/// One response's banner insertion, chunk by chunk.
pub struct Injector {
    decoder: Option<Decoder>,
    scanner: BodyScanner,
    banner: Option<Bytes>,
    outcome: Outcome,
}

impl Injector {
    /// For a response in `coding` (identity, or one [`Decoder`] undoes).
    pub fn new(coding: Coding, banner: Bytes) -> Self {
        Self {
            decoder: Decoder::new(coding),
            scanner: BodyScanner::new(LOOKAHEAD),
            banner: Some(banner),
            outcome: Outcome::Pending,
        }
    }

    /// What happened so far.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Transforms one body chunk into what the guest receives. Identity pages are passed
    /// on without a copy, except the one chunk that receives the banner.
    pub fn push(&mut self, chunk: Option<Bytes>, end: bool) -> Result<Option<Bytes>, DecodeError> {
        let decoded = match (&mut self.decoder, chunk) {
            (Some(d), c) => {
                let out = d.push(c.as_deref().unwrap_or(&[]), end)?;
                (!out.is_empty() || c.is_some()).then(|| Bytes::from(out))
            }
            (None, c) => c,
        };
        let out = match (self.outcome, decoded) {
            (Outcome::Pending, Some(bytes)) => match self.scanner.scan(&bytes) {
                Scan::Insert(at) => {
                    self.outcome = Outcome::Inserted;
                    let banner = self.banner.take().unwrap_or_default();
                    let mut joined = BytesMut::with_capacity(bytes.len() + banner.len());
                    joined.extend_from_slice(&bytes[..at]);
                    joined.extend_from_slice(&banner);
                    joined.extend_from_slice(&bytes[at..]);
                    Some(joined.freeze())
                }
                Scan::GiveUp => {
                    self.outcome = Outcome::NoBody;
                    Some(bytes)
                }
                Scan::More => Some(bytes),
            },
            (_, other) => other,
        };
        if end && self.outcome == Outcome::Pending {
            self.outcome = Outcome::NoBody;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> BannerView<'static> {
        BannerView {
            label: "View-only",
            text: "You can read «the» <documents> & more.",
            case: "42",
            version: "3\"",
            prefix: "/_guestgate",
            sign_out_token: "abc",
        }
    }

    #[test]
    fn the_banner_is_ascii_escaped_html_without_inline_style_or_script() {
        let b = render(&view());
        let s = std::str::from_utf8(&b).unwrap();
        assert!(b.is_ascii(), "{s}");
        assert!(
            s.contains("&#xab;the&#xbb; &lt;documents&gt; &amp; more."),
            "{s}"
        );
        assert!(s.contains("version 3&quot;."), "{s}");
        assert!(
            !s.contains("style=") && !s.contains("<style") && !s.contains("<script"),
            "{s}"
        );
        assert!(s.contains("href=\"/_guestgate/banner.css\""), "{s}");
    }

    #[test]
    fn only_html_in_an_ascii_compatible_charset_gets_one() {
        for (ct, yes) in [
            ("text/html", true),
            ("text/html; charset=utf-8", true),
            ("TEXT/HTML;Charset=\"ISO-8859-1\"", true),
            ("text/html; charset=utf-16le", false),
            ("text/html; charset=unicode", false),
            ("text/html; charset=csUnicode", false),
            ("text/html; charset=iso-10646-ucs-2", false),
            ("text/html; charset=unicodeFFFE", false),
            ("text/html; charset=iso-2022-jp", false),
            ("text/html; charset=shift_jis", true),
            ("text/html; charset=unicode-1-1-utf-8", true),
            ("application/json", false),
            ("text/html-sandboxed", false),
            ("application/xhtml+xml", false),
        ] {
            assert_eq!(is_banner_html(Some(ct.as_bytes())), yes, "{ct}");
        }
        assert!(!is_banner_html(None));
    }

    #[test]
    fn inserts_once_after_the_body_tag_and_passes_the_rest_untouched() {
        let banner = Bytes::from_static(b"[B]");
        let mut inj = Injector::new(Coding::Identity, banner);
        let a = inj
            .push(Some(Bytes::from_static(b"<html><bo")), false)
            .unwrap();
        assert_eq!(a.as_deref(), Some(&b"<html><bo"[..]));
        let b = inj
            .push(Some(Bytes::from_static(b"dy class=x>hi <body>")), false)
            .unwrap();
        assert_eq!(b.as_deref(), Some(&b"dy class=x>[B]hi <body>"[..]));
        let rest = Bytes::from_static(b"<body> again");
        let c = inj.push(Some(rest.clone()), true).unwrap().unwrap();
        assert_eq!(c, rest);
        assert_eq!(c.as_ptr(), rest.as_ptr(), "passed on without a copy");
        assert_eq!(inj.outcome(), Outcome::Inserted);

        let mut inj = Injector::new(Coding::Identity, Bytes::from_static(b"[B]"));
        let page = Bytes::from_static(b"<p>no body tag <body>");
        assert_eq!(inj.push(Some(page.clone()), true).unwrap(), Some(page));
        assert_eq!(inj.outcome(), Outcome::NoBody);
    }

    #[test]
    fn a_gzip_page_is_decoded_and_gets_the_banner() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"<html><head></head><body><p>x</p></body></html>")
            .unwrap();
        let gz = e.finish().unwrap();
        let mut inj = Injector::new(Coding::Gzip, Bytes::from_static(b"[B]"));
        let mut out = Vec::new();
        for (i, c) in gz.chunks(5).enumerate() {
            let last = (i + 1) * 5 >= gz.len();
            if let Some(b) = inj.push(Some(Bytes::copy_from_slice(c)), last).unwrap() {
                out.extend_from_slice(&b);
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<html><head></head><body>[B]<p>x</p></body></html>"
        );
    }
}

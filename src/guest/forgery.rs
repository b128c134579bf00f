//! Anti-forgery for guestgate's forms. A browser that opens a guestgate page gets a random
//! browser id in a cookie of guestgate's own (HttpOnly, `SameSite=Strict`, `__Host-` over
//! TLS); each form carries a token that is an HMAC of that id and what the form is for
//! (one link, or signing out). A page on another site can neither read the cookie nor
//! compute the token.
//!
//! A form is accepted when `Origin` is the public origin, or, when the browser sends
//! `Origin: null` or none (privacy settings, `Referrer-Policy`), when it carries a valid
//! token; `Sec-Fetch-Site`, where sent, must be `same-origin` in both cases.

use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::otp::hmac;
use crate::session::CookieLookup;
use crate::stamp::random_hex;

/// The name of the form field holding the token.
pub const FIELD: &str = "form_token";

/// The key form tokens are made with; derived from the session key, domain-separated.
pub struct FormKey([u8; 32]);

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey(..)")
    }
}

/// What a form is for: the token of one is useless for another.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// Verify a code, or ask for a new one, on the link with this token hash.
    Link(&'a str),
    /// Sign out.
    SignOut,
}

impl FormKey {
    /// Derives the form key from the session key.
    pub fn derive(secret: &[u8]) -> Self {
        let mut m = hmac(&Sha256::digest(secret).into());
        m.update(b"guestgate form token key v1");
        Self(m.finalize().into_bytes().into())
    }

    /// The token for `browser` (the id in its form cookie) and `purpose`.
    pub fn token(&self, browser: &str, purpose: Purpose<'_>) -> String {
        let mut m = hmac(&self.0);
        m.update(browser.as_bytes());
        m.update(b"\0");
        match purpose {
            Purpose::Link(hash) => {
                m.update(b"link\0");
                m.update(hash.as_bytes());
            }
            Purpose::SignOut => m.update(b"sign-out"),
        }
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// Whether `token` is the one for this browser and purpose (constant time).
    pub fn check(&self, browser: &str, purpose: Purpose<'_>, token: &str) -> bool {
        let want = self.token(browser, purpose);
        want.len() == token.len() && bool::from(want.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// A fresh browser id for the form cookie.
pub fn new_browser_id() -> String {
    random_hex(16)
}

/// The browser id from the `Cookie` headers: exactly one copy under the exact name
/// guestgate sets, made of hex digits; anything else is no id.
pub fn browser_id<'a>(cookies: &[&'a [u8]], base: &str, wire: &str) -> Option<&'a str> {
    match crate::session::find_cookie(cookies.iter().copied(), base, wire) {
        CookieLookup::One(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(id)
        }
        _ => None,
    }
}

/// What the browser said about where a form came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormOrigin<'a> {
    /// `Origin`.
    pub origin: Option<&'a [u8]>,
    /// `Sec-Fetch-Site`.
    pub fetch_site: Option<&'a [u8]>,
}

impl FormOrigin<'_> {
    /// Whether a form from here may act: the public origin, or no usable origin and a
    /// valid token; never a fetch the browser calls cross-site or same-site.
    pub fn allows(&self, public_origin: &str, token_valid: impl FnOnce() -> bool) -> bool {
        if self.fetch_site.is_some_and(|s| s != b"same-origin") {
            return false;
        }
        match self.origin {
            Some(o) if o == public_origin.as_bytes() => true,
            None => token_valid(),
            Some(o) if o == b"null" => token_valid(),
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_browser_and_purpose() {
        let k = FormKey::derive(&[7u8; 32]);
        let b = new_browser_id();
        let t = k.token(&b, Purpose::Link("h1"));
        assert!(k.check(&b, Purpose::Link("h1"), &t));
        assert!(!k.check(&b, Purpose::Link("h2"), &t), "another link");
        assert!(!k.check(&b, Purpose::SignOut, &t), "another purpose");
        assert!(
            !k.check(&new_browser_id(), Purpose::Link("h1"), &t),
            "another browser"
        );
        assert!(!k.check(&b, Purpose::Link("h1"), ""), "no token");
        let other = FormKey::derive(&[8u8; 32]);
        assert!(!other.check(&b, Purpose::Link("h1"), &t), "another key");
    }

    #[test]
    fn origins_and_fetch_sites() {
        let public = "https://cases.example";
        let allows = |origin: Option<&[u8]>, site: Option<&[u8]>, token: bool| {
            FormOrigin {
                origin,
                fetch_site: site,
            }
            .allows(public, || token)
        };
        assert!(allows(
            Some(b"https://cases.example"),
            Some(b"same-origin"),
            false
        ));
        assert!(allows(Some(b"https://cases.example"), None, false));
        assert!(allows(Some(b"null"), Some(b"same-origin"), true));
        assert!(allows(None, None, true));
        assert!(!allows(Some(b"null"), Some(b"same-origin"), false));
        assert!(!allows(Some(b"null"), Some(b"cross-site"), true));
        assert!(!allows(Some(b"https://evil.example"), None, true));
        assert!(!allows(
            Some(b"https://cases.example"),
            Some(b"same-site"),
            true
        ));
        assert!(!allows(None, Some(b"cross-site"), true));
    }

    #[test]
    fn only_the_exact_cookie_is_a_browser_id() {
        let id = "0123456789abcdef0123456789abcdef";
        let c = format!("a=1; __Host-gg_form={id}");
        assert_eq!(
            browser_id(&[c.as_bytes()], "gg_form", "__Host-gg_form"),
            Some(id)
        );
        assert_eq!(browser_id(&[b"gg_form=xyz"], "gg_form", "gg_form"), None);
        let two = format!("gg_form={id}; GG_FORM={id}");
        assert_eq!(browser_id(&[two.as_bytes()], "gg_form", "gg_form"), None);
    }
}

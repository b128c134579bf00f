//! guestgate's own routes for guests, under the configured prefix (default
//! `/_guestgate`): the challenge page for a link, code verification (which mints or
//! extends the session cookie), "send me a new code", the list of shares this browser
//! holds, and logout. Nothing under the prefix ever reaches the app.
//!
//! Each route is a function from a [`GuestRequest`] (plain data the proxy read once) to
//! a [`Reply`] and the [`PageEvent`] to audit; the proxy writes the reply. Store failures
//! answer 503: never open.

pub mod pages;

use std::net::IpAddr;

use crate::reply::Reply;
use crate::session::{self, CookieLookup, SessionConfig, SessionKeys, ShareGrant};
use crate::shares::{EmailOutcome, GuestConfig, Shares};
use crate::stamp::rfc3339;
use crate::store::{CodeCheck, Share};
use pages::{Challenge, HeldShare};

/// Largest form body accepted on guest routes.
pub const MAX_FORM: usize = 4096;

/// A guest route.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /s/{token}`.
    Challenge(&'a str),
    /// `POST /s/{token}/verify`.
    Verify(&'a str),
    /// `POST /s/{token}/resend`.
    Resend(&'a str),
    /// `GET /guest`.
    Shares,
    /// `POST /logout`.
    Logout,
    /// Anything else under the prefix.
    NotFound,
    /// A known route with the wrong method.
    WrongMethod,
}

/// Routes a path under the prefix (the part after it).
pub fn route<'a>(method: &str, rest: &'a str) -> Route<'a> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST";
    match segs.as_slice() {
        ["s", token] if get => Route::Challenge(token),
        ["s", token, "verify"] if post => Route::Verify(token),
        ["s", token, "resend"] if post => Route::Resend(token),
        ["guest"] if get => Route::Shares,
        ["logout"] if post => Route::Logout,
        ["s", _] | ["s", _, "verify" | "resend"] | ["guest"] | ["logout"] => Route::WrongMethod,
        _ => Route::NotFound,
    }
}

/// What a guest route sees of the request: read once by the proxy.
#[derive(Debug, Clone, Default)]
pub struct GuestRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// The path after guestgate's prefix (`/s/<token>`).
    pub path: &'a str,
    /// Values of every `Cookie` header.
    pub cookies: Vec<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The client (through trusted proxies), for the verify throttle.
    pub client: Option<IpAddr>,
    /// The form body of a POST; `None` when it was too large or could not be read.
    pub form: Option<&'a [u8]>,
    /// Unix seconds.
    pub now: u64,
}

/// What happened, for the one audit event of this request.
#[derive(Debug, Default, Clone)]
pub struct PageEvent {
    /// Event name.
    pub event: &'static str,
    /// The share concerned.
    pub share: Option<Share>,
}

impl PageEvent {
    fn new(event: &'static str, share: Option<Share>) -> Self {
        Self { event, share }
    }
}

/// Everything the guest routes need.
pub struct GuestRoutes<'a> {
    /// Share flows.
    pub shares: &'a Shares,
    /// Session keys (mint on verify).
    pub keys: &'a SessionKeys,
    /// Session settings.
    pub session: &'a SessionConfig,
}

/// The origin (`scheme://host[:port]`) of a public URL.
pub fn public_origin(public_url: &str) -> &str {
    let after = public_url.find("://").map_or(0, |i| i + 3);
    match public_url[after..].find('/') {
        Some(i) => &public_url[..after + i],
        None => public_url,
    }
}

/// The landing path for a share (ids are validated to path-safe characters at creation).
pub fn landing(template: &str, g: &ShareGrant) -> String {
    template
        .replace("{case}", &g.case)
        .replace("{version}", &g.version)
}

fn invalid_link() -> Reply {
    Reply::html(
        404,
        pages::message(
            "This link cannot be used",
            "The link is not valid any more: it may have expired or been withdrawn. Ask the person who shared the case to share it again.",
        ),
    )
}

fn locked_page() -> Reply {
    Reply::html(
        403,
        pages::message(
            "This link is locked",
            "Too many wrong codes were entered for this link, so it has been locked to protect the case. Ask the person who shared the case to share it again.",
        ),
    )
}

impl GuestRoutes<'_> {
    fn cfg(&self) -> &GuestConfig {
        self.shares.guest_config()
    }

    /// Answers one guest request.
    pub async fn handle(&self, req: &GuestRequest<'_>) -> (Reply, PageEvent) {
        let now = req.now;
        match route(req.method, req.path) {
            r @ (Route::NotFound | Route::WrongMethod) => {
                let status = if r == Route::NotFound { 404 } else { 405 };
                let html = pages::message("Page not found", "There is nothing here.");
                (Reply::html(status, html), PageEvent::new("not_found", None))
            }
            Route::Challenge(token) => match self.shares.by_token(token, now).await {
                Ok(Some(share)) if !share.locked => {
                    let html = self.challenge_page(token, &share, None, None);
                    (Reply::html(200, html), PageEvent::new("page", Some(share)))
                }
                Ok(Some(share)) => (locked_page(), PageEvent::new("locked", Some(share))),
                Ok(None) => (invalid_link(), PageEvent::new("invalid_link", None)),
                Err(e) => self.unavailable(PageEvent::default(), &e.to_string()),
            },
            route @ (Route::Verify(token) | Route::Resend(token)) => {
                if !self.same_origin(req) {
                    let html = pages::message(
                        "Please use the page",
                        "This form has to be sent from the page guestgate showed you. Open your link again.",
                    );
                    return (Reply::html(403, html), PageEvent::new("cross_origin", None));
                }
                let share = match self.shares.by_token(token, now).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return (invalid_link(), PageEvent::new("invalid_link", None)),
                    Err(e) => return self.unavailable(PageEvent::default(), &e.to_string()),
                };
                if matches!(route, Route::Verify(_)) {
                    self.verify(req, token, share).await
                } else {
                    self.resend(token, share, now).await
                }
            }
            Route::Shares => (self.shares_page(req), PageEvent::new("shares", None)),
            Route::Logout => {
                if !self.same_origin(req) {
                    let html = pages::message(
                        "Please use the page",
                        "Sign out from the page guestgate showed you.",
                    );
                    return (Reply::html(403, html), PageEvent::new("logout", None));
                }
                let html = pages::message(
                    "Signed out",
                    "You are signed out in this browser. Open your link again to come back.",
                );
                let reply = Reply::html(200, html).with_header("set-cookie", self.cookie("", 0));
                (reply, PageEvent::new("logout", None))
            }
        }
    }

    fn shares_page(&self, req: &GuestRequest<'_>) -> Reply {
        let held = self.current_session(req);
        let (email, grants) = match &held {
            Some(c) => (c.sub.as_str(), c.shares.as_slice()),
            None => ("nobody", &[][..]),
        };
        let rows: Vec<HeldShare<'_>> = grants
            .iter()
            .filter(|g| self.shares.index().admit(&g.id, req.now))
            .map(|g| HeldShare {
                case: &g.case,
                version: &g.version,
                profile: &g.profile,
                href: landing(&self.cfg().landing, g),
                expires: rfc3339(g.exp),
            })
            .collect();
        let logout = format!("{}/logout", self.cfg().prefix);
        Reply::html(200, pages::shares(email, &rows, &logout))
    }

    fn challenge_page(
        &self,
        token: &str,
        share: &Share,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> String {
        let prefix = &self.cfg().prefix;
        pages::challenge(&Challenge {
            masked_email: &pages::mask_email(&share.email),
            case: &share.case,
            version: &share.version,
            access: &self.shares.access_words(&share.profile),
            verify_action: &format!("{prefix}/s/{token}/verify"),
            resend_action: &format!("{prefix}/s/{token}/resend"),
            error,
            notice,
        })
    }

    fn same_origin(&self, req: &GuestRequest<'_>) -> bool {
        let origin = public_origin(&self.cfg().public_url);
        req.origin.is_some_and(|o| o == origin.as_bytes())
    }

    fn current_session(&self, req: &GuestRequest<'_>) -> Option<session::Claims> {
        match session::find_cookie(
            req.cookies.iter().copied(),
            &self.session.cookie_name,
            &self.session.wire_cookie_name(),
        ) {
            CookieLookup::One(token) => self.keys.verify(token).ok(),
            _ => None,
        }
    }

    /// The `Set-Cookie` value for a session token (empty with max-age 0 to clear it).
    fn cookie(&self, value: &str, max_age: u64) -> String {
        let mut c = format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={}",
            self.session.wire_cookie_name(),
            self.cfg().same_site.as_str()
        );
        if self.session.secure_cookie {
            c.push_str("; Secure");
        }
        c
    }

    fn unavailable(&self, mut ev: PageEvent, why: &str) -> (Reply, PageEvent) {
        crate::metrics::get()
            .store_errors
            .with_label_values(&["guest_page"])
            .inc();
        tracing::error!(error = why, "store unavailable on a guest page");
        ev.event = "store_unavailable";
        let html = pages::message(
            "Temporarily unavailable",
            "We cannot check your access right now. Nothing was lost; please try again in a minute.",
        );
        (Reply::html(503, html).with_header("retry-after", "30"), ev)
    }

    async fn verify(
        &self,
        req: &GuestRequest<'_>,
        token: &str,
        share: Share,
    ) -> (Reply, PageEvent) {
        let now = req.now;
        let failed = PageEvent::new("failed", Some(share.clone()));
        if let Some(ip) = req.client {
            let count = match self.shares.count_verify(&ip.to_string(), now).await {
                Ok(n) => n,
                Err(e) => return self.unavailable(failed, &e.to_string()),
            };
            if count > self.cfg().verify_per_ip_per_minute {
                let html = self.challenge_page(
                    token,
                    &share,
                    Some("Too many attempts from your network. Wait a minute, then try again."),
                    None,
                );
                let reply = Reply::html(429, html).with_header("retry-after", "60");
                return (reply, PageEvent::new("throttled", Some(share)));
            }
        }
        let Some(form) = req.form.and_then(|f| crate::target::parse_form(f).ok()) else {
            let html = self.challenge_page(
                token,
                &share,
                Some("Enter the 6-digit code from the email."),
                None,
            );
            return (Reply::html(400, html), failed);
        };
        let typed = form
            .iter()
            .find(|(k, _)| k == "code")
            .map_or("", |(_, v)| v.as_str());
        let outcome = match self.shares.check_code(&share, typed, now).await {
            Ok(o) => o,
            Err(e) => return self.unavailable(failed, &e.to_string()),
        };
        match outcome {
            CodeCheck::Verified(active) => {
                let grant = ShareGrant {
                    id: active.id.clone(),
                    case: active.case.clone(),
                    version: active.version.clone(),
                    profile: active.profile.clone(),
                    exp: active.expires_at,
                };
                // Keep the shares this browser already holds for the same guest.
                let mut grants: Vec<ShareGrant> = self
                    .current_session(req)
                    .filter(|c| c.sub == active.email)
                    .map(|c| c.shares)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|g| g.id != grant.id && self.shares.index().admit(&g.id, now))
                    .collect();
                grants.truncate(session::MAX_SHARES - 1);
                grants.push(grant.clone());
                let ttl = self.session.max_lifetime.as_secs();
                let Ok(jwt) = self.keys.mint(&active.email, grants, ttl) else {
                    return self.unavailable(failed, "cannot sign session");
                };
                let max_age = ttl.min(active.expires_at.saturating_sub(now));
                let reply = Reply::redirect(&landing(&self.cfg().landing, &grant))
                    .with_header("set-cookie", self.cookie(&jwt, max_age));
                (reply, PageEvent::new("verified", Some(*active)))
            }
            CodeCheck::Wrong { left } => {
                let msg = if left == 0 {
                    "That code is not right, and it can no longer be used. Send yourself a new code.".to_string()
                } else {
                    format!(
                        "That code is not right. {left} {} left.",
                        if left == 1 { "try" } else { "tries" }
                    )
                };
                let html = self.challenge_page(token, &share, Some(&msg), None);
                (Reply::html(401, html), failed)
            }
            CodeCheck::NoCode => {
                let html = self.challenge_page(
                    token,
                    &share,
                    Some("This code has expired or was already used. Send yourself a new code."),
                    None,
                );
                (Reply::html(401, html), failed)
            }
            CodeCheck::Locked => (locked_page(), PageEvent::new("locked", Some(share))),
            CodeCheck::Unusable => (invalid_link(), PageEvent::new("invalid_link", Some(share))),
        }
    }

    async fn resend(&self, token: &str, share: Share, now: u64) -> (Reply, PageEvent) {
        let link = self.shares.link(token);
        let outcome = match self.shares.send_code(&share, &link, true, now).await {
            Ok(o) => o,
            Err(e) => {
                let ev = PageEvent::new("resend_failed", Some(share));
                return self.unavailable(ev, &e.to_string());
            }
        };
        let (event, status, error, notice) = match &outcome {
            EmailOutcome::Sent => (
                "code_sent",
                200,
                None,
                Some(format!("We sent a new code to {}.", pages::mask_email(&share.email))),
            ),
            EmailOutcome::RateLimited { retry_after } => (
                "resend_refused",
                429,
                Some(format!("A code was sent very recently. You can ask for another in {retry_after} seconds.")),
                None,
            ),
            EmailOutcome::Failed(_) => (
                "resend_failed",
                502,
                Some("We could not send the email just now. Try again in a minute.".to_string()),
                None,
            ),
            EmailOutcome::Unusable | EmailOutcome::Skipped => {
                return (locked_page(), PageEvent::new("locked", Some(share)));
            }
        };
        let html = self.challenge_page(token, &share, error.as_deref(), notice.as_deref());
        (
            Reply::html(status, html),
            PageEvent::new(event, Some(share)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/s/abc"), Route::Challenge("abc"));
        assert_eq!(route("POST", "/s/abc/verify"), Route::Verify("abc"));
        assert_eq!(route("POST", "/s/abc/resend"), Route::Resend("abc"));
        assert_eq!(route("GET", "/guest"), Route::Shares);
        assert_eq!(route("POST", "/logout"), Route::Logout);
        assert_eq!(route("GET", "/logout"), Route::WrongMethod);
        assert_eq!(route("POST", "/s/abc"), Route::WrongMethod);
        assert_eq!(route("GET", "/s/abc/../x"), Route::NotFound);
        assert_eq!(route("GET", ""), Route::NotFound);
    }

    #[test]
    fn origin_is_scheme_host_port() {
        assert_eq!(
            public_origin("https://cases.example.com"),
            "https://cases.example.com"
        );
        assert_eq!(
            public_origin("http://127.0.0.1:8080/base"),
            "http://127.0.0.1:8080"
        );
    }
}

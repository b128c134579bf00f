//! guestgate's own guest routes under the configured prefix (default `/_guestgate`):
//! the challenge page for a link, code verification (which mints or extends the session
//! cookie), "send me a new code", the list of shares this browser holds, and logout.
//! Nothing under the prefix ever reaches the app.

use std::net::IpAddr;

use pingora::proxy::Session;
use pingora::Result;

use super::pages::{self, Challenge, HeldShare};
use super::response;
use crate::session::SessionConfig;
use crate::session::{self, CookieLookup, SessionKeys, ShareGrant};
use crate::shares::GuestConfig;
use crate::shares::{EmailOutcome, Shares};
use crate::stamp::rfc3339;
use crate::store::{CodeCheck, Share};

/// Largest form body accepted on guest routes.
const MAX_FORM: usize = 4096;

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

/// Routes a path that starts with the prefix.
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

/// What happened, for the one audit event of this request.
#[derive(Debug, Default, Clone)]
pub struct PageEvent {
    /// Event name.
    pub event: &'static str,
    /// The share concerned.
    pub share: Option<Share>,
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

fn cfg<'a>(g: &'a GuestRoutes<'_>) -> &'a GuestConfig {
    g.shares.guest_config()
}

fn public_origin(public_url: &str) -> &str {
    // scheme://host[:port] — everything before the first '/' after "://".
    let after = public_url.find("://").map_or(0, |i| i + 3);
    match public_url[after..].find('/') {
        Some(i) => &public_url[..after + i],
        None => public_url,
    }
}

async fn read_form(session: &mut Session) -> Option<Vec<(String, String)>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_FORM {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    crate::target::parse_form(&body).ok()
}

fn cookie_header(g: &GuestRoutes<'_>, value: &str, max_age: u64) -> String {
    let mut c = format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={}",
        g.session.wire_cookie_name(),
        cfg(g).same_site
    );
    if g.session.secure_cookie {
        c.push_str("; Secure");
    }
    c
}

fn invalid_link() -> String {
    pages::message(
        "This link cannot be used",
        "The link is not valid any more: it may have expired or been withdrawn. Ask the person who shared the case to share it again.",
    )
}

impl GuestRoutes<'_> {
    /// Answers one guest route. Store failures answer 503: never open.
    pub async fn handle(
        &self,
        session: &mut Session,
        route: Route<'_>,
        now: u64,
        client: Option<IpAddr>,
    ) -> Result<PageEvent> {
        let mut ev = PageEvent::default();
        let prefix = cfg(self).prefix.clone();
        match route {
            Route::NotFound | Route::WrongMethod => {
                let status = if route == Route::NotFound { 404 } else { 405 };
                ev.event = "not_found";
                response::page(
                    session,
                    status,
                    pages::message("Page not found", "There is nothing here."),
                    &[],
                )
                .await?;
            }
            Route::Challenge(token) => match self.shares.by_token(token, now).await {
                Ok(Some(share)) if !share.locked => {
                    ev.event = "page";
                    let html = self.challenge_page(&prefix, token, &share, None, None);
                    ev.share = Some(share);
                    response::page(session, 200, html, &[]).await?;
                }
                Ok(Some(share)) => {
                    ev.event = "locked";
                    ev.share = Some(share);
                    response::page(session, 403, locked_page(), &[]).await?;
                }
                Ok(None) => {
                    ev.event = "invalid_link";
                    response::page(session, 404, invalid_link(), &[]).await?;
                }
                Err(e) => return self.unavailable(session, ev, &e.to_string()).await,
            },
            Route::Verify(token) | Route::Resend(token) => {
                if !self.same_origin(session) {
                    ev.event = "cross_origin";
                    let html = pages::message("Please use the page", "This form has to be sent from the page guestgate showed you. Open your link again.");
                    response::page(session, 403, html, &[]).await?;
                    return Ok(ev);
                }
                let share = match self.shares.by_token(token, now).await {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        ev.event = "invalid_link";
                        response::page(session, 404, invalid_link(), &[]).await?;
                        return Ok(ev);
                    }
                    Err(e) => return self.unavailable(session, ev, &e.to_string()).await,
                };
                if matches!(route, Route::Verify(_)) {
                    return self
                        .verify(session, &prefix, token, share, now, client)
                        .await;
                }
                return self.resend(session, &prefix, token, share, now).await;
            }
            Route::Shares => {
                ev.event = "shares";
                let held = self.current_session(session);
                let (email, grants) = match &held {
                    Some(c) => (c.sub.as_str(), c.shares.as_slice()),
                    None => ("nobody", &[][..]),
                };
                let rows: Vec<HeldShare<'_>> = grants
                    .iter()
                    .filter(|g| self.shares.index().admit(&g.id, now))
                    .map(|g| HeldShare {
                        case: &g.case,
                        version: &g.version,
                        profile: &g.profile,
                        href: landing(&cfg(self).landing, g),
                        expires: rfc3339(g.exp),
                    })
                    .collect();
                let html = pages::shares(email, &rows, &format!("{prefix}/logout"));
                response::page(session, 200, html, &[]).await?;
            }
            Route::Logout => {
                ev.event = "logout";
                if !self.same_origin(session) {
                    response::page(
                        session,
                        403,
                        pages::message(
                            "Please use the page",
                            "Sign out from the page guestgate showed you.",
                        ),
                        &[],
                    )
                    .await?;
                    return Ok(ev);
                }
                let clear = cookie_header(self, "", 0);
                let html = pages::message(
                    "Signed out",
                    "You are signed out in this browser. Open your link again to come back.",
                );
                response::page(session, 200, html, &[("set-cookie", clear)]).await?;
            }
        }
        Ok(ev)
    }

    fn challenge_page(
        &self,
        prefix: &str,
        token: &str,
        share: &Share,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> String {
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

    fn same_origin(&self, session: &Session) -> bool {
        let origin = public_origin(&cfg(self).public_url);
        session
            .req_header()
            .headers
            .get("origin")
            .is_some_and(|o| o.as_bytes() == origin.as_bytes())
    }

    fn current_session(&self, session: &Session) -> Option<session::Claims> {
        let values = session
            .req_header()
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.as_bytes());
        match session::find_cookie(
            values,
            &self.session.cookie_name,
            &self.session.wire_cookie_name(),
        ) {
            CookieLookup::One(token) => self.keys.verify(token).ok(),
            _ => None,
        }
    }

    async fn unavailable(
        &self,
        session: &mut Session,
        mut ev: PageEvent,
        why: &str,
    ) -> Result<PageEvent> {
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
        response::page(session, 503, html, &[("retry-after", "30".into())]).await?;
        Ok(ev)
    }

    async fn verify(
        &self,
        session: &mut Session,
        prefix: &str,
        token: &str,
        share: Share,
        now: u64,
        client: Option<IpAddr>,
    ) -> Result<PageEvent> {
        let mut ev = PageEvent {
            event: "failed",
            share: Some(share.clone()),
        };
        if let Some(ip) = client {
            let count = match self.shares.count_verify(&ip.to_string(), now).await {
                Ok(n) => n,
                Err(e) => return self.unavailable(session, ev, &e.to_string()).await,
            };
            if count > cfg(self).verify_per_ip_per_minute {
                ev.event = "throttled";
                let html = self.challenge_page(
                    prefix,
                    token,
                    &share,
                    Some("Too many attempts from your network. Wait a minute, then try again."),
                    None,
                );
                response::page(session, 429, html, &[("retry-after", "60".into())]).await?;
                return Ok(ev);
            }
        }
        let Some(form) = read_form(session).await else {
            let html = self.challenge_page(
                prefix,
                token,
                &share,
                Some("Enter the 6-digit code from the email."),
                None,
            );
            response::page(session, 400, html, &[]).await?;
            return Ok(ev);
        };
        let typed = form
            .iter()
            .find(|(k, _)| k == "code")
            .map_or("", |(_, v)| v.as_str());
        let outcome = match self.shares.check_code(&share, typed, now).await {
            Ok(o) => o,
            Err(e) => return self.unavailable(session, ev, &e.to_string()).await,
        };
        match outcome {
            CodeCheck::Verified(active) => {
                ev.event = "verified";
                let grant = ShareGrant {
                    id: active.id.clone(),
                    case: active.case.clone(),
                    version: active.version.clone(),
                    profile: active.profile.clone(),
                    exp: active.expires_at,
                };
                // Keep the shares this browser already holds for the same guest.
                let mut grants: Vec<ShareGrant> = self
                    .current_session(session)
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
                    return self.unavailable(session, ev, "cannot sign session").await;
                };
                let max_age = ttl.min(active.expires_at.saturating_sub(now));
                let cookie = cookie_header(self, &jwt, max_age);
                ev.share = Some(*active);
                response::redirect(
                    session,
                    &landing(&cfg(self).landing, &grant),
                    &[("set-cookie", cookie)],
                )
                .await?;
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
                let html = self.challenge_page(prefix, token, &share, Some(&msg), None);
                response::page(session, 401, html, &[]).await?;
            }
            CodeCheck::NoCode => {
                let html = self.challenge_page(
                    prefix,
                    token,
                    &share,
                    Some("This code has expired or was already used. Send yourself a new code."),
                    None,
                );
                response::page(session, 401, html, &[]).await?;
            }
            CodeCheck::Locked => {
                ev.event = "locked";
                response::page(session, 403, locked_page(), &[]).await?;
            }
            CodeCheck::Unusable => {
                ev.event = "invalid_link";
                response::page(session, 404, invalid_link(), &[]).await?;
            }
        }
        Ok(ev)
    }

    async fn resend(
        &self,
        session: &mut Session,
        prefix: &str,
        token: &str,
        share: Share,
        now: u64,
    ) -> Result<PageEvent> {
        let link = self.shares.link(token);
        let outcome = match self.shares.send_code(&share, &link, true, now).await {
            Ok(o) => o,
            Err(e) => {
                let ev = PageEvent {
                    event: "resend_failed",
                    share: Some(share),
                };
                return self.unavailable(session, ev, &e.to_string()).await;
            }
        };
        let (event, status, error, notice) = match &outcome {
            EmailOutcome::Sent => ("code_sent", 200, None, Some(format!("We sent a new code to {}.", pages::mask_email(&share.email)))),
            EmailOutcome::RateLimited { retry_after } => (
                "resend_refused",
                429,
                Some(format!("A code was sent very recently. You can ask for another in {retry_after} seconds.")),
                None,
            ),
            EmailOutcome::Failed(_) => ("resend_failed", 502, Some("We could not send the email just now. Try again in a minute.".to_string()), None),
            EmailOutcome::Unusable | EmailOutcome::Skipped => {
                let ev = PageEvent {
                    event: "locked",
                    share: Some(share),
                };
                response::page(session, 403, locked_page(), &[]).await?;
                return Ok(ev);
            }
        };
        let html = self.challenge_page(prefix, token, &share, error.as_deref(), notice.as_deref());
        response::page(session, status, html, &[]).await?;
        Ok(PageEvent {
            event,
            share: Some(share),
        })
    }
}

fn locked_page() -> String {
    pages::message(
        "This link is locked",
        "Too many wrong codes were entered for this link, so it has been locked to protect the case. Ask the person who shared the case to share it again.",
    )
}

/// The landing path for a share (ids are validated to path-safe characters at creation).
pub fn landing(template: &str, g: &ShareGrant) -> String {
    template
        .replace("{case}", &g.case)
        .replace("{version}", &g.version)
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

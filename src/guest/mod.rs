//! guestgate's own routes for guests, under the configured prefix (default
//! `/_guestgate`): the challenge page for a link, code verification (which mints or
//! extends the session cookie), "send me a new code", the cases this browser holds, and
//! signing out. Nothing under the prefix ever reaches the app.
//!
//! Each route is a function from a [`GuestRequest`] (plain data the proxy read once) to
//! a [`Reply`] and the [`PageEvent`] to audit; the proxy writes the reply. Forms follow
//! post/redirect/get: after a wrong code or a new code the browser is sent back to the
//! challenge page (303), which says what happened, so a reload never posts again. Store
//! failures answer 503: never open.

pub mod forgery;
pub mod pages;

use std::net::IpAddr;

use crate::otp;
use crate::reply::Reply;
use crate::session::{self, CookieLookup, SessionConfig, SessionKeys, ShareGrant};
use crate::shares::{EmailOutcome, GuestConfig, Shares};
use crate::stamp::human;
use crate::store::{CodeCheck, Share};
use forgery::{FormKey, FormOrigin, Purpose};
use pages::{Challenge, Form, HeldShare, WaysBack};

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
    /// `GET /banner.css`: the banner's stylesheet.
    BannerCss,
    /// `GET /jwks.json`: the scope assertion's public keys, when published here.
    Jwks,
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
        ["banner.css"] if get => Route::BannerCss,
        ["jwks.json"] if get => Route::Jwks,
        ["s", _]
        | ["s", _, "verify" | "resend"]
        | ["guest"]
        | ["logout"]
        | ["banner.css"]
        | ["jwks.json"] => Route::WrongMethod,
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
    /// The query string, if any (the challenge page's message after a redirect).
    pub query: Option<&'a str>,
    /// Values of every `Cookie` header.
    pub cookies: Vec<&'a [u8]>,
    /// `Origin` and `Sec-Fetch-Site`.
    pub from: FormOrigin<'a>,
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
    /// Anti-forgery tokens for the forms.
    pub forms: &'a FormKey,
    /// The scope assertion's JWKS, when it is published under the prefix.
    pub jwks: Option<&'a str>,
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

/// What the challenge page says after a redirect: carried in its query, a fixed set of
/// messages (numbers bounded), so a crafted link can only show one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flash {
    Wrong(u32),
    Expired,
    Wait(u64),
    MailFailed,
    Sent,
}

impl Flash {
    fn query(self) -> String {
        match self {
            Self::Wrong(left) => format!("e=wrong&left={left}"),
            Self::Expired => "e=expired".into(),
            Self::Wait(secs) => format!("e=wait&s={secs}"),
            Self::MailFailed => "e=mail".into(),
            Self::Sent => "n=sent".into(),
        }
    }

    fn parse(query: Option<&str>) -> Option<Self> {
        let get = |key: &str| {
            query?
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        let num = |v: Option<String>, max: u64| v?.parse::<u64>().ok().filter(|n| *n <= max);
        match get("e").as_deref() {
            Some("wrong") => {
                num(get("left"), u64::from(otp::MAX_ATTEMPTS)).map(|n| Self::Wrong(n as u32))
            }
            Some("expired") => Some(Self::Expired),
            Some("wait") => num(get("s"), 3600).map(Self::Wait),
            Some("mail") => Some(Self::MailFailed),
            _ if get("n").as_deref() == Some("sent") => Some(Self::Sent),
            _ => None,
        }
    }

    /// (error, notice) for the page.
    fn words(self, masked_email: &str) -> (Option<String>, Option<String>) {
        match self {
            Self::Wrong(0) => (Some("That code is not right, and it can no longer be used. Send yourself a new code.".into()), None),
            Self::Wrong(left) => (
                Some(format!(
                    "That code is not right. {left} {} left.",
                    if left == 1 { "try" } else { "tries" }
                )),
                None,
            ),
            Self::Expired => (Some("This code has expired or was already used. Send yourself a new code.".into()), None),
            Self::Wait(secs) => (Some(format!("A code was sent very recently. You can ask for another in {secs} seconds.")), None),
            Self::MailFailed => (Some("We could not send the email just now. Try again in a minute.".into()), None),
            Self::Sent => (None, Some(format!("We sent a new code to {masked_email}."))),
        }
    }
}

impl GuestRoutes<'_> {
    fn cfg(&self) -> &GuestConfig {
        self.shares.guest_config()
    }

    fn challenge_path(&self, token: &str) -> String {
        format!("{}/s/{token}", self.cfg().prefix)
    }

    /// Answers one guest request.
    pub async fn handle(&self, req: &GuestRequest<'_>) -> (Reply, PageEvent) {
        let now = req.now;
        match route(req.method, req.path) {
            Route::NotFound => self.not_found(404),
            Route::WrongMethod => self.not_found(405),
            Route::BannerCss => (
                Reply::asset("text/css; charset=utf-8", crate::banner::STYLESHEET),
                PageEvent::new("asset", None),
            ),
            Route::Jwks => match self.jwks {
                Some(jwks) => (
                    Reply::asset("application/jwk-set+json", jwks),
                    PageEvent::new("asset", None),
                ),
                None => self.not_found(404),
            },
            Route::Challenge(token) => match self.shares.by_token(token, now).await {
                Ok(Some(share)) if !share.locked => {
                    let (browser, set_cookie) = self.browser(req);
                    let (error, notice) = Flash::parse(req.query)
                        .map(|f| f.words(&pages::mask_email(&share.email)))
                        .unwrap_or_default();
                    let html = self.challenge_page(
                        token,
                        &share,
                        &browser,
                        error.as_deref(),
                        notice.as_deref(),
                        now,
                    );
                    let mut reply = Reply::html(200, html);
                    if let Some(c) = set_cookie {
                        reply = reply.with_header("set-cookie", c);
                    }
                    (reply, PageEvent::new("page", Some(share)))
                }
                Ok(Some(share)) => (self.locked_page(), PageEvent::new("locked", Some(share))),
                Ok(None) => (self.invalid_link(), PageEvent::new("invalid_link", None)),
                Err(e) => self.unavailable(PageEvent::default(), &e.to_string()),
            },
            route @ (Route::Verify(token) | Route::Resend(token)) => {
                let back = self.challenge_path(token);
                let Some(form) = req.form.and_then(|f| crate::target::parse_form(f).ok()) else {
                    return (self.bad_form(&back), PageEvent::new("bad_request", None));
                };
                let field = |name: &str| {
                    form.iter()
                        .find(|(k, _)| k == name)
                        .map_or("", |(_, v)| v.as_str())
                };
                let hash = otp::token_hash(token);
                if !self.form_allowed(req, Purpose::Link(&hash), field(forgery::FIELD)) {
                    return (self.cross_site(&back), PageEvent::new("cross_origin", None));
                }
                let share = match self.shares.by_token(token, now).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return (self.invalid_link(), PageEvent::new("invalid_link", None)),
                    Err(e) => return self.unavailable(PageEvent::default(), &e.to_string()),
                };
                if matches!(route, Route::Verify(_)) {
                    self.verify(req, token, share, field("code")).await
                } else {
                    self.resend(token, share, now).await
                }
            }
            Route::Shares => {
                let (browser, set_cookie) = self.browser(req);
                let mut reply = self.shares_page(req, &browser);
                if let Some(c) = set_cookie {
                    reply = reply.with_header("set-cookie", c);
                }
                (reply, PageEvent::new("shares", None))
            }
            Route::Logout => {
                let token = req
                    .form
                    .and_then(|f| crate::target::parse_form(f).ok())
                    .and_then(|f| f.into_iter().find(|(k, _)| k == forgery::FIELD))
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                if !self.form_allowed(req, Purpose::SignOut, &token) {
                    let ways = self.my_shares_only();
                    let html = pages::message(
                        "Please use the page",
                        "Sign out from a page guestgate showed you: the form could not be checked.",
                        &ways,
                    );
                    return (Reply::html(403, html), PageEvent::new("cross_origin", None));
                }
                let html = pages::message(
                    "Signed out",
                    "You are signed out in this browser. To open a shared case again, use the link in your invitation email.",
                    &WaysBack::default(),
                );
                let reply = Reply::html(200, html).with_header("set-cookie", self.cookie("", 0));
                (reply, PageEvent::new("logout", None))
            }
        }
    }

    /// This browser's id for form tokens, and the `Set-Cookie` that gives it one when it
    /// has none yet.
    pub fn browser(&self, req: &GuestRequest<'_>) -> (String, Option<String>) {
        let (base, wire) = self.form_cookie_names();
        if let Some(id) = forgery::browser_id(&req.cookies, &base, &wire) {
            return (id.to_string(), None);
        }
        let id = forgery::new_browser_id();
        let mut c = format!("{wire}={id}; Path=/; HttpOnly; SameSite=Strict");
        if self.session.secure_cookie {
            c.push_str("; Secure");
        }
        (id, Some(c))
    }

    /// The form cookie's name without and with its `__Host-` prefix.
    pub fn form_cookie_names(&self) -> (String, String) {
        self.session.form_cookie_names()
    }

    fn form_allowed(&self, req: &GuestRequest<'_>, purpose: Purpose<'_>, token: &str) -> bool {
        let origin = public_origin(&self.cfg().public_url);
        req.from.allows(origin, || {
            let (base, wire) = self.form_cookie_names();
            forgery::browser_id(&req.cookies, &base, &wire)
                .is_some_and(|b| self.forms.check(b, purpose, token))
        })
    }

    /// Where a guest can go from a page that ends their path: the cases still open to this
    /// browser, "My shares", and a sign-out form (with the `Set-Cookie` for a form cookie
    /// when the browser has none). `held` are the shares in the session.
    pub fn ways_back(
        &self,
        req: &GuestRequest<'_>,
        held: &[ShareGrant],
    ) -> (WaysBack, Option<String>) {
        let (browser, set_cookie) = self.browser(req);
        let open = held
            .iter()
            .filter(|g| g.exp > req.now && self.shares.index().usable(&g.id, req.now))
            .map(|g| {
                (
                    format!("Case {}, version {}", g.case, g.version),
                    landing(&self.cfg().landing, g),
                )
            })
            .collect();
        let ways = WaysBack {
            open,
            my_shares: Some(format!("{}/guest", self.cfg().prefix)),
            sign_out: Some((
                format!("{}/logout", self.cfg().prefix),
                self.forms.token(&browser, Purpose::SignOut),
            )),
            challenge: None,
        };
        (ways, set_cookie)
    }

    fn not_found(&self, status: u16) -> (Reply, PageEvent) {
        let html = pages::message(
            "Page not found",
            "There is nothing here.",
            &self.my_shares_only(),
        );
        (Reply::html(status, html), PageEvent::new("not_found", None))
    }

    fn my_shares_only(&self) -> WaysBack {
        WaysBack {
            my_shares: Some(format!("{}/guest", self.cfg().prefix)),
            ..WaysBack::default()
        }
    }

    fn shares_page(&self, req: &GuestRequest<'_>, browser: &str) -> Reply {
        let held = self.current_session(req);
        let (email, grants) = match &held {
            Some(c) => (c.sub.as_str(), c.shares.as_slice()),
            None => ("", &[][..]),
        };
        let accesses: Vec<String> = grants
            .iter()
            .map(|g| self.shares.access(&g.profile).can)
            .collect();
        let rows: Vec<HeldShare<'_>> = grants
            .iter()
            .zip(&accesses)
            .filter(|(g, _)| g.exp > req.now && self.shares.index().usable(&g.id, req.now))
            .map(|(g, access)| HeldShare {
                case: &g.case,
                version: &g.version,
                access,
                href: landing(&self.cfg().landing, g),
                ends: human(g.exp, req.now),
            })
            .collect();
        let logout = format!("{}/logout", self.cfg().prefix);
        let token = self.forms.token(browser, Purpose::SignOut);
        let form = Form {
            action: &logout,
            token: &token,
        };
        Reply::html(200, pages::shares(email, &rows, &form))
    }

    fn challenge_page(
        &self,
        token: &str,
        share: &Share,
        browser: &str,
        error: Option<&str>,
        notice: Option<&str>,
        now: u64,
    ) -> String {
        let prefix = &self.cfg().prefix;
        let form_token = self
            .forms
            .token(browser, Purpose::Link(&otp::token_hash(token)));
        let (verify, resend) = (
            format!("{prefix}/s/{token}/verify"),
            format!("{prefix}/s/{token}/resend"),
        );
        pages::challenge(&Challenge {
            masked_email: &pages::mask_email(&share.email),
            case: &share.case,
            version: &share.version,
            shared_by: &share.created_by,
            access: &self.shares.access(&share.profile),
            ends: &human(share.expires_at, now),
            code_minutes: self.cfg().code_lifetime.as_secs().div_ceil(60),
            verify: Form {
                action: &verify,
                token: &form_token,
            },
            resend: Form {
                action: &resend,
                token: &form_token,
            },
            error,
            notice,
        })
    }

    fn current_session(&self, req: &GuestRequest<'_>) -> Option<std::sync::Arc<session::Claims>> {
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

    fn redirect_back(&self, token: &str, flash: Flash) -> Reply {
        Reply::redirect(&format!("{}?{}", self.challenge_path(token), flash.query()))
    }

    fn invalid_link(&self) -> Reply {
        Reply::html(
            404,
            pages::message(
                "This link cannot be used",
                "The link is not valid any more: it may have expired or been withdrawn. Ask the person who shared the case to share it again.",
                &self.my_shares_only(),
            ),
        )
    }

    fn locked_page(&self) -> Reply {
        Reply::html(
            403,
            pages::message(
                "This link is locked",
                "Too many wrong codes were entered for this link, so it has been locked to protect the case. Ask the person who shared the case to share it again.",
                &self.my_shares_only(),
            ),
        )
    }

    fn bad_form(&self, back: &str) -> Reply {
        let ways = WaysBack {
            challenge: Some(back.to_string()),
            ..WaysBack::default()
        };
        Reply::html(
            400,
            pages::message(
                "That form could not be read",
                "Nothing was checked and no try was used. Go back to the code page and enter the code again.",
                &ways,
            ),
        )
    }

    fn cross_site(&self, back: &str) -> Reply {
        let ways = WaysBack {
            challenge: Some(back.to_string()),
            ..WaysBack::default()
        };
        Reply::html(
            403,
            pages::message(
                "Please use the page",
                "This form has to be sent from the page guestgate showed you, and it could not be checked. Open the code page again and enter the code there.",
                &ways,
            ),
        )
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
            &WaysBack::default(),
        );
        (Reply::html(503, html).with_header("retry-after", "30"), ev)
    }

    async fn verify(
        &self,
        req: &GuestRequest<'_>,
        token: &str,
        share: Share,
        typed: &str,
    ) -> (Reply, PageEvent) {
        let now = req.now;
        let failed = PageEvent::new("failed", Some(share.clone()));
        if let Some(ip) = req.client {
            let count = match self.shares.count_verify(&ip.to_string(), now).await {
                Ok(n) => n,
                Err(e) => return self.unavailable(failed, &e.to_string()),
            };
            if count > self.cfg().verify_per_ip_per_minute {
                let (browser, _) = self.browser(req);
                let html = self.challenge_page(
                    token,
                    &share,
                    &browser,
                    Some("Too many attempts from your network. Wait a minute, then try again."),
                    None,
                    now,
                );
                let reply = Reply::html(429, html).with_header("retry-after", "60");
                return (reply, PageEvent::new("throttled", Some(share)));
            }
        }
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
                    .map(|c| c.shares.clone())
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
            CodeCheck::Wrong { left } => (self.redirect_back(token, Flash::Wrong(left)), failed),
            CodeCheck::NoCode => (self.redirect_back(token, Flash::Expired), failed),
            CodeCheck::Locked => (self.locked_page(), PageEvent::new("locked", Some(share))),
            CodeCheck::Unusable => (
                self.invalid_link(),
                PageEvent::new("invalid_link", Some(share)),
            ),
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
        let (event, flash) = match &outcome {
            EmailOutcome::Sent => ("code_sent", Flash::Sent),
            EmailOutcome::RateLimited { retry_after } => {
                ("resend_refused", Flash::Wait(*retry_after))
            }
            EmailOutcome::Failed(_) => ("resend_failed", Flash::MailFailed),
            EmailOutcome::Unusable | EmailOutcome::Skipped => {
                return (self.locked_page(), PageEvent::new("locked", Some(share)));
            }
        };
        (
            self.redirect_back(token, flash),
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

    /// The guest flows over a real embedded store and file mailer: no proxy involved.
    struct Rig {
        dir: tempfile::TempDir,
        shares: Shares,
        keys: SessionKeys,
        session: SessionConfig,
        forms: FormKey,
    }

    impl Rig {
        fn new() -> Rig {
            use std::sync::Arc;
            let dir = tempfile::tempdir().unwrap();
            let cfg = dir.path().join("g.toml");
            std::fs::write(
                &cfg,
                format!(
                    "[upstream]\naddress = \"127.0.0.1:1\"\n[guest]\npublic_url = \"https://cases.example\"\n[mail]\noutbox = \"outbox\"\n[policies]\ndir = \"{}\"\n",
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").display()
                ),
            )
            .unwrap();
            let config = crate::config::Config::load_with_env(&cfg, Vec::new()).unwrap();
            let set = crate::policy::PolicySet::load_dir(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
            )
            .unwrap();
            let shares = Shares::new(
                Arc::new(crate::store::EmbeddedStore::open(&dir.path().join("s.redb")).unwrap()),
                Arc::new(crate::store::ShareIndex::default()),
                Arc::new(crate::mail::LettreMailer::new(&config.mail_from, &config.mail).unwrap()),
                crate::otp::CodeKey::derive(&[1u8; 32]),
                Arc::new(crate::reload::LivePolicies::fixed(set, "guestgate_session")),
                config.guest.clone(),
            );
            Rig {
                dir,
                shares,
                keys: SessionKeys::new(&[2u8; 32], &[], "guestgate", "guestgate"),
                session: config.session.clone(),
                forms: FormKey::derive(&[3u8; 32]),
            }
        }

        fn routes(&self) -> GuestRoutes<'_> {
            GuestRoutes {
                shares: &self.shares,
                keys: &self.keys,
                session: &self.session,
                forms: &self.forms,
                jwks: Some("{\"keys\":[]}"),
            }
        }

        /// A share, its link token and its code (from the outbox).
        async fn share(&self) -> (String, String) {
            let now = crate::stamp::unix_now();
            let created = self
                .shares
                .create(
                    crate::shares::NewShare {
                        email: "g@x.test".into(),
                        case: "42".into(),
                        version: "3".into(),
                        profile: None,
                        expires_in: None,
                        notify: true,
                        created_by: "Ada".into(),
                        contact: None,
                        owner: "case-app".into(),
                        by_admin: true,
                    },
                    now,
                )
                .await
                .unwrap();
            let token = created.link.rsplit('/').next().unwrap().to_string();
            let eml = std::fs::read_dir(self.dir.path().join("outbox"))
                .unwrap()
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .find(|m| m.contains(&token[..20]))
                .unwrap()
                .replace("=\r\n", "");
            let code = eml.split("this code: ").nth(1).unwrap()[..6].to_string();
            (token, code)
        }
    }

    fn request<'a>(method: &'a str, path: &'a str, cookies: Vec<&'a [u8]>) -> GuestRequest<'a> {
        GuestRequest {
            method,
            path,
            cookies,
            now: crate::stamp::unix_now(),
            ..GuestRequest::default()
        }
    }

    /// `name=value` of the first `Set-Cookie` of a reply.
    fn cookie_pair(r: &Reply) -> String {
        r.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn the_challenge_flow_without_a_proxy() {
        let rig = Rig::new();
        let routes = rig.routes();
        let (token, code) = rig.share().await;
        let path = format!("/s/{token}");

        // The page: 200, a form cookie, forms with a token bound to it.
        let (page, ev) = routes.handle(&request("GET", &path, vec![])).await;
        assert_eq!((page.status, ev.event), (200, "page"));
        let form_cookie = cookie_pair(&page);
        assert!(
            form_cookie.starts_with("__Host-guestgate_session_form="),
            "{form_cookie}"
        );
        let browser = form_cookie.split('=').nth(1).unwrap().to_string();
        let hash = otp::token_hash(&token);
        let form_token = rig.forms.token(&browser, Purpose::Link(&hash));
        assert!(page.text().contains(&form_token));
        let (unknown, ev) = routes.handle(&request("GET", "/s/nope", vec![])).await;
        assert_eq!((unknown.status, ev.event), (404, "invalid_link"));

        let verify = format!("/s/{token}/verify");
        let routes = &routes;
        let post = |form: String, origin: Option<&'static [u8]>, site: Option<&'static [u8]>| {
            let cookie = form_cookie.clone();
            let verify = verify.clone();
            async move {
                let form = form.into_bytes();
                let cookies = vec![cookie.as_bytes()];
                let req = GuestRequest {
                    form: Some(&form),
                    from: FormOrigin {
                        origin,
                        fetch_site: site,
                    },
                    ..request("POST", &verify, cookies)
                };
                routes.handle(&req).await
            }
        };
        let origin: &'static [u8] = b"https://cases.example";
        // Another site, or no origin without a token: refused before any code is checked.
        let (r, ev) = post(format!("code={code}"), Some(b"https://evil.example"), None).await;
        assert_eq!((r.status, ev.event), (403, "cross_origin"));
        let (r, ev) = post(format!("code={code}"), Some(b"null"), Some(b"same-origin")).await;
        assert_eq!((r.status, ev.event), (403, "cross_origin"));
        let (r, _) = post(
            format!("code={code}&form_token={form_token}"),
            Some(b"null"),
            Some(b"cross-site"),
        )
        .await;
        assert_eq!(r.status, 403);
        // A wrong code: back to the code page, which says so.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (r, ev) = post(format!("code={wrong}"), Some(origin), Some(b"same-origin")).await;
        assert_eq!((r.status, ev.event), (303, "failed"));
        let back = r.header("location").unwrap().to_string();
        assert_eq!(back, format!("/_guestgate/s/{token}?e=wrong&left=4"));
        let (q_path, q) = back
            .trim_start_matches("/_guestgate")
            .split_once('?')
            .unwrap();
        let req = GuestRequest {
            query: Some(q),
            ..request("GET", q_path, vec![form_cookie.as_bytes()])
        };
        let (page, _) = routes.handle(&req).await;
        assert!(page
            .text()
            .contains("That code is not right. 4 tries left."));
        assert!(page
            .text()
            .contains("<title>Error: enter your code</title>"));
        assert!(
            page.header("set-cookie").is_none(),
            "the browser keeps its id"
        );
        // The right code with Origin: null and the page's token: a session, to the case.
        let (r, ev) = post(
            format!("code={code}&form_token={form_token}"),
            Some(b"null"),
            Some(b"same-origin"),
        )
        .await;
        assert_eq!((r.status, ev.event), (303, "verified"));
        assert_eq!(r.header("location"), Some("/cases/42/versions/3"));
        let session = cookie_pair(&r);
        assert!(session.starts_with("__Host-guestgate_session="));

        // My shares lists the case; signing out needs the sign-out token.
        let both = format!("{session}; {form_cookie}");
        let (mine, _) = routes
            .handle(&request("GET", "/guest", vec![both.as_bytes()]))
            .await;
        assert!(
            mine.text().contains("Case 42, version 3"),
            "{}",
            mine.text()
        );
        let sign_out = rig.forms.token(&browser, Purpose::SignOut);
        let body = format!("form_token={sign_out}");
        let req = GuestRequest {
            form: Some(body.as_bytes()),
            from: FormOrigin {
                origin: None,
                fetch_site: None,
            },
            ..request("POST", "/logout", vec![both.as_bytes()])
        };
        let (out, ev) = routes.handle(&req).await;
        assert_eq!((out.status, ev.event), (200, "logout"));
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
        let body = format!("form_token={form_token}");
        let req = GuestRequest {
            form: Some(body.as_bytes()),
            ..request("POST", "/logout", vec![both.as_bytes()])
        };
        assert_eq!(
            routes.handle(&req).await.0.status,
            403,
            "a link's token does not sign out"
        );
    }

    #[tokio::test]
    async fn new_codes_and_unreadable_forms() {
        let rig = Rig::new();
        let routes = rig.routes();
        let (token, _) = rig.share().await;
        let resend = format!("/s/{token}/resend");
        let req = GuestRequest {
            form: Some(b""),
            from: FormOrigin {
                origin: Some(b"https://cases.example"),
                fetch_site: Some(b"same-origin"),
            },
            ..request("POST", &resend, vec![])
        };
        // Right after the invitation: too soon, said on the code page.
        let (r, ev) = routes.handle(&req).await;
        assert_eq!(ev.event, "resend_refused");
        assert!(r.header("location").unwrap().contains("?e=wait&s="));
        // A form that cannot be read: 400, with the way back to the code page.
        let verify = format!("/s/{token}/verify");
        let req = GuestRequest {
            form: None,
            ..request("POST", &verify, vec![])
        };
        let (r, _) = routes.handle(&req).await;
        assert_eq!(r.status, 400);
        assert!(r
            .text()
            .contains(&format!("href=\"/_guestgate/s/{token}\"")));
    }

    #[test]
    fn flash_messages_round_trip_and_refuse_anything_else() {
        for f in [
            Flash::Wrong(4),
            Flash::Wrong(0),
            Flash::Expired,
            Flash::Wait(42),
            Flash::MailFailed,
            Flash::Sent,
        ] {
            assert_eq!(Flash::parse(Some(&f.query())), Some(f));
        }
        for q in [
            "e=wrong&left=99",
            "e=wait&s=99999",
            "e=other",
            "",
            "left=3",
            "e=wrong",
        ] {
            assert_eq!(Flash::parse(Some(q)), None, "{q}");
        }
        assert_eq!(Flash::parse(None), None);
    }
}

//! The pingora `ProxyHttp` implementation. Each phase delegates: `request_filter` reads
//! the request once (`request.rs`), asks the [`Gate`] for a verdict or the guest routes
//! for a page, and writes refusals and pages through `respond.rs`;
//! `upstream_request_filter` applies the header edits (`headers.rs`); `logging` writes the
//! one audit event (`record.rs`). No decision logic lives here.

pub mod headers;
mod record;
mod request;
pub mod respond;
pub mod response;
pub mod stopping;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::Result;
use tracing::Instrument;

use crate::assertion::AssertionKeys;
use crate::audit::AuditSink;
use crate::banner::{self, BannerView, Injector, Outcome};
use crate::client_addr::TrustedProxies;
use crate::decision::{Gate, Verdict};
use crate::guest::forgery::{FormKey, FormOrigin, Purpose};
use crate::guest::{GuestRequest, GuestRoutes, PageEvent};
use crate::metrics;
use crate::reason::{Answer, Reason};
use crate::refusal;
use crate::session::SessionConfig;
use crate::shares::Shares;
use crate::stamp::unix_now;

/// Where the app is, and how requests reach it.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port`.
    pub address: String,
    /// The `Host` allowed guest requests carry to the app (never the client's).
    pub host: String,
    /// Whether the app reads chunked request bodies; when not, they are refused (411).
    pub chunked_request_bodies: bool,
    /// Connect with TLS.
    pub tls: bool,
    /// SNI when `tls`.
    pub sni: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    request_id: String,
    /// The client (through trusted proxies), for throttles, audit and `X-Forwarded-For`.
    client: Option<IpAddr>,
    /// The same address as text, written once for `X-Forwarded-For` and the audit line.
    client_text: Option<crate::client_addr::IpText>,
    arrived: SystemTime,
    started: Instant,
    verdict: Option<Verdict>,
    /// Boxed, as the banner below: a guest page or an HTML page is the rare request, and
    /// pingora moves this context (inside its request future) twice per request.
    page: Option<Box<PageEvent>>,
    /// When the decision to forward was made: the upstream timer starts there (the
    /// clock read that ends the decision's own timer serves both).
    forwarded_at: Option<Instant>,
    /// The banner going into this response's HTML, chunk by chunk.
    banner: Option<Box<Injector>>,
}

/// The proxy service.
pub struct GuestGateProxy {
    gate: Arc<Gate>,
    upstream: SocketAddr,
    upstream_cfg: UpstreamConfig,
    audit: Arc<AuditSink>,
    audit_pass_through: bool,
    shares: Arc<Shares>,
    session_cfg: SessionConfig,
    trusted_proxies: TrustedProxies,
    /// The `Host` guest requests carry upstream.
    upstream_host: http::HeaderValue,
    forms: FormKey,
    assertion: Option<Arc<AssertionKeys>>,
    assertion_header: http::HeaderName,
    jwks_under_prefix: bool,
}

/// Everything the proxy is built from.
pub struct ProxyParts {
    /// Decision engine.
    pub gate: Arc<Gate>,
    /// The app's resolved address.
    pub upstream: SocketAddr,
    /// Upstream settings.
    pub upstream_cfg: UpstreamConfig,
    /// Audit stream.
    pub audit: Arc<AuditSink>,
    /// Audit non-guest requests too.
    pub audit_pass_through: bool,
    /// Share flows (guest pages).
    pub shares: Arc<Shares>,
    /// Session cookie settings.
    pub session_cfg: SessionConfig,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Anti-forgery tokens for guestgate's forms.
    pub forms: FormKey,
    /// The scope assertion's keys, when assertions are on.
    pub assertion: Option<Arc<AssertionKeys>>,
    /// The header that carries it.
    pub assertion_header: http::HeaderName,
    /// Serve the JWKS under guestgate's prefix too.
    pub jwks_under_prefix: bool,
}

impl GuestGateProxy {
    /// Wires the proxy.
    pub fn new(p: ProxyParts) -> std::result::Result<Self, http::header::InvalidHeaderValue> {
        Ok(Self {
            upstream_host: http::HeaderValue::from_str(&p.upstream_cfg.host)?,
            trusted_proxies: p.trusted_proxies,
            gate: p.gate,
            upstream: p.upstream,
            upstream_cfg: p.upstream_cfg,
            audit: p.audit,
            audit_pass_through: p.audit_pass_through,
            shares: p.shares,
            session_cfg: p.session_cfg,
            forms: p.forms,
            assertion: p.assertion,
            assertion_header: p.assertion_header,
            jwks_under_prefix: p.jwks_under_prefix,
        })
    }

    fn routes(&self) -> GuestRoutes<'_> {
        GuestRoutes {
            shares: &self.shares,
            keys: &self.gate.keys,
            session: &self.session_cfg,
            forms: &self.forms,
            jwks: self
                .assertion
                .as_deref()
                .filter(|_| self.jwks_under_prefix)
                .map(AssertionKeys::jwks),
        }
    }

    /// The banner for an allowed guest's HTML page: the share's scope in the profile's
    /// words and a sign-out form whose token needs the browser's form cookie (set here
    /// when the browser has none yet).
    fn banner_for(
        &self,
        session: &Session,
        words: &crate::policy::BannerWords,
        share: &crate::session::ShareGrant,
    ) -> (bytes::Bytes, Option<String>) {
        let req = GuestRequest {
            cookies: request::cookies(session.req_header()),
            ..GuestRequest::default()
        };
        let (browser, set_cookie) = self.routes().browser(&req);
        let token = self.forms.token(&browser, Purpose::SignOut);
        let html = banner::render(&BannerView {
            label: &words.label,
            text: &words.text,
            case: &share.case,
            version: &share.version,
            prefix: &self.shares.guest_config().prefix,
            sign_out_token: &token,
        });
        (html, set_cookie)
    }

    /// What a refusal page offers a guest: the cases still open, "My shares" and signing
    /// out, and which shares ended; nothing for a request that showed no guest cookie.
    fn refusal_context(
        &self,
        session: &Session,
        verdict: &Verdict,
        now: u64,
    ) -> (refusal::Context, Option<String>) {
        let answer = verdict.reason().answer();
        let cookie_shown = matches!(answer, Some(Answer::SessionInvalid | Answer::AccessEnded));
        if verdict.guest().is_none() && !cookie_shown {
            return (refusal::Context::default(), None);
        }
        let req = GuestRequest {
            cookies: request::cookies(session.req_header()),
            now,
            ..GuestRequest::default()
        };
        let held = verdict.guest().map_or(&[][..], |g| g.held.as_slice());
        let (ways, set_cookie) = self.routes().ways_back(&req, held);
        let index = self.shares.index();
        let ended = held
            .iter()
            .filter(|g| g.exp <= now || !index.usable(&g.id, now))
            .map(|g| format!("case {}, version {}", g.case, g.version))
            .collect();
        (refusal::Context { ways, ended }, set_cookie)
    }

    /// The part of the path after guestgate's prefix, if the request is for a guest page.
    fn guest_route_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.shares.guest_config().prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Decides; answers refusals here so the app never sees them.
    async fn filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if self
            .guest_route_path(session.req_header().uri.path())
            .is_some()
        {
            // Every line logged on a guest page (store, mail) carries the request id.
            let span = tracing::info_span!("request", request_id = %ctx.request_id);
            return self.guest_page(session, ctx).instrument(span).await;
        }
        let frames_carry_body = request::frames_carry_body(session).await;
        let raw_head = session.as_downstream().to_h1_raw();
        let facts = request::facts(session, &raw_head, frames_carry_body);
        let decided = Instant::now();
        // Read here, not at arrival: an HTTP/2 client can hold a request's stream open
        // in `frames_carry_body` for as long as it likes, and a session that expired
        // meanwhile must not be judged as of the head.
        let now = unix_now();
        let mut verdict = self.gate.decide(&facts, now);
        let forwarded_at = Instant::now();
        metrics::get()
            .decision_seconds
            .observe(forwarded_at.duration_since(decided).as_secs_f64());
        ctx.forwarded_at = Some(forwarded_at);
        if let Some(id) = self.just_verified_elsewhere(&verdict) {
            // A share verified on another replica moments ago: ask the store once rather
            // than refuse a guest who just entered the right code. Revoked shares never
            // get here, so revocation stays a local, instant decision.
            // The deciding itself logs nothing, so only this store call gets a span: a
            // span per request costs more than the rest of a pass-through's filtering.
            let span = tracing::info_span!("request", request_id = %ctx.request_id);
            if self
                .shares
                .refresh(&id, now)
                .instrument(span)
                .await
                .unwrap_or(false)
            {
                verdict = self.gate.decide(&facts, now);
                // the upstream timer starts at this decision, not before the store call
                ctx.forwarded_at = Some(Instant::now());
            }
        }
        if let Verdict::Allow(allowed) = &verdict {
            self.remember_use(allowed, now);
        }
        let refusal = verdict.refusal();
        ctx.verdict = Some(verdict);
        match refusal {
            Some(refusal) => {
                let html = request::wants_html(session);
                let (context, set_cookie) = match &ctx.verdict {
                    Some(v) if html => self.refusal_context(session, v, now),
                    _ => (refusal::Context::default(), None),
                };
                let mut reply = refusal.reply(html, &ctx.request_id, &context);
                if let Some(c) = set_cookie {
                    reply = reply.with_header("set-cookie", c);
                }
                respond::write(session, reply).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Writes the guest's use of the share to the store, at most hourly per share and off
    /// the request's path, for the stale-access review.
    fn remember_use(&self, allowed: &crate::decision::AllowedRequest, now: u64) {
        let Some(share) = &allowed.guest.share else {
            return;
        };
        if self.shares.index().due_for_touch(&share.id, now) {
            self.shares.note_use(&share.id, now);
        }
    }

    /// The share behind a `share_inactive` refusal, when the local index may simply lag.
    fn just_verified_elsewhere(&self, verdict: &Verdict) -> Option<String> {
        let Verdict::Refuse {
            reason: Reason::ShareInactive,
            guest: Some(guest),
            ..
        } = verdict
        else {
            return None;
        };
        let id = &guest.share.as_ref()?.id;
        self.shares
            .index()
            .may_be_newer_elsewhere(id)
            .then(|| id.clone())
    }

    /// Answers a request for one of guestgate's own pages: framing first, the body read
    /// once, then the route's reply.
    async fn guest_page(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Err(refusal) =
            request::guest_framing(session, self.gate.settings.max_content_length).await
        {
            let html = request::wants_html(session);
            let reply = refusal.reply(html, &ctx.request_id, &refusal::Context::default());
            respond::write(session, reply).await?;
            ctx.verdict = Some(Verdict::Refuse {
                reason: refusal.reason,
                guest: None,
                path: None,
                detail: None,
                body: crate::framing::Body::None,
            });
            return Ok(true);
        }
        let form = request::read_form(session).await;
        let req = session.req_header();
        let path = req.uri.path();
        let guest_req = GuestRequest {
            method: req.method.as_str(),
            path: self.guest_route_path(path).unwrap_or(""),
            query: req.uri.query(),
            cookies: request::cookies(req),
            from: FormOrigin {
                origin: req.headers.get("origin").map(|v| v.as_bytes()),
                fetch_site: req.headers.get("sec-fetch-site").map(|v| v.as_bytes()),
            },
            client: ctx.client,
            form: form.as_deref(),
            now: unix_now(),
        };
        let (reply, event) = self.routes().handle(&guest_req).await;
        ctx.page = Some(Box::new(event));
        respond::write(session, reply).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for GuestGateProxy {
    type CTX = RequestCtx;

    /// No downstream modules. pingora's default is a response-compression module
    /// switched off, which guestgate never turns on (it negotiates codings itself, for
    /// the banner); it cost every request an allocation and a call per filter phase.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: crate::stamp::request_id(),
            client: None,
            client_text: None,
            arrived: SystemTime::now(),
            started: Instant::now(),
            verdict: None,
            page: None,
            forwarded_at: None,
            banner: None,
        }
    }

    /// Decides; answers refusals and guestgate's own pages here so the app never sees them.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client = request::client(session, &self.trusted_proxies);
        ctx.client_text = ctx.client.map(crate::client_addr::IpText::new);
        self.filter(session, ctx).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(
            self.upstream,
            self.upstream_cfg.tls,
            self.upstream_cfg.sni.clone(),
        );
        peer.options.connection_timeout = Some(self.upstream_cfg.connect_timeout);
        peer.options.read_timeout = Some(self.upstream_cfg.read_timeout);
        if let Some(Verdict::Allow(_)) = &ctx.verdict {
            // An allowed guest request's head is built anew from the decision
            // (`headers::guest_request`), which drops hop-by-hop and Connection-named
            // headers itself: pingora's clean-up of its own copy (about ten map removals)
            // would be thrown away with that copy. Pass-through keeps pingora's.
            peer.options.http_upstream_request_policy =
                pingora::upstreams::peer::HttpUpstreamRequestPolicy::preserve();
        }
        Ok(Box::new(peer))
    }

    /// Strips what guestgate owns from every request and writes its framing headers
    /// from what was parsed; for guests also strips URL, client and hop headers, then
    /// sets the profile's headers, the configured `Host` and the canonical target.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let owned = &self.gate.policies.current().owned;
        match &ctx.verdict {
            Some(Verdict::Allow(allowed)) => {
                let mut parts = headers::guest_request(
                    upstream_request,
                    allowed,
                    owned,
                    &self.upstream_host,
                    ctx.client_text.as_ref(),
                )?;
                if let Some(keys) = &self.assertion {
                    headers::assert_scope(
                        &mut parts,
                        keys,
                        &self.assertion_header,
                        allowed,
                        &ctx.request_id,
                        unix_now(),
                    )?;
                    metrics::get().assertions.inc();
                }
                if allowed.response.banner.is_some() {
                    let h = &parts.headers;
                    let ae = headers::banner_accept_encoding(
                        h.get(http::header::ACCEPT).map(|v| v.as_bytes()),
                        h.get(http::header::ACCEPT_ENCODING).map(|v| v.as_bytes()),
                    );
                    headers::put(&mut parts.headers, http::header::ACCEPT_ENCODING, ae)?;
                }
                *upstream_request = RequestHeader::from(parts);
            }
            Some(Verdict::Pass { body }) => headers::pass_through(upstream_request, owned, *body)?,
            // Nothing else is forwarded; refuse rather than send an undecided request.
            Some(Verdict::Refuse { .. }) | None => {
                return Err(pingora::Error::new(pingora::ErrorType::InternalError))
            }
        }
        Ok(())
    }

    /// Drops an empty last body chunk. pingora writes an empty buffer on a chunked
    /// upstream body as `0\r\n\r\n`, the last chunk, and then ends the body again: an
    /// HTTP/2 client that ends its stream with an empty DATA frame would make the app read
    /// the second terminator as a request guestgate never decided on. Empty chunks before
    /// the end (a TCP read that stopped inside the chunk framing) are left alone: pingora
    /// skips those itself, and `None` there would end the body early.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if end_of_stream && body.as_ref().is_some_and(|b| b.is_empty()) {
            *body = None;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(sent) = ctx.forwarded_at {
            metrics::get()
                .upstream_seconds
                .observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Guest responses: the profile's response plan, then, for an HTML page, the banner.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response::strip_owned_cookies(resp, &self.session_cfg.cookie_name)?;
        let Some(Verdict::Allow(allowed)) = &ctx.verdict else {
            return Ok(());
        };
        response::apply_plan(resp, &allowed.response)?;
        let (Some(words), Some(share)) = (&allowed.response.banner, &allowed.guest.share) else {
            return Ok(());
        };
        match response::banner_fit(&session.req_header().method, resp) {
            response::BannerFit::NotAPage => {}
            response::BannerFit::EncodingUnsupported => {
                metrics::get()
                    .banner
                    .with_label_values(&["encoding_unsupported"])
                    .inc();
            }
            response::BannerFit::HeadOfPage(coding) => {
                response::prepare_for_banner(resp, coding, session.req_header().version)?;
            }
            response::BannerFit::Page(coding) => {
                if session.req_header().version < http::Version::HTTP_11 {
                    session.set_keepalive(None);
                }
                let (html, set_cookie) = self.banner_for(session, words, share);
                if let Some(c) = set_cookie {
                    resp.append_header("set-cookie", c)?;
                }
                response::prepare_for_banner(resp, coding, session.req_header().version)?;
                ctx.banner = Some(Box::new(Injector::new(coding, html)));
            }
        }
        Ok(())
    }

    /// Streams an HTML page through its banner insertion.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let Some(injector) = ctx.banner.as_mut() else {
            return Ok(None);
        };
        match injector.push(body.take(), end_of_stream) {
            Ok(out) => *body = out,
            Err(e) => {
                metrics::get()
                    .banner
                    .with_label_values(&["decode_failed"])
                    .inc();
                tracing::warn!(request_id = %ctx.request_id, error = %e, "banner: the app's page could not be decoded; response abandoned");
                ctx.banner = None;
                return Err(pingora::Error::explain(
                    pingora::ErrorType::InternalError,
                    "banner: undecodable page",
                ));
            }
        }
        if end_of_stream {
            let outcome = match injector.outcome() {
                Outcome::Inserted => "inserted",
                Outcome::NoBody | Outcome::Pending => "no_body",
            };
            metrics::get().banner.with_label_values(&[outcome]).inc();
        }
        Ok(None)
    }

    /// pingora puts this in its own per-request log lines (proxy errors): the request id
    /// joins them to the audit event. Method and path only: queries can carry secrets.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "request_id={} {} {}",
            ctx.request_id,
            req.method,
            req.uri.path()
        )
    }

    /// Writes exactly one audit event per request, and counts it.
    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        record::record(&self.audit, self.audit_pass_through, session, ctx);
    }
}

//! The pingora `ProxyHttp` implementation. Each phase delegates: `request_filter` asks
//! the [`Gate`] for a verdict and answers refusals itself, `upstream_request_filter`
//! applies the header edits and the canonical target, `logging` writes the one audit
//! event. No decision logic lives here.

pub mod guest;
pub mod headers;
pub mod pages;
pub mod response;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::Result;
use tracing::Instrument;

use crate::audit::{AuditSink, ChallengeEvent, DecisionEvent};
use crate::client_addr::TrustedProxies;
use crate::decision::{Gate, RequestFacts, Verdict};
use crate::metrics;
use crate::session::SessionConfig;
use crate::shares::Shares;
use crate::stamp::{random_hex, timestamp, unix_now};
use response::Answer;

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
    arrived: SystemTime,
    started: Instant,
    verdict: Option<Verdict>,
    page: Option<guest::PageEvent>,
    upstream_sent: Option<Instant>,
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
        })
    }

    /// The part of the path after guestgate's prefix, if the request is for a guest page.
    fn guest_route_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.shares.guest_config().prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Decides; answers refusals and denials here so the app never sees them.
    async fn filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if self
            .guest_route_path(session.req_header().uri.path())
            .is_some()
        {
            return self.guest_page(session, ctx).await;
        }
        let http2 = session.req_header().version == http::Version::HTTP_2;
        let frames_carry_body = http2 && frames_carry_body(session).await;
        let raw_head = session.as_downstream().to_h1_raw();
        let req = session.req_header();
        let facts = RequestFacts {
            raw_head: &raw_head,
            method: req.method.as_str(),
            cookies: req
                .headers
                .get_all("cookie")
                .iter()
                .map(|v| v.as_bytes())
                .collect(),
            header_names: req.headers.keys().map(|k| k.as_str()).collect(),
            http2,
            authority: req.uri.authority().map(|a| a.as_str().as_bytes()),
            frames_carry_body,
        };
        let decided = Instant::now();
        let now = unix_now();
        let mut verdict = self.gate.decide(&facts, now);
        metrics::get()
            .decision_seconds
            .observe(decided.elapsed().as_secs_f64());
        if let Some(id) = self.just_verified_elsewhere(&verdict) {
            // A share verified on another replica moments ago: ask the store once rather
            // than refuse a guest who just entered the right code. Revoked shares never
            // get here, so revocation stays a local, instant decision.
            if self.shares.refresh(&id, now).await.unwrap_or(false) {
                verdict = self.gate.decide(&facts, now);
            }
        }
        let answered = match &verdict {
            Verdict::Reject { status, reason, .. } => {
                response::send(
                    session,
                    Answer::from_status(*status),
                    reason,
                    &ctx.request_id,
                    false,
                    true,
                )
                .await?;
                true
            }
            Verdict::Deny {
                reason,
                guest,
                body,
                ..
            } => {
                // Close when a body was announced: it is never read, so it must not be
                // taken for the next request on this connection.
                response::send(
                    session,
                    Answer::for_denial(reason),
                    reason,
                    &ctx.request_id,
                    guest.is_none(),
                    body.is_some(),
                )
                .await?;
                true
            }
            Verdict::Unavailable => {
                response::send(
                    session,
                    Answer::Unavailable,
                    "store_stale",
                    &ctx.request_id,
                    false,
                    true,
                )
                .await?;
                true
            }
            Verdict::PassThrough { .. } | Verdict::Allow(_) => false,
        };
        ctx.verdict = Some(verdict);
        Ok(answered)
    }

    /// The share behind a `share_inactive` denial, when the local index may simply lag.
    fn just_verified_elsewhere(&self, verdict: &Verdict) -> Option<String> {
        let Verdict::Deny {
            reason: "share_inactive",
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

    /// Answers a request for one of guestgate's own pages.
    async fn guest_page(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let http2 = session.req_header().version == http::Version::HTTP_2;
        let frames_carry_body = http2 && frames_carry_body(session).await;
        let raw_head = session.as_downstream().to_h1_raw();
        let framing = crate::framing::inspect(&raw_head, http2, self.gate.max_content_length)
            .and_then(|head| {
                let body = head.body.is_some() || frames_carry_body;
                let method = session.req_header().method.as_str();
                if body && crate::framing::is_bodiless(method) {
                    return Err(crate::framing::FramingError::BodyOnBodilessMethod);
                }
                Ok(())
            });
        if let Err(e) = framing {
            response::send(
                session,
                Answer::from_status(e.status()),
                e.reason(),
                &ctx.request_id,
                true,
                true,
            )
            .await?;
            ctx.verdict = Some(Verdict::Reject {
                status: e.status(),
                reason: e.reason(),
                guest: None,
            });
            return Ok(true);
        }
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.as_str().to_string();
        let rest = self.guest_route_path(&path).unwrap_or("");
        let route = guest::route(&method, rest);
        let client = ctx.client;
        let routes = guest::GuestRoutes {
            shares: &self.shares,
            keys: &self.gate.keys,
            session: &self.session_cfg,
        };
        let event = routes.handle(session, route, unix_now(), client).await?;
        ctx.page = Some(event);
        Ok(true)
    }
}

/// HTTP/2 only: whether DATA frames with bytes follow the HEADERS frame. On HTTP/2 a
/// body is known from the frames, not the headers. A bodiless method whose HEADERS did
/// not end the stream is read ahead until the stream ends or bytes arrive, so an empty
/// DATA frame that ends the stream is no body, and any byte is one.
async fn frames_carry_body(session: &mut Session) -> bool {
    if session.as_downstream_mut().is_body_empty() {
        return false;
    }
    if !crate::framing::is_bodiless(session.req_header().method.as_str()) {
        return true;
    }
    loop {
        match session.read_request_body().await {
            Ok(None) => return false,
            Ok(Some(chunk)) if chunk.is_empty() => continue,
            _ => return true,
        }
    }
}

#[async_trait]
impl ProxyHttp for GuestGateProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: random_hex(8),
            client: None,
            arrived: SystemTime::now(),
            started: Instant::now(),
            verdict: None,
            page: None,
            upstream_sent: None,
        }
    }

    /// Decides; answers refusals and denials here so the app never sees them.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.client = session.client_addr().and_then(|a| a.as_inet()).map(|peer| {
            let xff = req.headers.get_all("x-forwarded-for").iter();
            self.trusted_proxies
                .client(peer.ip(), xff.map(|v| v.as_bytes()))
        });
        // Every line logged while deciding carries the request id (the deny id guests see).
        let span = tracing::info_span!("request", request_id = %ctx.request_id);
        self.filter(session, ctx).instrument(span).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(
            self.upstream,
            self.upstream_cfg.tls,
            self.upstream_cfg.sni.clone(),
        );
        peer.options.connection_timeout = Some(self.upstream_cfg.connect_timeout);
        peer.options.read_timeout = Some(self.upstream_cfg.read_timeout);
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
        let body = match &ctx.verdict {
            Some(Verdict::Allow(a)) => a.body,
            Some(Verdict::PassThrough { body, .. }) => *body,
            // Nothing else is forwarded; refuse rather than send unframed.
            _ => return Err(pingora::Error::new(pingora::ErrorType::InternalError)),
        };
        // The owned headers of the policies in force now (they change on reload).
        headers::strip_owned(upstream_request, &self.gate.policies.current().owned);
        if let Some(Verdict::Allow(allowed)) = &ctx.verdict {
            headers::strip_for_guest(upstream_request);
            for name in &allowed.remove_headers {
                upstream_request.remove_header(name);
            }
            upstream_request.insert_header(http::header::HOST, self.upstream_host.clone())?;
            if let Some(ip) = ctx.client {
                upstream_request.insert_header("x-forwarded-for", ip.to_string())?;
            }
            for (name, value) in &allowed.set_headers {
                upstream_request.insert_header(name.clone(), value.clone())?;
            }
            upstream_request.set_uri(allowed.target.clone());
        }
        // Last, so no strip above can touch them: the framing guestgate parsed.
        let method = upstream_request.method.as_str();
        headers::write_framing(upstream_request, body, crate::framing::is_bodiless(method))?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    /// Drops empty body chunks. pingora writes an empty buffer on a chunked upstream body
    /// as `0\r\n\r\n`, the last chunk: an HTTP/2 client that ends its stream with an
    /// empty DATA frame would make pingora end the body twice, and the app would read the
    /// second terminator as a request guestgate never decided on.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if body.as_ref().is_some_and(|b| b.is_empty()) {
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
        if let Some(sent) = ctx.upstream_sent {
            metrics::get()
                .upstream_seconds
                .observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
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

    /// Writes exactly one audit event per request.
    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        if let Some(page) = &ctx.page {
            metrics::get()
                .challenge
                .with_label_values(&[page.event])
                .inc();
            let share = page.share.as_ref();
            self.audit.emit(&ChallengeEvent {
                ts: timestamp(ctx.arrived),
                kind: "challenge",
                request_id: &ctx.request_id,
                event: page.event,
                status: session.response_written().map_or(0, |r| r.status.as_u16()),
                share: share.map(|s| s.id.as_str()),
                guest: share.map(|s| s.email.as_str()),
                case: share.map(|s| s.case.as_str()),
                version: share.map(|s| s.version.as_str()),
                client_ip: ctx.client.map(|ip| ip.to_string()),
            });
            return;
        }
        let Some(verdict) = &ctx.verdict else {
            return;
        };
        let m = metrics::get();
        m.requests
            .with_label_values(&[verdict.decision(), verdict.reason()])
            .inc();
        if let Verdict::Allow(a) = verdict {
            if let (Some(share), Some(rule)) = (&a.guest.share, &a.guest.rule) {
                m.allowed_by_rule
                    .with_label_values(&[share.profile.as_str(), rule.as_str()])
                    .inc();
            }
        }
        if matches!(verdict, Verdict::PassThrough { .. }) && !self.audit_pass_through {
            return;
        }
        let (guest, path) = match verdict {
            Verdict::Allow(a) => (Some(&a.guest), Some(a.path.as_str())),
            Verdict::Deny { guest, path, .. } => (guest.as_ref(), path.as_deref()),
            Verdict::Reject { guest, .. } => (guest.as_ref(), None),
            Verdict::Unavailable => (None, None),
            Verdict::PassThrough { .. } => (None, Some(session.req_header().uri.path())),
        };
        let share = guest.and_then(|g| g.share.as_ref());
        let denied = matches!(
            verdict,
            Verdict::Deny { .. } | Verdict::Reject { .. } | Verdict::Unavailable
        );
        let event = DecisionEvent {
            ts: timestamp(ctx.arrived),
            kind: "request",
            request_id: &ctx.request_id,
            decision: verdict.decision(),
            reason: verdict.reason(),
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            method: session.req_header().method.as_str(),
            path,
            guest: guest.map(|g| g.email.as_str()),
            share: share.map(|s| s.id.as_str()),
            case: share.map(|s| s.case.as_str()),
            version: share.map(|s| s.version.as_str()),
            profile: share.map(|s| s.profile.as_str()),
            rule: guest.and_then(|g| g.rule.as_deref()),
            session: guest.map(|g| g.jti.as_str()),
            deny_id: denied.then_some(ctx.request_id.as_str()),
            client_ip: ctx.client.map(|ip| ip.to_string()),
            latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
        };
        self.audit.emit(&event);
    }
}

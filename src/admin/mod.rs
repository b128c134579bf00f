//! The admin listener (its own address, default 127.0.0.1:9190): `/healthz` says the
//! process is up, `/readyz` says it can serve guests, `/metrics` is for Prometheus,
//! `/.well-known/jwks.json` holds the scope assertion's public keys, and `/admin/v1/...`
//! is the admin API (see `api.rs`).

pub mod api;
pub mod client;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Whether the instance can serve guests: policies loaded and share state fresh.
#[derive(Debug)]
pub struct Readiness {
    policies_loaded: AtomicBool,
    index: Arc<crate::store::ShareIndex>,
}

impl Readiness {
    /// Readiness that also requires `index` to be fresh.
    pub fn new(index: Arc<crate::store::ShareIndex>) -> Self {
        Self {
            policies_loaded: AtomicBool::new(false),
            index,
        }
    }

    /// Marks the policy set as loaded.
    pub fn set_policies_loaded(&self, v: bool) {
        self.policies_loaded.store(v, Ordering::Release);
    }

    /// The share index this instance serves from.
    pub fn index(&self) -> &crate::store::ShareIndex {
        &self.index
    }

    /// Every dependency is ready.
    pub fn is_ready(&self) -> bool {
        self.policies_loaded.load(Ordering::Acquire) && self.index.is_fresh()
    }
}

/// The admin HTTP app.
pub struct AdminApp {
    readiness: Arc<Readiness>,
    api: api::AdminApi,
    max_body: usize,
    jwks: Option<String>,
}

impl AdminApp {
    /// A new admin app reporting on `readiness` and serving `api`.
    pub fn new(readiness: Arc<Readiness>, api: api::AdminApi, max_body: usize) -> Self {
        Self {
            readiness,
            api,
            max_body,
            jwks: None,
        }
    }

    /// Serves the scope assertion's JWKS (public keys only).
    pub fn with_jwks(mut self, jwks: Option<String>) -> Self {
        self.jwks = jwks;
        self
    }
}

/// Reads the body up to `max` bytes; `None` when it is larger.
async fn read_body(session: &mut ServerSession, max: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body),
            Err(_) => return Some(Vec::new()),
        }
    }
}

fn json(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => json(200, serde_json::json!({"status": "ok"})),
            "/.well-known/jwks.json" => match &self.jwks {
                Some(jwks) => Response::builder()
                    .status(200)
                    .header("content-type", "application/jwk-set+json")
                    .header("content-length", jwks.len())
                    // Apps cache it and refetch when a token names a key id they do not
                    // know, which is what a rotation looks like to them.
                    .header("cache-control", "max-age=300")
                    .body(jwks.clone().into_bytes())
                    .unwrap_or_default(),
                None => json(
                    404,
                    serde_json::json!({"error": "not_found", "reason": "scope assertions are off: set [assertion] audience"}),
                ),
            },
            "/metrics" => {
                let m = crate::metrics::get();
                let index = self.readiness.index();
                let (pending, active, revoked, expired) = index.counts(crate::stamp::unix_now());
                for (status, n) in [
                    ("pending", pending),
                    ("active", active),
                    ("revoked", revoked),
                    ("expired", expired),
                ] {
                    m.shares.with_label_values(&[status]).set(n);
                }
                m.staleness_ms
                    .set(i64::try_from(index.staleness_ms()).unwrap_or(i64::MAX));
                let body = m.render();
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4")
                    .header("content-length", body.len())
                    .body(body)
                    .unwrap_or_default()
            }
            "/readyz" => {
                if self.readiness.is_ready() {
                    json(200, serde_json::json!({"status": "ready"}))
                } else {
                    json(503, serde_json::json!({"status": "not_ready"}))
                }
            }
            _ => {
                let Some(body) = read_body(session, self.max_body).await else {
                    session.set_keepalive(None);
                    return json(
                        413,
                        serde_json::json!({"error": "too_large", "reason": format!("request bodies are limited to {} bytes", self.max_body)}),
                    );
                };
                let req = session.req_header();
                let request_id = crate::stamp::request_id();
                let call = api::Call {
                    method: req.method.as_str(),
                    target: req.raw_path(),
                    authorization: req.headers.get("authorization").map(|v| v.as_bytes()),
                    staff: api::Staff::from_values(
                        req.headers
                            .get_all("x-guestgate-staff")
                            .iter()
                            .map(|v| v.as_bytes()),
                    ),
                    body: &body,
                    request_id: &request_id,
                };
                let reply = self.api.handle(&call).await;
                match reply.body {
                    Some(b) => json(reply.status, b),
                    None => Response::builder()
                        .status(reply.status)
                        .header("cache-control", "no-store")
                        .body(Vec::new())
                        .unwrap_or_default(),
                }
            }
        }
    }
}

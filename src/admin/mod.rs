//! The admin listener (its own address, default 127.0.0.1:9190): `/healthz` says the
//! process is up, `/readyz` says it can serve guests. The admin API and `/metrics`
//! join it here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Whether the instance can serve guests; flipped by whoever owns the dependency.
#[derive(Debug, Default)]
pub struct Readiness {
    policies_loaded: AtomicBool,
}

impl Readiness {
    /// Marks the policy set as loaded.
    pub fn set_policies_loaded(&self, v: bool) {
        self.policies_loaded.store(v, Ordering::Release);
    }

    /// Every dependency is ready.
    pub fn is_ready(&self) -> bool {
        self.policies_loaded.load(Ordering::Acquire)
    }
}

/// The admin HTTP app.
pub struct AdminApp {
    readiness: Arc<Readiness>,
}

impl AdminApp {
    /// A new admin app reporting on `readiness`.
    pub fn new(readiness: Arc<Readiness>) -> Self {
        Self { readiness }
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
        let path = session.req_header().uri.path();
        match path {
            "/healthz" => json(200, serde_json::json!({"status": "ok"})),
            "/readyz" => {
                if self.readiness.is_ready() {
                    json(200, serde_json::json!({"status": "ready"}))
                } else {
                    json(503, serde_json::json!({"status": "not_ready"}))
                }
            }
            _ => json(
                404,
                serde_json::json!({"error": "not_found", "reason": "no such admin route"}),
            ),
        }
    }
}

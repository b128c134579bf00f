//! The audit stream: one JSON line per decision (and, later, per admin action).
//! Requests append their line to a shared in-memory batch under a short lock; a
//! dedicated thread wakes once per `flush_interval`, takes the whole batch and writes
//! it. No request waits on disk or wakes another thread (a per-line channel wake-up
//! measured here halved guest throughput), and a crash loses at most the lines of one
//! flush interval.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Bytes that may wait for the writer; past this a line is dropped and counted rather
/// than letting memory grow without bound when the disk is far behind.
const MAX_PENDING: usize = 64 * 1024 * 1024;

/// One decision on one request (DESIGN §5 fields).
#[derive(Debug, Serialize)]
pub struct DecisionEvent<'a> {
    /// RFC 3339 time the request arrived.
    pub ts: String,
    /// Always `request`.
    pub kind: &'static str,
    /// Request id (also the deny id quoted to guests).
    pub request_id: &'a str,
    /// `allow`, `deny`, `reject`, `pass`.
    pub decision: &'static str,
    /// Fixed reason label.
    pub reason: &'static str,
    /// Status sent to the client.
    pub status: u16,
    /// Method.
    pub method: &'a str,
    /// Canonical decoded path (no query: query values may carry app secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    /// Guest email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<&'a str>,
    /// Share id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<&'a str>,
    /// Case of that share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<&'a str>,
    /// Version of that share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    /// Profile of that share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<&'a str>,
    /// Rule that allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// Session token id (not the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    /// Deny id shown to the guest (denials and rejections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_id: Option<&'a str>,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Time from arrival to the end of the response, in milliseconds.
    pub latency_ms: f64,
}

/// One admin API action.
#[derive(Debug, Serialize)]
pub struct AdminEvent<'a> {
    /// RFC 3339 time.
    pub ts: String,
    /// Always `admin`.
    pub kind: &'static str,
    /// Request id.
    pub request_id: &'a str,
    /// API key name (`-` when unauthenticated).
    pub actor: &'a str,
    /// `share.create`, `share.revoke`, `guest.revoke`, `share.list`, ...
    pub action: &'a str,
    /// Status returned.
    pub status: u16,
    /// Reason label for refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Share concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<&'a str>,
    /// Guest concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<&'a str>,
    /// Case of the share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<&'a str>,
    /// Version of the share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    /// Shares affected (guest-wide revocation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// What happened to the invitation email (`sent`, `failed`, ...) on share creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
}

/// One event of the guest's code challenge.
#[derive(Debug, Serialize)]
pub struct ChallengeEvent<'a> {
    /// RFC 3339 time.
    pub ts: String,
    /// Always `challenge`.
    pub kind: &'static str,
    /// Request id.
    pub request_id: &'a str,
    /// `page`, `code_sent`, `verified`, `failed`, `locked`, `resend_refused`, `invalid_link`, `logout`, ...
    pub event: &'a str,
    /// Status returned.
    pub status: u16,
    /// Share (never the link token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<&'a str>,
    /// Guest email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<&'a str>,
    /// Case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<&'a str>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// Collects audit lines for the writer thread.
pub struct AuditSink {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl AuditSink {
    /// Starts the writer on a file (appended, created 0600) or standard output.
    pub fn start(path: Option<&Path>, flush_interval: Duration) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(p)?,
                )
            }
            None => Box::new(std::io::stdout()),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(1 << 20)),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let for_writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("guestgate-audit".into())
            .spawn(move || writer(&for_writer, out, flush_interval))?;
        Ok(Self { shared })
    }

    /// Adds one event to the current batch; never blocks on I/O.
    pub fn emit<T: Serialize>(&self, event: &T) {
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        let Ok(mut pending) = self.shared.pending.lock() else {
            return;
        };
        if pending.len() + line.len() > MAX_PENDING {
            drop(pending);
            let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            crate::metrics::get().audit_dropped.inc();
            tracing::error!(dropped_total = n, "audit writer is behind; event dropped");
            return;
        }
        pending.extend_from_slice(&line);
    }

    /// Events that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn writer(shared: &Shared, mut out: Box<dyn Write + Send>, every: Duration) {
    // Swapped with the pending batch each round, so neither side reallocates.
    let mut batch = Vec::with_capacity(1 << 20);
    loop {
        std::thread::sleep(every);
        if let Ok(mut pending) = shared.pending.lock() {
            std::mem::swap(&mut *pending, &mut batch);
        }
        if !batch.is_empty() {
            if let Err(e) = out.write_all(&batch).and_then(|_| out.flush()) {
                tracing::error!(error = %e, "audit write failed");
            }
            batch.clear();
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

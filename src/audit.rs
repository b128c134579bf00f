//! The audit stream: one JSON line per decision (and, later, per admin action), written
//! by a dedicated thread so that no request ever waits on disk. Lines are buffered and
//! flushed every `flush_interval`; that interval is the most a crash can lose.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Lines that may wait for the writer; past this the request path drops and counts
/// rather than blocks (a full queue means the disk is far behind).
const QUEUE: usize = 65_536;

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

/// Sends audit lines to the writer thread.
pub struct AuditSink {
    tx: SyncSender<String>,
    dropped: AtomicU64,
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
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("guestgate-audit".into())
            .spawn(move || writer(rx, out, flush_interval))?;
        Ok(Self {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues one event; never blocks.
    pub fn emit<T: Serialize>(&self, event: &T) {
        let Ok(line) = serde_json::to_string(event) else {
            return;
        };
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    dropped_total = n,
                    "audit queue full or writer gone; event dropped"
                );
            }
        }
    }

    /// Events that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn writer(rx: mpsc::Receiver<String>, out: Box<dyn Write + Send>, every: Duration) {
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(every) {
            Ok(line) => {
                if let Err(e) = out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.write_all(b"\n"))
                {
                    tracing::error!(error = %e, "audit write failed");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
        if last_flush.elapsed() >= every {
            if let Err(e) = out.flush() {
                tracing::error!(error = %e, "audit flush failed");
            }
            last_flush = Instant::now();
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

//! The audit stream: one JSON line per decision, admin action and challenge event.
//! Requests append their line to a shared in-memory batch under a short lock; a
//! dedicated thread wakes once per `flush_interval`, or sooner when a request finds
//! [`WAKE_AT`] bytes pending, takes the whole batch and writes it. No request waits on
//! disk, and at most one request per batch wakes the writer (a per-line channel wake-up
//! measured here halved guest throughput). Written lines are synced to disk at least
//! once per interval: a crash, of the process or the machine, loses at most the lines
//! of the last two flush intervals.
//!
//! Lines are chained under a key of the audit's own (`chain.rs`): each process starts
//! with a record naming its key (and the key of the line it continues, so a rotation is
//! in the chain), and every `checkpoint_interval` and at shutdown the writer puts the
//! line count and head hash in the process log and a metric, where whoever can rewrite
//! the file cannot.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

pub mod chain;

use chain::AuditKey;

/// Bytes that may wait for the writer; past this a line is dropped and counted rather
/// than letting memory grow without bound when the disk is far behind.
const MAX_PENDING: usize = 64 * 1024 * 1024;

/// Pending bytes at which the request that adds a line wakes the writer before its
/// interval is up. A batch this size stays in the CPU's cache from the request threads
/// writing it, through the writer chaining it, to the kernel copying it into the file.
/// Measured under load here (about 44,000 allowed requests a second, 560-byte lines):
/// 200 ms batches (4.5 MB) cost the writer 1.18 µs a line, 50 ms batches (1.2 MB)
/// 0.52 µs. A bound in bytes holds at any request rate, where an interval does not.
pub const WAKE_AT: usize = 256 * 1024;

/// Audit stream settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// File to append to; `None` = standard output.
    pub path: Option<PathBuf>,
    /// How often buffered lines are flushed (the durability bound).
    pub flush_interval: Duration,
    /// Whether non-guest requests passed through in mixed mode are audited too.
    pub include_pass_through: bool,
    /// The chain's key (hex, created 0600 if absent).
    pub key_file: PathBuf,
    /// Keys that wrote earlier lines (still accepted when continuing a file).
    pub previous_key_files: Vec<PathBuf>,
    /// How often a checkpoint goes to the process log and the metrics.
    pub checkpoint_interval: Duration,
}

const KEY: &str = "audit key";

/// The audit keys: the one that writes, then the ones that wrote before.
pub fn load_keys(cfg: &AuditConfig) -> Result<Vec<AuditKey>, crate::key_file::KeyFileError> {
    let mut keys = vec![AuditKey::new(&crate::key_file::load_or_create_hex(
        KEY,
        &cfg.key_file,
    )?)];
    for p in &cfg.previous_key_files {
        keys.push(AuditKey::new(&crate::key_file::load_hex(KEY, p)?));
    }
    Ok(keys)
}

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
    /// For a denial: the closest rule and what did not fit (the offending key, the case
    /// the path named), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// Session token id (not the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    /// Deny id shown to the guest (denials and rejections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_id: Option<&'a str>,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<crate::client_addr::IpText>,
    /// Time from arrival to the end of the response, in milliseconds.
    pub latency_ms: f64,
}

impl DecisionEvent<'_> {
    /// The event as one JSON object, byte for byte what serde's derive writes (a property
    /// test holds it to that), without serde: every request writes one of these, and
    /// serde escaped each of the constant keys and called its writer three times a field.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let str_field = |out: &mut Vec<u8>, key: &[u8], value: &str| {
            out.extend_from_slice(key);
            json_str(out, value);
        };
        let opt_field = |out: &mut Vec<u8>, key: &[u8], value: Option<&str>| {
            if let Some(v) = value {
                str_field(out, key, v);
            }
        };
        str_field(out, b"{\"ts\":", &self.ts);
        str_field(out, b",\"kind\":", self.kind);
        str_field(out, b",\"request_id\":", self.request_id);
        str_field(out, b",\"decision\":", self.decision);
        str_field(out, b",\"reason\":", self.reason);
        out.extend_from_slice(b",\"status\":");
        json_number(out, &self.status);
        str_field(out, b",\"method\":", self.method);
        opt_field(out, b",\"path\":", self.path);
        opt_field(out, b",\"guest\":", self.guest);
        opt_field(out, b",\"share\":", self.share);
        opt_field(out, b",\"case\":", self.case);
        opt_field(out, b",\"version\":", self.version);
        opt_field(out, b",\"profile\":", self.profile);
        opt_field(out, b",\"rule\":", self.rule);
        opt_field(out, b",\"detail\":", self.detail);
        opt_field(out, b",\"session\":", self.session);
        opt_field(out, b",\"deny_id\":", self.deny_id);
        let ip = self.client_ip.as_ref();
        opt_field(
            out,
            b",\"client_ip\":",
            ip.map(crate::client_addr::IpText::as_str),
        );
        out.extend_from_slice(b",\"latency_ms\":");
        json_number(out, &self.latency_ms);
        out.push(b'}');
    }
}

/// A number as serde_json writes it (shortest round-trip digits for a float, `null` when
/// not finite), so it reads back exactly as before.
fn json_number<T: Serialize>(out: &mut Vec<u8>, n: &T) {
    if serde_json::to_writer(&mut *out, n).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, the five control bytes
/// with a short escape as such, other control bytes as `\u00xx`, everything else raw.
fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Nearly every value needs no escape: a check without an early exit (which the
    // compiler turns into wide compares), then one copy.
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
    /// Share concerned (or the id a call named, when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<&'a str>,
    /// The sharer's name shown to the guest (share.create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<&'a str>,
    /// How the guest can reach the sharer (share.create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<&'a str>,
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
    pub client_ip: Option<crate::client_addr::IpText>,
}

/// The chain's own records: where a process starts, and where it stops.
#[derive(Debug, Serialize)]
struct ChainEvent<'a> {
    ts: String,
    kind: &'static str,
    event: &'static str,
    /// The key this process writes with.
    key_id: &'a str,
    /// The key that wrote the line this one continues (`none` for a new file,
    /// `unknown` when no configured key verifies it).
    #[serde(skip_serializing_if = "Option::is_none")]
    continues: Option<&'a str>,
    /// Whether the line this one continues is a stop record: `false` means the last run
    /// crashed or the tail was cut (checkpoints tell which).
    #[serde(skip_serializing_if = "Option::is_none")]
    after_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// Lines in the file, with this one (stop records).
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<usize>,
}

/// Counts an existing audit file's lines and reads its last one, streaming: a large file
/// costs no memory, and a byte that is not UTF-8 is only a line that will not verify.
fn read_tail(file: std::fs::File, keys: &[AuditKey]) -> std::io::Result<chain::Tail> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let (mut lines, mut line, mut last) = (0usize, Vec::new(), Vec::new());
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            lines += 1;
            std::mem::swap(&mut last, &mut line);
        }
    }
    let last = String::from_utf8_lossy(&last);
    let last = last.trim_end_matches(['\n', '\r']);
    Ok(chain::tail(lines, (lines > 0).then_some(last), keys))
}

/// Collects audit lines for the writer thread.
pub struct AuditSink {
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
    /// Set by the request that wakes the writer for the pending batch, cleared when the
    /// writer takes it: one wake-up per batch, whatever the number of lines past
    /// [`WAKE_AT`].
    woken: AtomicBool,
    /// The writer thread, to wake.
    writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

/// What the writer thread owns.
struct Writer {
    out: Out,
    file: String,
    key: AuditKey,
    prev: String,
    lines: usize,
    flush_every: Duration,
    checkpoint_every: Duration,
    /// Written lines not yet synced, and when the last sync was.
    unsynced: bool,
    synced_at: std::time::Instant,
}

/// Bytes at the end of an audit file left in the page cache after a batch (a power of
/// two, whole pages on any page size).
pub const CACHED_TAIL: u64 = 64 * 1024;

/// Where the writer puts its batches.
enum Out {
    /// A regular file: what is written is synced, then dropped from the page cache.
    File(std::fs::File),
    /// Standard output, or a path that is a pipe or a device: written through (they
    /// have no page cache, and `fdatasync` on them fails).
    Stream(Box<dyn Write + Send>),
}

impl Out {
    /// Opens an audit path for appending (created 0600).
    fn open(p: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(p)?;
        Ok(if f.metadata()?.is_file() {
            Out::File(f)
        } else {
            Out::Stream(Box::new(f))
        })
    }

    /// Writes one batch.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::File(f) => f.write_all(bytes),
            Out::Stream(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    /// Puts what a file was given on disk (`fdatasync`), so a crash of the machine, not
    /// only of the process, loses only what came after; then drops it from the page
    /// cache, which the log would otherwise fill (25 MB/s at 44,000 requests/s) while
    /// nothing reads it back. Later batches reuse those pages: on a VM that hands free
    /// memory back to its host, a new page costs the writer a host page fault, and
    /// writing into fresh pages took the writer from 0.5 to 1.5 µs a line here, against
    /// 0.8 µs with a sync and drop per batch. Nothing to do for a stream.
    fn sync(&mut self) -> std::io::Result<()> {
        let Out::File(f) = self else {
            return Ok(());
        };
        f.sync_data()?;
        // The file's last pages stay cached: the next batch appends to them, and would
        // otherwise first read them back from disk.
        let written = f.metadata()?.len() & !(CACHED_TAIL - 1);
        if written > 0 {
            // Advice only: if it fails, the pages stay cached and nothing is lost.
            let _ = nix::fcntl::posix_fadvise(
                &*f,
                0,
                i64::try_from(written).unwrap_or(i64::MAX),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
        Ok(())
    }
}

impl AuditSink {
    /// Starts the writer on a file (appended, created 0600) or standard output, with
    /// `keys[0]` writing. `{pid}` in the path becomes the process id: two processes (an
    /// upgrade hand-over) then never append to one chain.
    pub fn start(cfg: &AuditConfig, keys: Vec<AuditKey>) -> std::io::Result<Self> {
        let path = cfg.path.as_ref().map(|p| {
            PathBuf::from(
                p.display()
                    .to_string()
                    .replace("{pid}", &std::process::id().to_string()),
            )
        });
        let Some(key) = keys.first().cloned() else {
            return Err(std::io::Error::other("no audit key"));
        };
        let (out, tail, file) = match &path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                // Only a regular file has a chain to continue: reading a pipe or a
                // device to its end would wait for its writer (or forever).
                let tail = match std::fs::metadata(p) {
                    Ok(m) if m.is_file() => read_tail(std::fs::File::open(p)?, &keys)?,
                    Ok(_) => chain::tail(0, None, &keys),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        chain::tail(0, None, &keys)
                    }
                    Err(e) => return Err(e),
                };
                (Out::open(p)?, tail, p.display().to_string())
            }
            None => (
                Out::Stream(Box::new(std::io::stdout())),
                chain::tail(0, None, &keys),
                "-".to_string(),
            ),
        };
        if tail.lines > 0 && !tail.after_stop {
            tracing::warn!(file = %file, lines = tail.lines, "the audit file does not end with a stop record: the last run ended without a clean shutdown, or the file's tail was cut; verify it against the last checkpoint the previous process logged");
        }
        let continues = match (&tail.key_id, tail.lines) {
            (_, 0) => "none".to_string(),
            (Some(id), _) => id.clone(),
            (None, _) => {
                tracing::warn!(file = %file, "the audit file's last line does not verify under the configured audit keys; the chain continues from it all the same");
                "unknown".to_string()
            }
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(1 << 20)),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            writer: OnceLock::new(),
        });
        let sink = Self {
            shared: Arc::clone(&shared),
            writer: Mutex::new(None),
        };
        sink.emit(&ChainEvent {
            ts: crate::stamp::timestamp(std::time::SystemTime::now()),
            kind: "audit",
            event: "start",
            key_id: &key.id,
            continues: Some(&continues),
            after_stop: (tail.lines > 0).then_some(tail.after_stop),
            pid: Some(std::process::id()),
            lines: None,
        });
        let w = Writer {
            out,
            file,
            key,
            prev: tail.head,
            lines: tail.lines,
            flush_every: cfg.flush_interval,
            checkpoint_every: cfg.checkpoint_interval,
            unsynced: false,
            synced_at: std::time::Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("guestgate-audit".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || w.run(&shared)
            })?;
        // A wake-up before this is set is lost; the writer then takes that batch at its
        // interval, as it would have without the bound.
        let _ = shared.writer.set(handle.thread().clone());
        if let Ok(mut slot) = sink.writer.lock() {
            *slot = Some(handle);
        }
        Ok(sink)
    }

    /// Adds one event to the current batch; never blocks on I/O.
    pub fn emit<T: Serialize>(&self, event: &T) {
        self.push(|line| serde_json::to_writer(line, event).is_ok());
    }

    /// Adds one decision to the current batch, written without serde (the event every
    /// request writes).
    pub fn emit_decision(&self, event: &DecisionEvent<'_>) {
        self.push(|line| {
            event.write_json(line);
            true
        });
    }

    /// Writes one line with `write` and adds it to the batch, unless `write` failed or
    /// the batch is full (then the line is counted as dropped).
    fn push(&self, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        thread_local! {
            // One line buffer per thread, reused: serialising allocates nothing, and
            // happens outside the lock other request threads are waiting on.
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else {
                return;
            };
            line.clear();
            if !write(&mut line) {
                return;
            }
            line.push(b'\n');
            let Ok(mut pending) = self.shared.pending.lock() else {
                return;
            };
            if pending.len() + line.len() > MAX_PENDING {
                drop(pending);
                self.count_dropped();
                return;
            }
            pending.extend_from_slice(&line);
            let full = pending.len() >= WAKE_AT;
            drop(pending);
            // Read before the swap: the requests after the one that woke the writer
            // leave the flag's cache line shared.
            if full
                && !self.shared.woken.load(Ordering::Acquire)
                && !self.shared.woken.swap(true, Ordering::AcqRel)
            {
                self.shared.wake_writer();
            }
        });
    }

    fn count_dropped(&self) {
        let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::get().audit_dropped.inc();
        tracing::error!(dropped_total = n, "audit writer is behind; event dropped");
    }

    /// Events that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is pending, the stop record and the final checkpoint, and waits for
    /// the writer (at shutdown).
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_writer();
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_writer();
    }
}

impl Writer {
    fn run(mut self, shared: &Shared) {
        // Swapped with the pending batch each round, so neither side reallocates.
        let mut batch = Vec::with_capacity(1 << 20);
        let mut chained = Vec::with_capacity(1 << 20);
        let mut last_checkpoint = std::time::Instant::now();
        let mut checkpointed = usize::MAX;
        loop {
            let stopping = shared.stop.load(Ordering::Acquire);
            if !stopping {
                self.wait(shared);
            }
            if let Ok(mut pending) = shared.pending.lock() {
                std::mem::swap(&mut *pending, &mut batch);
                shared.woken.store(false, Ordering::Release);
            }
            if stopping {
                let stop = ChainEvent {
                    ts: crate::stamp::timestamp(std::time::SystemTime::now()),
                    kind: "audit",
                    event: "stop",
                    key_id: &self.key.id,
                    continues: None,
                    after_stop: None,
                    pid: Some(std::process::id()),
                    lines: Some(
                        self.lines
                            + batch
                                .split(|&b| b == b'\n')
                                .filter(|l| !l.is_empty())
                                .count()
                            + 1,
                    ),
                };
                if let Ok(mut line) = serde_json::to_vec(&stop) {
                    line.push(b'\n');
                    batch.extend_from_slice(&line);
                }
            }
            self.write(&mut batch, &mut chained, stopping);
            if stopping
                || (last_checkpoint.elapsed() >= self.checkpoint_every
                    && checkpointed != self.lines)
            {
                self.checkpoint(stopping);
                checkpointed = self.lines;
                last_checkpoint = std::time::Instant::now();
            }
            if stopping {
                return;
            }
        }
    }

    /// Until the interval is up, a request wakes the writer, or the sink stops.
    fn wait(&self, shared: &Shared) {
        let deadline = std::time::Instant::now() + self.flush_every;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero()
                || shared.woken.load(Ordering::Acquire)
                || shared.stop.load(Ordering::Acquire)
            {
                return;
            }
            // returns on a wake-up, at the timeout, or spuriously: the loop tells which
            std::thread::park_timeout(left);
        }
    }

    /// Chains and writes a batch; syncs what was written once a flush interval has passed
    /// since the last sync, or at the stop. Under load batches come faster than that (one
    /// per [`WAKE_AT`] bytes), and a sync per batch cost the writer 0.2 µs a line here; a
    /// line is on disk within two intervals of its request.
    fn write(&mut self, batch: &mut Vec<u8>, chained: &mut Vec<u8>, stopping: bool) {
        if !batch.is_empty() {
            for line in crate::split::split(batch, b'\n').filter(|l| !l.is_empty()) {
                chain::advance(&self.key, line, &mut self.prev, chained);
                self.lines += 1;
            }
            if let Err(e) = self.out.write(chained) {
                tracing::error!(error = %e, "audit write failed");
            }
            self.unsynced = true;
            batch.clear();
            chained.clear();
        }
        if self.unsynced && (stopping || self.synced_at.elapsed() >= self.flush_every) {
            if let Err(e) = self.out.sync() {
                tracing::error!(error = %e, "audit sync failed");
            }
            self.unsynced = false;
            self.synced_at = std::time::Instant::now();
        }
    }

    /// The line count and head hash, where the file's writer cannot rewrite them.
    fn checkpoint(&self, last: bool) {
        let m = crate::metrics::get();
        m.audit_lines
            .set(i64::try_from(self.lines).unwrap_or(i64::MAX));
        // The first 48 bits of the head hash: exact in a float, enough to tell heads apart.
        let head_prefix = i64::from_str_radix(self.prev.get(..12).unwrap_or("0"), 16).unwrap_or(0);
        m.audit_head.set(head_prefix);
        m.audit_checkpoint_time
            .set(i64::try_from(crate::stamp::unix_now()).unwrap_or(i64::MAX));
        tracing::info!(
            target: "guestgate::audit",
            file = %self.file,
            lines = self.lines,
            head = %self.prev,
            checkpoint = %format!("{}:{}", self.lines, self.prev),
            last,
            "audit checkpoint"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A FIFO as the audit path (a log shipper reading it): the sink starts without
    /// reading it for a chain to continue, which would wait for a writer forever, and
    /// its lines come out of the pipe.
    #[test]
    fn a_fifo_audit_path_starts_and_carries_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("audit.pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                let f = std::io::BufReader::new(std::fs::File::open(fifo).unwrap());
                f.lines().map_while(Result::ok).take(2).collect::<Vec<_>>()
            })
        };
        let cfg = AuditConfig {
            path: Some(fifo),
            flush_interval: Duration::from_millis(10),
            include_pass_through: true,
            key_file: dir.path().join("audit.key"),
            previous_key_files: Vec::new(),
            checkpoint_interval: Duration::from_secs(60),
        };
        let (done, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sink = AuditSink::start(&cfg, vec![AuditKey::new(&[7; 32])]).map(|sink| {
                sink.emit(&serde_json::json!({"kind": "request", "n": 1}));
                sink.close();
            });
            let _ = done.send(sink.is_ok());
        });
        assert_eq!(started.recv_timeout(Duration::from_secs(10)), Ok(true));
        let lines = reader.join().unwrap();
        assert!(lines[0].contains("\"event\":\"start\""), "{lines:?}");
        assert!(lines[1].contains("\"n\":1"), "{lines:?}");
    }

    /// A regular file gets the sync and the drop; a device (or pipe), where `fdatasync`
    /// fails, is written through rather than failing every batch.
    #[test]
    fn a_regular_file_is_synced_and_a_device_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Out::open(&dir.path().join("audit.log")).unwrap();
        assert!(matches!(file, Out::File(_)));
        file.write(b"{}\n").unwrap();
        file.sync().unwrap();
        let mut null = Out::open(std::path::Path::new("/dev/null")).unwrap();
        assert!(matches!(null, Out::Stream(_)));
        null.write(b"{}\n").unwrap();
        null.sync().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("audit.log")).unwrap(),
            b"{}\n"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        // Any text, with the bytes JSON escapes over-represented.
        prop_oneof![
            any::<String>(),
            "[\\x00-\\x1f\"\\\\a-z\\x7f\u{e9}\u{2028}]{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The hand-written decision line is byte for byte serde's, for any text in any
        /// field, any absent field, any status and latency.
        #[test]
        fn decision_lines_are_what_serde_wrote(
            texts in proptest::collection::vec(text(), 17),
            present in proptest::collection::vec(any::<bool>(), 11),
            status in any::<u16>(),
            latency in prop_oneof![any::<f64>(), 0.0..10_000.0f64],
            ip in any::<std::net::IpAddr>(),
        ) {
            let opt = |i: usize| present[i - 6].then_some(texts[i].as_str());
            let event = DecisionEvent {
                ts: texts[0].clone(),
                kind: "request",
                request_id: &texts[1],
                decision: "allow",
                reason: "rule_matched",
                status,
                method: &texts[5],
                path: opt(6),
                guest: opt(7),
                share: opt(8),
                case: opt(9),
                version: opt(10),
                profile: opt(11),
                rule: opt(12),
                detail: opt(13),
                session: opt(14),
                deny_id: opt(15),
                client_ip: present[10].then(|| crate::client_addr::IpText::new(ip)),
                latency_ms: latency,
            };
            let mut ours = Vec::new();
            event.write_json(&mut ours);
            let theirs = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}

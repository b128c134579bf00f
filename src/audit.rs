//! The audit stream: one JSON line per decision (and, later, per admin action).
//! Requests append their line to a shared in-memory batch under a short lock; a
//! dedicated thread wakes once per `flush_interval`, takes the whole batch and writes
//! it. No request waits on disk or wakes another thread (a per-line channel wake-up
//! measured here halved guest throughput), and a crash loses at most the lines of one
//! flush interval.
//!
//! Lines are hash-chained: each is the event's JSON with `"prev"` (the previous line's
//! hash) and `"hash"` = SHA-256(prev ‖ event JSON) appended, so an edited, dropped,
//! inserted or reordered line breaks the chain (`guestgate audit verify`). The chain
//! continues across restarts and across files (`prev` of a new file's first line is the
//! last hash of the file before it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Bytes that may wait for the writer; past this a line is dropped and counted rather
/// than letting memory grow without bound when the disk is far behind.
const MAX_PENDING: usize = 64 * 1024 * 1024;

/// Audit stream settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// File to append to; `None` = standard output.
    pub path: Option<PathBuf>,
    /// How often buffered lines are flushed (the durability bound).
    pub flush_interval: Duration,
    /// Whether non-guest requests passed through in mixed mode are audited too.
    pub include_pass_through: bool,
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
    /// `{pid}` in the path becomes the process id: two processes (an upgrade hand-over)
    /// then never append to one chain.
    pub fn start(path: Option<&Path>, flush_interval: Duration) -> std::io::Result<Self> {
        let path = path.map(|p| {
            std::path::PathBuf::from(
                p.display()
                    .to_string()
                    .replace("{pid}", &std::process::id().to_string()),
            )
        });
        let path = path.as_deref();
        let mut prev = GENESIS.to_string();
        let out: Box<dyn Write + Send> = match path {
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                if let Some(last) = last_hash(p)? {
                    prev = last;
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
            .spawn(move || writer(&for_writer, out, flush_interval, prev))?;
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

fn writer(shared: &Shared, mut out: Box<dyn Write + Send>, every: Duration, mut prev: String) {
    // Swapped with the pending batch each round, so neither side reallocates.
    let mut batch = Vec::with_capacity(1 << 20);
    let mut chained = Vec::with_capacity(1 << 20);
    loop {
        std::thread::sleep(every);
        if let Ok(mut pending) = shared.pending.lock() {
            std::mem::swap(&mut *pending, &mut batch);
        }
        if !batch.is_empty() {
            for line in batch.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                prev = chain_line(line, &prev, &mut chained);
            }
            if let Err(e) = out.write_all(&chained).and_then(|_| out.flush()) {
                tracing::error!(error = %e, "audit write failed");
            }
            batch.clear();
            chained.clear();
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// `prev` of the very first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `,"prev":"` + 64 hex + `","hash":"` + 64 hex + `"}`.
const SUFFIX_LEN: usize = 9 + 64 + 10 + 64 + 2;

fn link_hash(prev: &str, event: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(event);
    hex::encode(h.finalize())
}

/// Appends the chained form of one event line (`{...}`) to `out`; returns its hash.
fn chain_line(event: &[u8], prev: &str, out: &mut Vec<u8>) -> String {
    let hash = link_hash(prev, event);
    out.extend_from_slice(&event[..event.len().saturating_sub(1)]);
    out.extend_from_slice(format!(",\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}\n").as_bytes());
    hash
}

/// Splits a chained line into (event JSON, prev, hash), if it has the chain suffix.
fn unchain(line: &str) -> Option<(String, &str, &str)> {
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with("\"}") {
        return None;
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let prev = suffix.strip_prefix(",\"prev\":\"")?.get(..64)?;
    let hash = suffix
        .get(9 + 64..)?
        .strip_prefix("\",\"hash\":\"")?
        .get(..64)?;
    Some((format!("{body}}}"), prev, hash))
}

/// The hash of the last line of an existing audit file, to continue its chain.
fn last_hash(path: &Path) -> std::io::Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.is_empty())
        .and_then(unchain)
        .map(|(_, _, h)| h.to_string()))
}

/// The first break in a chain of audit files read in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: &'static str,
}

/// Verifies files in order; returns the number of lines checked or the first break.
/// Only the very first line of the first file may start from an unknown `prev` (a file
/// after rotation); `GENESIS` is expected when the chain started with that file.
pub fn verify_files(files: &[(String, String)]) -> Result<usize, ChainBreak> {
    let mut expected: Option<String> = None;
    let mut n = 0;
    for (name, text) in files {
        for (i, line) in text.lines().enumerate() {
            let at = |problem| ChainBreak {
                file: name.clone(),
                line: i + 1,
                problem,
            };
            if line.is_empty() {
                return Err(at("empty line"));
            }
            let (event, prev, hash) =
                unchain(line).ok_or_else(|| at("not a chained audit line"))?;
            if serde_json::from_str::<serde_json::Value>(&event).is_err() {
                return Err(at("not JSON"));
            }
            if link_hash(prev, event.as_bytes()) != hash {
                return Err(at("line was edited (hash does not match its content)"));
            }
            if let Some(want) = &expected {
                if prev != want {
                    return Err(at(
                        "a line before this one was dropped, inserted or reordered",
                    ));
                }
            }
            expected = Some(hash.to_string());
            n += 1;
        }
    }
    Ok(n)
}

/// The event of every chained line whose fields match all given filters.
pub fn search(
    text: &str,
    deny_id: Option<&str>,
    share: Option<&str>,
    email: Option<&str>,
) -> Vec<String> {
    text.lines()
        .filter_map(unchain)
        .filter_map(|(event, _, _)| {
            let v: serde_json::Value = serde_json::from_str(&event).ok()?;
            let is =
                |field: &str, want: Option<&str>| want.is_none_or(|w| v[field].as_str() == Some(w));
            (is("deny_id", deny_id) && is("share", share) && is("guest", email)).then_some(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(events: &[&str]) -> String {
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        for e in events {
            prev = chain_line(e.as_bytes(), &prev, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn check(text: &str) -> Result<usize, ChainBreak> {
        verify_files(&[("a.log".into(), text.into())])
    }

    #[test]
    fn intact_chains_verify_and_every_tampering_is_located() {
        let text = chain(&[
            r#"{"n":1,"guest":"a@x"}"#,
            r#"{"n":2}"#,
            r#"{"n":3,"deny_id":"d1"}"#,
            r#"{"n":4}"#,
        ]);
        assert_eq!(check(&text), Ok(4));
        let lines: Vec<&str> = text.lines().collect();
        let join = |v: Vec<&str>| v.join("\n") + "\n";

        let edited = text.replace(r#""n":2"#, r#""n":7"#);
        assert_eq!(check(&edited).unwrap_err().line, 2);
        assert!(check(&edited).unwrap_err().problem.contains("edited"));

        let dropped = join(vec![lines[0], lines[2], lines[3]]);
        assert_eq!(check(&dropped).unwrap_err().line, 2);
        assert!(check(&dropped).unwrap_err().problem.contains("dropped"));

        let reordered = join(vec![lines[0], lines[2], lines[1], lines[3]]);
        assert_eq!(check(&reordered).unwrap_err().line, 2);

        let mut forged = Vec::new();
        chain_line(br#"{"n":99}"#, GENESIS, &mut forged);
        let inserted = join(vec![
            lines[0],
            std::str::from_utf8(&forged).unwrap().trim_end(),
            lines[1],
        ]);
        assert_eq!(check(&inserted).unwrap_err().line, 2);
    }

    #[test]
    fn chains_continue_across_files() {
        let text = chain(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
        let (a, b) = text.split_at(text.find('\n').unwrap() + 1);
        assert_eq!(
            verify_files(&[("1".into(), a.into()), ("2".into(), b.into())]),
            Ok(3)
        );
        let e = verify_files(&[("2".into(), b.into()), ("1".into(), a.into())]).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("1", 1));
    }

    #[test]
    fn search_finds_by_deny_id_share_and_email() {
        let text = chain(&[
            r#"{"guest":"a@x","share":"s1"}"#,
            r#"{"deny_id":"d1","guest":"b@x","share":"s2"}"#,
        ]);
        assert_eq!(search(&text, Some("d1"), None, None).len(), 1);
        assert_eq!(search(&text, None, Some("s1"), None).len(), 1);
        assert_eq!(
            search(&text, None, None, Some("b@x")),
            vec![r#"{"deny_id":"d1","guest":"b@x","share":"s2"}"#.to_string()]
        );
        assert!(search(&text, Some("d2"), None, None).is_empty());
    }
}

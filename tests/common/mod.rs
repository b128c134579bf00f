//! Test harness: starts the real `guestgate` binary in front of a real upstream (the
//! sample app, recording every request it receives, or a deliberately lax one), waits on
//! `/readyz` and on the proxy port (never a fixed sleep), and speaks raw HTTP/1.1 so
//! hostile bytes reach the wire exactly as written.
//!
//! - `instance.rs`: a running guestgate ([`Instance`]) and its options
//! - `app.rs`: the sample app and what it received
//! - `http.rs`: raw requests, responses, and a cookie-keeping client
//! - `smtp.rs`: a real SMTP listener
//! - `redis.rs`: real redis-server processes, clusters and sentinels
//! - `tls.rs`: certificates made with openssl
//! - `lax.rs`: upstreams that read framing loosely
//! - `browser.rs`: headless Chromium over WebDriver

// Each test binary uses part of the harness.
#![allow(dead_code, unused_imports)]

mod app;
pub mod browser;
mod http;
mod instance;
pub mod lax;
mod redis;
mod smtp;
mod tls;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use guestgate::stamp::unix_now;

pub use app::{App, Seen};
pub use http::{exchange, http, path_of, request, Browser, Resp};
pub use instance::{code_and_link, grants, Instance, Opts, ADMIN_KEY, SHARER_KEY};
pub use redis::{redis_cli, redis_toml, wait_replicated, RedisCluster, RedisSentinel, RedisServer};
pub use smtp::SmtpSink;
pub use tls::{private_ca, self_signed};

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A port nobody listens on right now, not handed out before in this test process.
pub fn free_port() -> u16 {
    // The kernel may hand the same port out again once the probe closes: two picks in a
    // row (a listener and its admin port) once got one port. No port is given twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits (at most ~6 s) until the wall clock is not within the last seconds of a minute,
/// for tests of per-minute counters that must not straddle a window boundary.
pub fn clear_of_minute_boundary() {
    loop {
        let secs = unix_now() % 60;
        if secs < 52 {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

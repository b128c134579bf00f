//! Test harness: starts the real `guestgate` binary in front of the real sample app
//! (recording every request it receives), waits on `/readyz` and on the proxy port
//! (never a fixed sleep), and speaks raw HTTP/1.1 so hostile bytes reach the wire
//! exactly as written.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guestgate::session::{load_key, unix_now, SessionKeys, ShareGrant};

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

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request as the app received it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// All values of a header (case-insensitive name, exact spelling).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "header {name} repeated: {all:?}");
        all.first().copied()
    }

    /// Whether any header, in any `-`/`_` spelling, folds to `name`.
    pub fn has_header_folded(&self, name: &str) -> bool {
        let fold = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        self.headers.iter().any(|(k, _)| fold(k) == fold(name))
    }
}

/// The sample app, recording to a file.
pub struct App {
    pub addr: SocketAddr,
    record: PathBuf,
    _proc: Proc,
}

impl App {
    pub fn start(dir: &Path) -> App {
        let record = dir.join("app-requests.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_guestgate-sample-app"))
            .args(["--listen", "127.0.0.1:0", "--record"])
            .arg(&record)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sample app");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sample app banner");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("sample app banner: {line:?}"));
        App {
            addr,
            record,
            _proc: Proc(child),
        }
    }

    /// Everything the app has received so far.
    pub fn seen(&self) -> Vec<Seen> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect()
    }
}

/// Options for a guestgate instance.
pub struct Opts {
    pub mode: &'static str,
    pub extra_config: String,
    pub policies: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            mode: "mixed",
            extra_config: String::new(),
            policies: None,
        }
    }
}

/// A running guestgate with its own app, temp dir, key and audit file.
pub struct Gate {
    pub dir: tempfile::TempDir,
    pub app: App,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub keys: SessionKeys,
    pub stderr: PathBuf,
    proc: Proc,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Gate {
    pub fn start(opts: Opts) -> Gate {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = App::start(dir.path());
        let (port, admin_port) = (free_port(), free_port());
        let policies = opts.policies.unwrap_or_else(|| repo().join("policies"));
        let config = format!(
            "mode = \"{mode}\"\n\
             [listen]\naddress = \"127.0.0.1:{port}\"\nthreads = 1\n\
             [admin]\naddress = \"127.0.0.1:{admin_port}\"\n\
             [upstream]\naddress = \"{app}\"\n\
             [policies]\ndir = \"{policies}\"\n\
             [session]\nkey_file = \"session.key\"\nsecure_cookie = false\n\
             [audit]\npath = \"audit.log\"\nflush_interval = \"10ms\"\n\
             {extra}\n",
            mode = opts.mode,
            app = app.addr,
            policies = policies.display(),
            extra = opts.extra_config,
        );
        let cfg_path = dir.path().join("guestgate.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        let stderr = dir.path().join("guestgate.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start guestgate");
        let mut proc = Proc(child);
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("guestgate /readyz", Duration::from_secs(20), || {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!(
                    "guestgate exited with {status}: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            let r = http(
                admin,
                "GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
            (r.status == 200).then_some(())
        });
        wait_for("proxy port", Duration::from_secs(10), || {
            TcpStream::connect(addr).ok()
        });
        let key = load_key(&dir.path().join("session.key")).expect("key file created at start");
        let keys = SessionKeys::new(&key, &[], "guestgate", "guestgate");
        Gate {
            dir,
            app,
            addr,
            admin,
            keys,
            stderr,
            proc,
        }
    }

    /// A session cookie header value for `email` holding these (id, case, version, profile) shares.
    pub fn cookie(&self, email: &str, shares: &[(&str, &str, &str, &str)]) -> String {
        let token = self.keys.mint(email, grants(shares), 600).expect("mint");
        format!("guestgate_session={token}")
    }

    /// Sends raw bytes to the proxy.
    pub fn raw(&self, request: &str) -> Resp {
        http(self.addr, request).expect("proxy answered")
    }

    /// A GET (or other method) with optional cookie and extra header lines.
    pub fn send(&self, method: &str, target: &str, cookie: Option<&str>, extra: &[&str]) -> Resp {
        self.raw(&request(method, target, cookie, extra))
    }

    /// Audit lines written so far.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Waits until at least `n` audit lines are on disk.
    pub fn audit_at_least(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for("audit lines", Duration::from_secs(10), || {
            let a = self.audit();
            (a.len() >= n).then_some(a)
        })
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

pub fn grants(shares: &[(&str, &str, &str, &str)]) -> Vec<ShareGrant> {
    shares
        .iter()
        .map(|(id, case, version, profile)| ShareGrant {
            id: id.to_string(),
            case: case.to_string(),
            version: version.to_string(),
            profile: profile.to_string(),
            exp: unix_now() + 3600,
        })
        .collect()
}

/// Builds a request; a body-bearing method gets `Content-Length: 0` unless `extra` sets framing.
pub fn request(method: &str, target: &str, cookie: Option<&str>, extra: &[&str]) -> String {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        r.push_str(&format!("Cookie: {c}\r\n"));
    }
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    let framed = extra.iter().any(|h| {
        let l = h.to_ascii_lowercase();
        l.starts_with("content-length") || l.starts_with("transfer-encoding")
    });
    if !framed && matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection; reads to EOF (requests say `Connection: close`).
pub fn http(addr: SocketAddr, request: &str) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response: {:?}", String::from_utf8_lossy(&buf)),
        )
    })
}

fn parse_response(buf: &[u8]) -> Option<Resp> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(buf).ok()? else {
        return None;
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = r.code?;
    let rest = &buf[n..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 || rest.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&rest[i + 2..i + 2 + size]);
        rest = &rest[(i + 4 + size).min(rest.len())..];
    }
    out
}

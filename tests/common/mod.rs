//! Test harness: starts the real `guestgate` binary in front of the real sample app
//! (recording every request it receives), waits on `/readyz` and on the proxy port
//! (never a fixed sleep), and speaks raw HTTP/1.1 so hostile bytes reach the wire
//! exactly as written.

#![allow(dead_code)]

pub mod lax;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guestgate::session::{load_key, SessionKeys, ShareGrant};
use guestgate::stamp::unix_now;
use guestgate::store::{
    EmbeddedStore, RedisConfig, RedisEndpoint, RedisStore, Share, ShareStatus, Store,
};

/// API keys the test instances accept (their SHA-256 is in the config).
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const SHARER_KEY: &str = "test-sharer-key-0123456789";

/// Shares every instance starts with, active, so sessions minted in tests are honoured.
const SEEDED: &[(&str, &str, &str, &str)] = &[
    ("sh-42", "42", "3", "view-only"),
    ("sh-7", "7", "1", "collaborator"),
    ("sh-l", "42", "3", "legacy"),
];

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn seed(store_path: &Path, redis: Option<&RedisEndpoint>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    rt.block_on(async {
        let store: Box<dyn Store> = match redis {
            None => Box::new(EmbeddedStore::open(store_path).expect("open store")),
            Some(endpoint) => Box::new(
                RedisStore::connect(
                    RedisConfig {
                        endpoint: endpoint.clone(),
                        ca_file: None,
                        prefix: "{guestgate}:".into(),
                        timeout: Duration::from_secs(1),
                        staleness_bound: Duration::from_secs(3),
                    },
                    handle,
                )
                .await
                .expect("connect redis"),
            ),
        };
        for (id, case, version, profile) in SEEDED {
            let share = Share {
                id: id.to_string(),
                email: "expert@clinic.example".into(),
                case: case.to_string(),
                version: version.to_string(),
                profile: profile.to_string(),
                created_by: "seed".into(),
                created_at: unix_now(),
                expires_at: unix_now() + 3600,
                status: ShareStatus::Active,
                accepted_at: Some(unix_now()),
                revoked_at: None,
                revoked_by: None,
                failures: 0,
                locked: false,
                sends: vec![],
            };
            store
                .create_share(&share, &format!("seed-token-{id}"))
                .await
                .expect("seed");
        }
    });
}

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
    proc: Option<Proc>,
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
            proc: Some(Proc(child)),
        }
    }

    /// The file the app records every request to.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    /// Stops the app (its port then refuses connections).
    pub fn stop(&mut self) {
        self.proc = None;
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
    /// Extra lines appended to the `[guest]` section.
    pub guest_config: String,
    /// Replaces the `[mail]` section.
    pub mail_config: Option<String>,
    pub policies: Option<PathBuf>,
    /// Use the Redis backend (seeded there) instead of the embedded file.
    pub redis: Option<RedisEndpoint>,
    /// Extra lines for the `[store]` section.
    pub store_config: String,
    /// A session key file shared with other instances (replicas).
    pub key_file: Option<PathBuf>,
    /// TLS (cert, key): guests then use https, HTTP/2, and the Secure `__Host-` cookie.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The audit file (relative to the instance's directory).
    pub audit_path: &'static str,
    /// Another app than the sample app (a lax upstream).
    pub upstream: Option<SocketAddr>,
    /// Extra lines for the `[upstream]` section.
    pub upstream_config: String,
    /// Extra lines for the `[listen]` section.
    pub listen_config: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            mode: "mixed",
            guest_config: String::new(),
            mail_config: None,
            policies: None,
            redis: None,
            store_config: String::new(),
            key_file: None,
            tls: None,
            audit_path: "audit.log",
            upstream: None,
            upstream_config: String::new(),
            listen_config: String::new(),
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

fn spawn(cfg_path: &Path, stderr: &Path, admin: SocketAddr, addr: SocketAddr) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["serve", "--config"])
        .arg(cfg_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(stderr)
                .expect("stderr file"),
        )
        .spawn()
        .expect("start guestgate");
    let mut proc = Proc(child);
    wait_for("guestgate /readyz", Duration::from_secs(20), || {
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!(
                "guestgate exited with {status}: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
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
    proc
}

/// Extracts the 6-digit code and the link from an invitation email.
pub fn code_and_link(eml: &str) -> (String, String) {
    // Undo quoted-printable soft line breaks so long links are whole again.
    let text = eml
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let code = text
        .split("this code: ")
        .nth(1)
        .map(|rest| rest.chars().take(6).collect::<String>())
        .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in email:\n{eml}"));
    let start = text
        .find("https://")
        .or_else(|| text.find("http://"))
        .unwrap_or_else(|| panic!("no link in email:\n{eml}"));
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    (code, link)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Gate {
    /// The Prometheus text from the admin listener.
    pub fn metrics(&self) -> String {
        let r = http(
            self.admin,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .expect("metrics answer");
        assert_eq!(r.status, 200);
        r.body
    }

    pub fn start(opts: Opts) -> Gate {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = App::start(dir.path());
        let (port, admin_port) = (free_port(), free_port());
        let policies = opts
            .policies
            .clone()
            .unwrap_or_else(|| repo().join("policies"));
        let key_file = opts
            .key_file
            .clone()
            .unwrap_or_else(|| dir.path().join("session.key"));
        let mail = opts
            .mail_config
            .unwrap_or_else(|| "transport = \"file\"\noutbox = \"outbox\"".into());
        let config = format!(
            "mode = \"{mode}\"\n\
             [listen]\naddress = \"127.0.0.1:{port}\"\nthreads = 1\n{listen_config}\n\
             [admin]\naddress = \"127.0.0.1:{admin_port}\"\n\
             [[admin.keys]]\nname = \"case-app\"\nrole = \"admin\"\nsha256 = \"{admin_hash}\"\n\
             [[admin.keys]]\nname = \"paralegal\"\nrole = \"sharer\"\nsha256 = \"{sharer_hash}\"\n\
             [upstream]\naddress = \"{app}\"\n{upstream_config}\n\
             [policies]\ndir = \"{policies}\"\n\
             [session]\nkey_file = \"{key_file}\"\nsecure_cookie = {secure}\n\
             [store]\n{store}\n\
             [audit]\npath = \"{audit}\"\nflush_interval = \"10ms\"\n\
             [guest]\npublic_url = \"{scheme}://127.0.0.1:{port}\"\npublic_hosts = [\"app.test\"]\n{guest}\n\
             [mail]\n{mail}\n{tls}",
            mode = opts.mode,
            app = opts.upstream.unwrap_or(app.addr),
            upstream_config = opts.upstream_config,
            listen_config = opts.listen_config,
            policies = policies.display(),
            admin_hash = sha256_hex(ADMIN_KEY),
            sharer_hash = sha256_hex(SHARER_KEY),
            guest = opts.guest_config,
            key_file = key_file.display(),
            secure = opts.tls.is_some(),
            audit = opts.audit_path,
            scheme = if opts.tls.is_some() { "https" } else { "http" },
            tls = match &opts.tls {
                Some((c, k)) => format!(
                    "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                    c.display(),
                    k.display()
                ),
                None => String::new(),
            },
            store = match &opts.redis {
                Some(endpoint) => format!(
                    "backend = \"redis\"\n{}\n{}",
                    redis_toml(endpoint),
                    opts.store_config
                ),
                None => format!("path = \"state.redb\"\n{}", opts.store_config),
            },
        );
        let cfg_path = dir.path().join("guestgate.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        seed(&dir.path().join("state.redb"), opts.redis.as_ref());
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stderr = dir.path().join("guestgate.stderr");
        let proc = spawn(&cfg_path, &stderr, admin, addr);
        let key = load_key(&key_file).expect("key file created at start");
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

    /// Stops guestgate (SIGKILL: nothing gets a chance to flush) and starts it again
    /// on the same config, state and ports.
    pub fn restart(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        wait_for("proxy port released", Duration::from_secs(10), || {
            TcpListener::bind(self.addr).ok().map(|_| ())
        });
        wait_for("admin port released", Duration::from_secs(10), || {
            TcpListener::bind(self.admin).ok().map(|_| ())
        });
        let cfg = self.dir.path().join("guestgate.toml");
        self.proc = spawn(&cfg, &self.stderr, self.admin, self.addr);
    }

    /// The exit status, once the process has ended.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.0.try_wait().ok().flatten()
    }

    /// The guestgate process id.
    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Calls the admin API with a bearer key; returns status and JSON (Null when empty).
    pub fn api(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = http(self.admin, &req).expect("admin answered");
        let json = if r.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&r.body)
                .unwrap_or_else(|e| panic!("admin body not JSON ({e}): {}", r.body))
        };
        (r.status, json)
    }

    /// The `.eml` files in the outbox, oldest first.
    pub fn outbox(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("outbox"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
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

    /// Waits until an audit line matching `pred` is on disk; returns all lines.
    pub fn audit_until(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        wait_for(what, Duration::from_secs(10), || {
            let a = self.audit();
            a.iter().any(&pred).then_some(a)
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

/// Writes raw bytes on a fresh connection and returns all the server sent back until it
/// closed the connection. The bytes should end with a `Connection: close` request (a
/// half-close would make pingora abort a request whose body it is still forwarding).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
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

/// A real SMTP listener on a free port that keeps every message it receives.
pub struct SmtpSink {
    pub port: u16,
    pub messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("smtp bind");
        let port = listener.local_addr().unwrap().port();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = messages.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || smtp_session(conn, &store));
            }
        });
        SmtpSink { port, messages }
    }
}

fn smtp_session(conn: TcpStream, store: &std::sync::Mutex<Vec<String>>) {
    let mut out = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    let _ = out.write_all(b"220 sink ESMTP\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            b"250 sink\r\n"
        } else if cmd.starts_with("DATA") {
            let _ = out.write_all(b"354 go ahead\r\n");
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            store.lock().unwrap().push(data);
            b"250 queued\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = out.write_all(b"221 bye\r\n");
            return;
        } else {
            b"250 OK\r\n"
        };
        let _ = out.write_all(reply);
    }
}

/// A browser: keeps guestgate's cookie between requests.
pub struct Browser<'a> {
    pub gate: &'a Gate,
    pub cookie: Option<String>,
    /// Header lines added to every request (a load balancer's `X-Forwarded-For`).
    pub extra: Vec<String>,
}

impl<'a> Browser<'a> {
    pub fn new(gate: &'a Gate) -> Self {
        Browser {
            gate,
            cookie: None,
            extra: Vec::new(),
        }
    }

    fn absorb(&mut self, r: &Resp) {
        if let Some(c) = r.header("set-cookie") {
            let pair = c.split(';').next().unwrap_or("").trim().to_string();
            self.cookie = if pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        let r = self
            .gate
            .send("GET", path, self.cookie.as_deref(), &["Accept: text/html"]);
        self.absorb(&r);
        r
    }

    /// A form POST from guestgate's own page (same Origin).
    pub fn post_form(&mut self, path: &str, form: &str) -> Resp {
        let origin = format!("Origin: http://{}", self.gate.addr);
        let len = format!("Content-Length: {}", form.len());
        let mut extra = vec![
            origin.as_str(),
            "Content-Type: application/x-www-form-urlencoded",
            &len,
            "Accept: text/html",
        ];
        extra.extend(self.extra.iter().map(String::as_str));
        let mut req = request("POST", path, self.cookie.as_deref(), &extra);
        req.push_str(form);
        let r = self.gate.raw(&req);
        self.absorb(&r);
        r
    }
}

/// The path part of a link.
pub fn path_of(link: &str) -> String {
    let after = link.find("://").map_or(0, |i| i + 3);
    link[after..]
        .find('/')
        .map_or("/".into(), |i| link[after + i..].to_string())
}

/// The `[store]` lines that name `e`.
pub fn redis_toml(e: &RedisEndpoint) -> String {
    match e {
        RedisEndpoint::Single { url } => format!("url = \"{url}\""),
        RedisEndpoint::Cluster { nodes } => format!("topology = \"cluster\"\nnodes = {nodes:?}"),
        RedisEndpoint::Sentinel {
            sentinels,
            service,
            primary_url,
        } => format!(
            "topology = \"sentinel\"\nnodes = {sentinels:?}\nsentinel_service = \"{service}\"\n{}",
            primary_url
                .as_ref()
                .map(|u| format!("url = \"{u}\""))
                .unwrap_or_default()
        ),
    }
}

/// A real `redis-server` on a free port, killed on drop. With `persist`, it keeps an
/// append-only file in `dir` so a restart brings the data back.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    persist: bool,
    /// More `redis-server` arguments (cluster, replication, TLS, passwords).
    extra: Vec<String>,
    proc: Option<Proc>,
}

impl RedisServer {
    pub fn start(dir: &Path, persist: bool) -> RedisServer {
        Self::start_with(dir, persist, free_port(), &[])
    }

    /// A server on `port` with more arguments.
    pub fn start_with(dir: &Path, persist: bool, port: u16, extra: &[String]) -> RedisServer {
        let mut r = RedisServer {
            port,
            dir: dir.to_path_buf(),
            persist,
            extra: extra.to_vec(),
            proc: None,
        };
        r.launch();
        r
    }

    /// Sends one command with `redis-cli` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn endpoint(&self) -> RedisEndpoint {
        RedisEndpoint::Single { url: self.url() }
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if self.persist {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.extra);
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (scripts/setup.sh installs it)");
        self.proc = Some(Proc(child));
        wait_for_redis(self.port);
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        self.proc = None;
        let port = self.port;
        wait_for("redis port released", Duration::from_secs(10), || {
            TcpListener::bind(("127.0.0.1", port)).ok().map(|_| ())
        });
    }

    /// Starts it again on the same port (and, if persistent, the same data).
    pub fn restart(&mut self) {
        self.launch();
    }
}

/// Waits until something answers PING (or asks for a password) on `port`.
fn wait_for_redis(port: u16) {
    wait_for("redis-server", Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"PING\r\n").ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).ok()?;
        (&buf == b"+PONG\r\n" || &buf == b"-NOAUTH").then_some(())
    });
}

/// One command through `redis-cli` against a local port; its output, trimmed.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli must be installed (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key).
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/setup.sh installs it)")
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost:
/// (CA certificate, server certificate, server key).
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let f = |n: &str| dir.join(n);
    let ext = f("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write leaf.ext");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-days", "1", "-subj", "/CN=guestgate test CA"],
    ];
    run(&[&ca.concat()[..], &["-keyout", "ca.key", "-out", "ca.pem"]].concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    (f("ca.pem"), f("leaf.pem"), f("leaf.key"))
}

/// A real Redis Cluster: `primaries` primaries, each with `replicas` replicas, made by
/// `redis-cli --cluster create`. Nodes are killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(dir: &Path, primaries: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..primaries * (replicas + 1))
            .map(|_| {
                let port = free_port();
                let bus = free_port();
                RedisServer::start_with(
                    dir,
                    false,
                    port,
                    &[
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-port".into(),
                        bus.to_string(),
                        "--cluster-config-file".into(),
                        format!("nodes-{port}.conf"),
                        // A dead primary is replaced after about this long.
                        "--cluster-node-timeout".into(),
                        "1000".into(),
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = RedisCluster { nodes };
        for n in &c.nodes {
            wait_for("cluster state ok", Duration::from_secs(30), || {
                n.cli(&["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
                    .then_some(())
            });
        }
        c
    }

    pub fn endpoint(&self, seeds: &[u16]) -> RedisEndpoint {
        RedisEndpoint::Cluster {
            nodes: seeds
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
        }
    }

    fn live(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.proc.is_some())
    }

    /// The port of the primary that owns guestgate's hash tag now (as a live node sees it).
    pub fn owner(&self, tag: &str) -> u16 {
        let mut owner = None;
        wait_for("a primary for the slot", Duration::from_secs(30), || {
            let n = self.live().next()?;
            let slot: u16 = n.cli(&["CLUSTER", "KEYSLOT", tag]).parse().ok()?;
            for line in n.cli(&["CLUSTER", "NODES"]).lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                    continue;
                }
                for range in &f[8..] {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                    if (a..=b).contains(&slot) {
                        let addr = f[1].split('@').next()?;
                        owner = addr.rsplit(':').next()?.parse().ok();
                    }
                }
            }
            owner.map(|_| ())
        });
        owner.unwrap_or_default()
    }

    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }
}

/// Waits until the replicas of the primary on `port` have caught up with it.
pub fn wait_replicated(port: u16, password: Option<&str>) {
    wait_for("replicas caught up", Duration::from_secs(10), || {
        let info = match password {
            Some(pw) => redis_cli(
                port,
                &["--no-auth-warning", "-a", pw, "INFO", "replication"],
            ),
            None => redis_cli(port, &["INFO", "replication"]),
        };
        let field = |line: &str, key: &str| -> Option<u64> {
            line.split(',')
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        };
        let master: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))?
            .trim()
            .parse()
            .ok()?;
        let replicas: Vec<u64> = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("offset="))
            .filter_map(|l| field(l, "offset="))
            .collect();
        (!replicas.is_empty() && replicas.iter().all(|&o| o >= master)).then_some(())
    });
}

/// A primary, one replica and one Sentinel watching them as `service`, all real
/// processes, the data nodes behind `password`.
pub struct RedisSentinel {
    pub servers: Vec<RedisServer>,
    pub sentinel_port: u16,
    pub service: &'static str,
    pub password: &'static str,
    _sentinel: Proc,
}

impl RedisSentinel {
    pub fn start(dir: &Path) -> RedisSentinel {
        let password = "s3ntinel-data-pw";
        let auth = |extra: &[String]| {
            let mut a = vec![
                "--requirepass".to_string(),
                password.into(),
                "--masterauth".into(),
                password.into(),
            ];
            a.extend_from_slice(extra);
            a
        };
        let primary = RedisServer::start_with(dir, false, free_port(), &auth(&[]));
        let replica = RedisServer::start_with(
            dir,
            false,
            free_port(),
            &auth(&[
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ]),
        );
        let sentinel_port = free_port();
        let conf = dir.join(format!("sentinel-{sentinel_port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor gg 127.0.0.1 {p} 1\n\
                 sentinel auth-pass gg {password}\n\
                 sentinel down-after-milliseconds gg 1000\n\
                 sentinel failover-timeout gg 5000\n",
                dir = dir.display(),
                p = primary.port,
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let s = RedisSentinel {
            servers: vec![primary, replica],
            sentinel_port,
            service: "gg",
            password,
            _sentinel: Proc(child),
        };
        wait_for_redis(sentinel_port);
        // Ready once the Sentinel knows the replica as a healthy candidate.
        let rport = s.servers[1].port.to_string();
        wait_for("sentinel sees the replica", Duration::from_secs(30), || {
            let r = redis_cli(sentinel_port, &["SENTINEL", "REPLICAS", "gg"]);
            (r.contains(&rport) && !r.contains("disconnected") && !r.contains("s_down"))
                .then_some(())
        });
        s
    }

    pub fn endpoint(&self) -> RedisEndpoint {
        RedisEndpoint::Sentinel {
            sentinels: vec![format!("redis://127.0.0.1:{}", self.sentinel_port)],
            service: self.service.into(),
            primary_url: Some(format!("redis://:{}@{}/0", self.password, self.service)),
        }
    }

    /// The port of the primary the Sentinel names now.
    pub fn primary(&self) -> u16 {
        let r = redis_cli(
            self.sentinel_port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service],
        );
        r.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_default()
    }

    pub fn server(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a server on that port")
    }

    /// A command to a data node, authenticated.
    pub fn data_cli(&self, port: u16, args: &[&str]) -> String {
        let mut a = vec!["--no-auth-warning", "-a", self.password];
        a.extend_from_slice(args);
        redis_cli(port, &a)
    }
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

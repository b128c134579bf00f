//! A running guestgate: the real binary with its own config, temp dir, key, audit file and
//! app, started on free ports and ready when `/readyz` answers; its admin API, outbox and
//! audit lines.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use guestgate::session::{load_key, SessionKeys, ShareGrant};
use guestgate::stamp::unix_now;
use guestgate::store::{
    EmbeddedStore, RedisConfig, RedisEndpoint, RedisStore, Share, ShareStatus, Store,
};

use super::{free_port, http, redis_toml, repo, request, wait_for, App, Proc, Resp};

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

fn seed(store_path: &Path, redis: Option<&RedisEndpoint>, extra: &[Share]) {
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
        let now = unix_now();
        let seeded = SEEDED.iter().map(|(id, case, version, profile)| Share {
            created_by: "seed".into(),
            owner: "case-app".into(),
            status: ShareStatus::Active,
            accepted_at: Some(now),
            ..Share::pending(
                id,
                "expert@clinic.example",
                [case, version, profile],
                now,
                now + 3600,
            )
        });
        for share in seeded.chain(extra.iter().cloned()) {
            store
                .create_share(&share, &format!("seed-token-{}", share.id))
                .await
                .expect("seed");
        }
    });
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
    /// Extra arguments for the sample app.
    pub app_args: Vec<String>,
    /// Extra sections appended to the config (`[assertion]`, ...).
    pub extra_config: String,
    /// Shares in the store before start, besides the usual three.
    pub seed_shares: Vec<Share>,
    /// Extra lines for the `[audit]` section.
    pub audit_config: String,
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
            app_args: Vec::new(),
            extra_config: String::new(),
            seed_shares: Vec::new(),
            audit_config: String::new(),
        }
    }
}

/// A running guestgate with its own app, temp dir, key and audit file.
pub struct Instance {
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

impl Instance {
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

    pub fn start(opts: Opts) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = App::start(dir.path(), &opts.app_args);
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
             [audit]\npath = \"{audit}\"\n{flush}{audit_config}\n\
             [guest]\npublic_url = \"{scheme}://127.0.0.1:{port}\"\npublic_hosts = [\"app.test\"]\n{guest}\n\
             [mail]\n{mail}\n{tls}\n{extra}",
            mode = opts.mode,
            extra = opts.extra_config,
            // a test that sets its own interval gets it; the rest write every 10 ms
            flush = if opts.audit_config.contains("flush_interval") {
                ""
            } else {
                "flush_interval = \"10ms\"\n"
            },
            audit_config = opts.audit_config,
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
        seed(
            &dir.path().join("state.redb"),
            opts.redis.as_ref(),
            &opts.seed_shares,
        );
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stderr = dir.path().join("guestgate.stderr");
        let proc = spawn(&cfg_path, &stderr, admin, addr);
        let key = load_key(&key_file).expect("key file created at start");
        let keys = SessionKeys::new(&key, &[], "guestgate", "guestgate");
        Instance {
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

    /// Stops guestgate the way an orchestrator does (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        wait_for("guestgate to exit", Duration::from_secs(20), || {
            self.try_exit()
        })
    }

    /// Starts guestgate again on the same config, state and ports (after it stopped).
    pub fn start_again(&mut self) {
        self.restart();
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

    /// Decision lines written so far: the chain's own records (start, stop, key
    /// changes, `"kind":"audit"`) are left out, so tests count decisions.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        // Read while the writer appends, the file can end inside a line (its size grows
        // a page at a time during one write): only whole lines are read.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
            .filter(|line| line["kind"] != "audit")
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

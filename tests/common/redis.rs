//! Real Redis for tests: `redis-server` processes on free ports, a Cluster made with
//! `redis-cli --cluster create`, and a Sentinel-watched primary and replica.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use guestgate::store::RedisEndpoint;

use super::{free_port, wait_for, Proc};

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

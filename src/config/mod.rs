//! Configuration: `guestgate.toml` plus `GUESTGATE_SECTION__KEY` environment overrides,
//! validated into [`Config`]. Only valid config leaves this module; every error names
//! the file and line (or the environment variable) and the key.

mod env;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use crate::admin::api::{ApiKey, Role};
use crate::audit::AuditConfig;
use crate::decision::Mode;
use crate::proxy::UpstreamConfig;
use crate::session::SessionConfig;
use crate::shares::GuestConfig;
use crate::store::StoreConfig;
use crate::tls::TlsConfig;
use crate::toml_source::{Source, SourceError, SourceErrors};
use raw::RawConfig;

/// Log output settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JSON lines (`json`) or human-readable (`text`).
    pub json: bool,
    /// Default filter directive (overridden by `RUST_LOG`).
    pub level: String,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Guest-only or mixed.
    pub mode: Mode,
    /// Proxy listen address.
    pub listen: SocketAddr,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// The app.
    pub upstream: UpstreamConfig,
    /// Directory of `*.toml` policy files.
    pub policies_dir: PathBuf,
    /// Session settings.
    pub session: SessionConfig,
    /// Longest request target accepted (bytes).
    pub max_target_length: usize,
    /// Largest `Content-Length` accepted (bytes).
    pub max_content_length: u64,
    /// Forward bodies on bodiless methods for pass-through requests.
    pub forward_bodiless_method_bodies: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// Extra identity headers guestgate owns (stripped from every incoming request).
    pub strip_headers: Vec<HeaderName>,
    /// Audit stream.
    pub audit: AuditConfig,
    /// Logs.
    pub log: LogConfig,
    /// Admin listener (`/healthz`, `/readyz`, admin API).
    pub admin: SocketAddr,
    /// Admin API keys.
    pub api_keys: Vec<ApiKey>,
    /// Largest admin request body.
    pub admin_max_body: usize,
    /// Where shares live.
    pub store: StoreConfig,
    /// Guest pages.
    pub guest: GuestConfig,
    /// Sender address.
    pub mail_from: String,
    /// Mail transport.
    pub mail: crate::mail::MailTransport,
    /// TLS to guests, when configured.
    pub tls: Option<TlsConfig>,
}

impl Config {
    /// Reads, overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Self, SourceErrors> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SourceErrors> {
        let one = |e: SourceError| SourceErrors(vec![e]);
        let src = Source::read(path).map_err(one)?;
        // The file alone first, so its mistakes are reported with their lines.
        let file_only: RawConfig = src.deserialize().map_err(one)?;
        let overrides = env::overrides(vars);
        let raw = if overrides.is_empty() {
            file_only
        } else {
            env::apply(&src, &overrides).map_err(one)?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        validate(
            raw,
            &Located {
                src: &src,
                overrides: &overrides,
            },
            base,
        )
    }
}

/// Resolves where a key's value came from, for error messages.
struct Located<'a> {
    src: &'a Source,
    overrides: &'a [env::Override],
}

impl Located<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> SourceError {
        match self.overrides.iter().find(|o| o.key == key) {
            Some(o) => SourceError {
                origin: format!("environment ({})", o.var),
                line: None,
                key: Some(key.to_string()),
                message: message.into(),
                help: None,
            },
            None => self.src.error_at(key, message),
        }
    }
}

/// Which Redis: one URL, a Cluster's seed nodes, or Sentinels and the name they watch.
fn redis_endpoint(
    topology: Option<String>,
    url: Option<String>,
    nodes: Option<Vec<String>>,
    service: Option<String>,
    err: &dyn Fn(&str, String),
) -> crate::store::RedisEndpoint {
    use crate::store::RedisEndpoint;
    let is_url = |u: &str, unix: bool| {
        u.starts_with("redis://")
            || u.starts_with("rediss://")
            || (unix && (u.starts_with("redis+unix://") || u.starts_with("unix://")))
    };
    let nodes = nodes.unwrap_or_default();
    let check_nodes = |what: &str| {
        if nodes.is_empty() {
            err(
                "store.nodes",
                format!("topology `{what}` needs `nodes`: a list of redis:// or rediss:// URLs"),
            );
        }
        for (i, n) in nodes.iter().enumerate() {
            if !is_url(n, false) {
                err(
                    &format!("store.nodes[{i}]"),
                    format!(
                        "`{}` is not a redis:// or rediss:// URL",
                        crate::store::redact(n)
                    ),
                );
            }
        }
    };
    match topology.as_deref().unwrap_or("single") {
        "single" => {
            if !nodes.is_empty() {
                err(
                    "store.nodes",
                    "`nodes` is for topology `cluster` or `sentinel`; a single server is `url`"
                        .into(),
                );
            }
            if service.is_some() {
                err(
                    "store.sentinel_service",
                    "`sentinel_service` needs topology = \"sentinel\"".into(),
                );
            }
            let url = url.unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
            if !is_url(&url, true) {
                err(
                    "store.url",
                    format!(
                        "`{}` is not a redis://, rediss:// or redis+unix:// URL",
                        crate::store::redact(&url)
                    ),
                );
            }
            RedisEndpoint::Single { url }
        }
        "cluster" => {
            check_nodes("cluster");
            if url.is_some() {
                err(
                    "store.url",
                    "with topology `cluster`, list the seed nodes in `nodes` instead of `url`"
                        .into(),
                );
            }
            RedisEndpoint::Cluster { nodes }
        }
        "sentinel" => {
            check_nodes("sentinel");
            let service = service.unwrap_or_default();
            if service.is_empty() {
                err(
                    "store.sentinel_service",
                    "topology `sentinel` needs the name the sentinels monitor the primary under"
                        .into(),
                );
            }
            if let Some(u) = &url {
                if !is_url(u, false) {
                    err(
                        "store.url",
                        format!(
                            "`{}` is not a redis:// or rediss:// URL (with sentinels it gives the primary's credentials, database and TLS)",
                            crate::store::redact(u)
                        ),
                    );
                }
            }
            RedisEndpoint::Sentinel {
                sentinels: nodes,
                service,
                primary_url: url,
            }
        }
        other => {
            err(
                "store.topology",
                format!("`{other}` is not a topology; use `single`, `cluster` or `sentinel`"),
            );
            RedisEndpoint::Single { url: String::new() }
        }
    }
}

/// The `host[:port]` of an `http(s)://` URL.
fn authority_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or("").to_string()
}

/// `host[:port]`: a host name or address (IPv6 in brackets) and an optional numeric port.
fn valid_authority(a: &str) -> bool {
    let (host, port) = match a.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, tail)) => (
                inner.parse::<std::net::Ipv6Addr>().is_ok(),
                tail.strip_prefix(':').or(tail.is_empty().then_some("")),
            ),
            None => return false,
        },
        None => {
            let (h, p) = a.rsplit_once(':').map_or((a, ""), |(h, p)| (h, p));
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            (ok, Some(p))
        }
    };
    host && port.is_some_and(|p| p.is_empty() || p.parse::<u16>().is_ok_and(|n| n > 0))
}

/// A host as guests may spell it: as configured, and with or without the default port.
fn push_host_forms(out: &mut Vec<String>, host: &str, default_port: u16) {
    let suffix = format!(":{default_port}");
    let bare = host.strip_suffix(&suffix).unwrap_or(host);
    let has_port = bare.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    for form in [bare.to_string(), format!("{bare}{suffix}")] {
        if (has_port && form != bare) || out.contains(&form) {
            continue;
        }
        out.push(form);
    }
}

fn validate(raw: RawConfig, at: &Located<'_>, base: &Path) -> Result<Config, SourceErrors> {
    // A RefCell so the small validation helpers below can all report errors.
    let errors = std::cell::RefCell::new(Vec::new());
    let err = |key: &str, msg: String| errors.borrow_mut().push(at.error(key, msg));
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };

    let mode = match raw.mode.as_deref().unwrap_or("mixed") {
        "mixed" => Mode::Mixed,
        "guest-only" => Mode::GuestOnly,
        other => {
            err(
                "mode",
                format!("`{other}` is not a mode; use `mixed` or `guest-only`"),
            );
            Mode::GuestOnly
        }
    };
    let addr = |key: &str, value: Option<String>, default: &str| -> SocketAddr {
        let v = value.unwrap_or_else(|| default.to_string());
        v.parse().unwrap_or_else(|_| {
            err(key, format!("`{v}` is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let listen = addr("listen.address", raw.listen.address, "0.0.0.0:8080");
    let admin = addr("admin.address", raw.admin.address, "127.0.0.1:9190");
    let threads = raw.listen.threads.unwrap_or(2);
    if threads == 0 || threads > 256 {
        err("listen.threads", "threads must be between 1 and 256".into());
    }
    let mut trusted = Vec::new();
    for (i, c) in raw
        .listen
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match c.parse::<crate::client_addr::Cidr>() {
            Ok(c) => trusted.push(c),
            Err(m) => err(&format!("listen.trusted_proxies[{i}]"), m),
        }
    }

    let upstream_address = raw.upstream.address.unwrap_or_default();
    if upstream_address.is_empty() {
        err(
            "upstream.address",
            "the app's address is required (host:port)".into(),
        );
    } else if !upstream_address.contains(':') {
        err(
            "upstream.address",
            format!("`{upstream_address}` needs a port (host:port)"),
        );
    }
    let duration = |key: &str, value: Option<String>, default: &str| -> Duration {
        let v = value.unwrap_or_else(|| default.to_string());
        match humantime::parse_duration(&v) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                err(key, format!("`{v}` is not a duration like 250ms, 5s, 8h"));
                Duration::from_secs(1)
            }
        }
    };
    let connect_timeout = duration(
        "upstream.connect_timeout",
        raw.upstream.connect_timeout,
        "2s",
    );
    let read_timeout = duration("upstream.read_timeout", raw.upstream.read_timeout, "60s");
    let max_lifetime = duration("session.max_lifetime", raw.session.max_lifetime, "8h");
    let flush_interval = duration("audit.flush_interval", raw.audit.flush_interval, "200ms");

    let cookie_name = raw
        .session
        .cookie_name
        .unwrap_or_else(|| "guestgate_session".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || cookie_name.starts_with("__")
    {
        err(
            "session.cookie_name",
            "cookie names are ASCII letters, digits, `_` or `-`; the `__Host-` prefix is added automatically".into(),
        );
    }

    let max_target_length = raw.limits.max_target_length.unwrap_or(4096);
    if !(64..=65536).contains(&max_target_length) {
        err(
            "limits.max_target_length",
            "must be between 64 and 65536".into(),
        );
    }
    let max_content_length = raw.limits.max_content_length.unwrap_or(1 << 30);
    if max_content_length == 0 {
        err(
            "limits.max_content_length",
            "must be at least 1 (bytes)".into(),
        );
    }

    let mut strip_headers = Vec::new();
    for (i, h) in raw
        .identity
        .strip_headers
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => strip_headers.push(n),
            Err(_) => err(
                &format!("identity.strip_headers[{i}]"),
                format!("`{h}` is not a header name"),
            ),
        }
    }

    let json = match raw.log.format.as_deref().unwrap_or("json") {
        "json" => true,
        "text" => false,
        other => {
            err(
                "log.format",
                format!("`{other}` is not a log format; use `json` or `text`"),
            );
            true
        }
    };
    let audit_path = match raw.audit.path.as_deref().unwrap_or("-") {
        "-" => None,
        p => Some(resolve(p)),
    };

    let mut api_keys = Vec::new();
    for (i, k) in raw.admin.keys.unwrap_or_default().into_iter().enumerate() {
        let key = format!("admin.keys[{i}]");
        let role = match k.role.as_str() {
            "admin" => Role::Admin,
            "sharer" => Role::Sharer,
            other => {
                err(
                    &format!("{key}.role"),
                    format!("`{other}` is not a role; use `admin` or `sharer`"),
                );
                continue;
            }
        };
        let mut sha = [0u8; 32];
        match hex::decode(k.sha256.trim()) {
            Ok(b) if b.len() == 32 => sha.copy_from_slice(&b),
            _ => {
                err(
                    &format!("{key}.sha256"),
                    "must be the 64-hex-digit SHA-256 of the key (`guestgate admin new-key` prints one)".into(),
                );
                continue;
            }
        }
        if k.name.is_empty() {
            err(
                &format!("{key}.name"),
                "an API key needs a name (it is the actor in audit events)".into(),
            );
        }
        api_keys.push(ApiKey {
            name: k.name,
            role,
            sha256: sha,
        });
    }
    let admin_max_body = raw.admin.max_body_bytes.unwrap_or(16 * 1024);

    let st = raw.store;
    let store = match st.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            StoreConfig::Embedded(resolve(st.path.as_deref().unwrap_or("guestgate.redb")))
        }
        "redis" => {
            let endpoint = redis_endpoint(st.topology, st.url, st.nodes, st.sentinel_service, &err);
            let prefix = st.key_prefix.unwrap_or_else(|| "{guestgate}:".into());
            if !(prefix.starts_with('{') && prefix.contains('}')) {
                err(
                    "store.key_prefix",
                    "the prefix must start with a hash tag like `{guestgate}:` so every key lands in one Redis Cluster slot".into(),
                );
            }
            StoreConfig::Redis(crate::store::RedisConfig {
                endpoint,
                ca_file: st.ca_file.as_deref().map(&resolve),
                prefix,
                timeout: duration("store.timeout", st.timeout, "1s"),
                staleness_bound: duration("store.staleness_bound", st.staleness_bound, "3s"),
            })
        }
        other => {
            err(
                "store.backend",
                format!("`{other}` is not a store backend; use `embedded` or `redis`"),
            );
            StoreConfig::Embedded(PathBuf::new())
        }
    };

    let g = raw.guest;
    let prefix = g.prefix.unwrap_or_else(|| "/_guestgate".into());
    if !prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.len() < 2
        || prefix.contains(['?', '#', '%', ';', '\\'])
    {
        err(
            "guest.prefix",
            format!("`{prefix}` must look like /_guestgate (leading /, no trailing /)"),
        );
    }
    let public_url = g
        .public_url
        .unwrap_or_else(|| format!("http://{listen}"))
        .trim_end_matches('/')
        .to_string();
    if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
        err(
            "guest.public_url",
            format!("`{public_url}` must start with https:// (or http:// for local use)"),
        );
    }
    let scheme_port = if raw.tls.cert_file.is_some() { 443 } else { 80 };
    let mut public_hosts = Vec::new();
    let url_host = authority_of(&public_url);
    for (i, h) in std::iter::once(url_host.clone())
        .chain(g.public_hosts.unwrap_or_default())
        .enumerate()
    {
        let h = h.to_ascii_lowercase();
        if !valid_authority(&h) {
            let key = if i == 0 {
                "guest.public_url".to_string()
            } else {
                format!("guest.public_hosts[{}]", i - 1)
            };
            err(
                &key,
                format!("`{h}` is not a host name with an optional port"),
            );
            continue;
        }
        push_host_forms(&mut public_hosts, &h, scheme_port);
    }
    let upstream_host = raw.upstream.host.unwrap_or(url_host);
    if !valid_authority(&upstream_host) {
        err(
            "upstream.host",
            format!("`{upstream_host}` is not a host name with an optional port"),
        );
    }
    let landing = g
        .landing
        .unwrap_or_else(|| "/cases/{case}/versions/{version}".into());
    if !landing.starts_with('/') {
        err(
            "guest.landing",
            "the landing path must start with `/`".into(),
        );
    }
    let code_lifetime = duration("guest.code_lifetime", g.code_lifetime, "10m");
    let default_share_lifetime = duration(
        "guest.default_share_lifetime",
        g.default_share_lifetime,
        "7d",
    );
    let max_share_lifetime = duration("guest.max_share_lifetime", g.max_share_lifetime, "90d");
    let resend_interval = duration("guest.resend_interval", g.resend_interval, "60s");
    let same_site = match g.same_site.as_deref().unwrap_or("lax") {
        "lax" | "Lax" => "Lax",
        "strict" | "Strict" => "Strict",
        other => {
            err(
                "guest.same_site",
                format!("`{other}` must be `lax` or `strict`"),
            );
            "Strict"
        }
    };

    let m = raw.mail;
    let mail = match m.transport.as_deref().unwrap_or("file") {
        "file" => {
            crate::mail::MailTransport::File(resolve(m.outbox.as_deref().unwrap_or("outbox")))
        }
        "smtp" => {
            let host = m.smtp_host.unwrap_or_default();
            if host.is_empty() {
                err("mail.smtp_host", "SMTP transport needs a host".into());
            }
            let security = match m.smtp_security.as_deref().unwrap_or("starttls") {
                "starttls" => crate::mail::SmtpSecurity::StartTls,
                "tls" => crate::mail::SmtpSecurity::Tls,
                "none" => crate::mail::SmtpSecurity::None,
                other => {
                    err(
                        "mail.smtp_security",
                        format!("`{other}` must be `starttls`, `tls` or `none`"),
                    );
                    crate::mail::SmtpSecurity::StartTls
                }
            };
            let port = m.smtp_port.unwrap_or(match security {
                crate::mail::SmtpSecurity::Tls => 465,
                crate::mail::SmtpSecurity::StartTls => 587,
                crate::mail::SmtpSecurity::None => 25,
            });
            let credentials = match (m.smtp_username, m.smtp_password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    err(
                        "mail.smtp_username",
                        "give both smtp_username and smtp_password, or neither".into(),
                    );
                    None
                }
            };
            crate::mail::MailTransport::Smtp {
                host,
                port,
                security,
                credentials,
                timeout: duration("mail.smtp_timeout", m.smtp_timeout, "10s"),
            }
        }
        other => {
            err(
                "mail.transport",
                format!("`{other}` must be `file` or `smtp`"),
            );
            crate::mail::MailTransport::File(PathBuf::new())
        }
    };
    let mail_from = m
        .from
        .unwrap_or_else(|| "guestgate <no-reply@localhost>".into());

    let tls = match (raw.tls.cert_file, raw.tls.key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let (cert_file, key_file) = (resolve(&c), resolve(&k));
            for (key, f) in [("tls.cert_file", &cert_file), ("tls.key_file", &key_file)] {
                if !f.is_file() {
                    err(key, format!("{} does not exist", f.display()));
                }
            }
            Some(TlsConfig {
                cert_file,
                key_file,
                http2: raw.tls.http2.unwrap_or(true),
            })
        }
        _ => {
            err(
                "tls.cert_file",
                "give both tls.cert_file and tls.key_file, or neither".into(),
            );
            None
        }
    };

    let config = Config {
        file: at.src.path().to_path_buf(),
        mode,
        listen,
        threads,
        upstream: UpstreamConfig {
            address: upstream_address,
            host: upstream_host,
            chunked_request_bodies: raw.upstream.chunked_request_bodies.unwrap_or(true),
            tls: raw.upstream.tls.unwrap_or(false),
            sni: raw.upstream.sni.unwrap_or_default(),
            connect_timeout,
            read_timeout,
        },
        policies_dir: resolve(raw.policies.dir.as_deref().unwrap_or("policies")),
        session: SessionConfig {
            cookie_name,
            key_file: resolve(raw.session.key_file.as_deref().unwrap_or("session.key")),
            previous_key_files: raw
                .session
                .previous_key_files
                .unwrap_or_default()
                .iter()
                .map(|p| resolve(p))
                .collect(),
            issuer: raw.session.issuer.unwrap_or_else(|| "guestgate".into()),
            audience: raw.session.audience.unwrap_or_else(|| "guestgate".into()),
            secure_cookie: raw.session.secure_cookie.unwrap_or(true),
            max_lifetime,
        },
        max_target_length,
        max_content_length,
        forward_bodiless_method_bodies: raw.limits.forward_bodiless_method_bodies.unwrap_or(false),
        trusted_proxies: crate::client_addr::TrustedProxies(trusted),
        strip_headers,
        audit: AuditConfig {
            path: audit_path,
            flush_interval,
            include_pass_through: raw.audit.include_pass_through.unwrap_or(true),
        },
        log: LogConfig {
            json,
            level: raw.log.level.unwrap_or_else(|| "info".into()),
        },
        admin,
        api_keys,
        admin_max_body,
        store,
        guest: GuestConfig {
            prefix,
            public_url,
            landing,
            code_lifetime,
            default_share_lifetime,
            max_share_lifetime,
            resend_interval,
            sends_per_hour: g.sends_per_hour.unwrap_or(5),
            verify_per_ip_per_minute: g.verify_per_ip_per_minute.unwrap_or(20),
            public_hosts,
            same_site,
        },
        mail_from,
        mail,
        tls,
    };
    let errors = errors.into_inner();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(SourceErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("guestgate.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    const MIN: &str = "[upstream]\naddress = \"127.0.0.1:3000\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_relative_paths() {
        let (d, p) = write(MIN);
        let c = Config::load_with_env(&p, env(&[])).unwrap();
        assert_eq!(c.mode, Mode::Mixed);
        assert_eq!(c.policies_dir, d.path().join("policies"));
        assert_eq!(c.session.wire_cookie_name(), "__Host-guestgate_session");
        assert_eq!(c.max_target_length, 4096);
        assert_eq!(c.guest.public_hosts, ["0.0.0.0:8080"]);
        assert_eq!(c.upstream.host, "0.0.0.0:8080");
        assert!(!c.forward_bodiless_method_bodies);
    }

    #[test]
    fn public_hosts_take_every_spelling_of_the_default_port() {
        let (_d, p) = write(&format!(
            "{MIN}[guest]\npublic_url = \"http://Cases.Example.com\"\npublic_hosts = [\"guests.example.com:80\", \"alt.example.com:8443\", \"[::1]\"]\n"
        ));
        let c = Config::load_with_env(&p, env(&[])).unwrap();
        assert_eq!(
            c.guest.public_hosts,
            [
                "cases.example.com",
                "cases.example.com:80",
                "guests.example.com",
                "guests.example.com:80",
                "alt.example.com:8443",
                "[::1]",
                "[::1]:80"
            ]
        );
        assert_eq!(c.upstream.host, "Cases.Example.com");
        let (_d, p) = write(&format!(
            "{MIN}host = \"a b\"\n[guest]\npublic_hosts = [\"x/y\"]\n[listen]\ntrusted_proxies = [\"10.0.0.0/40\"]\n"
        ));
        let keys: Vec<_> = Config::load_with_env(&p, env(&[]))
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.key.unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "listen.trusted_proxies[0]",
                "guest.public_hosts[0]",
                "upstream.host"
            ]
        );
    }

    #[test]
    fn env_overrides_win_and_are_typed() {
        let (_d, p) = write(MIN);
        let c = Config::load_with_env(
            &p,
            env(&[
                ("GUESTGATE_MODE", "guest-only"),
                ("GUESTGATE_UPSTREAM__ADDRESS", "10.0.0.1:80"),
                ("GUESTGATE_LIMITS__MAX_TARGET_LENGTH", "1024"),
                ("GUESTGATE_SESSION__SECURE_COOKIE", "false"),
                ("GUESTGATE_CONFIG", "ignored: names the file, not a key"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.mode, Mode::GuestOnly);
        assert_eq!(c.upstream.address, "10.0.0.1:80");
        assert_eq!(c.max_target_length, 1024);
        assert!(!c.session.secure_cookie);
    }

    #[test]
    fn file_errors_name_file_line_and_key() {
        let (_d, p) = write("[upstream]\naddress = \"127.0.0.1:3000\"\nadress = \"x\"\n");
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        assert_eq!(e[0].line, Some(3), "{}", e[0]);
        assert!(e[0].to_string().contains("guestgate.toml:3"), "{}", e[0]);
        assert!(e[0].message.contains("adress"), "{}", e[0]);

        let (_d, p) = write("mode = \"open\"\n[upstream]\naddress = \"127.0.0.1:3000\"\n[limits]\nmax_target_length = 1\n");
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[0].key.as_deref()), (Some(1), Some("mode")));
        assert_eq!(
            (e[1].line, e[1].key.as_deref()),
            (Some(5), Some("limits.max_target_length"))
        );

        let (_d, p) = write("[upstream]\naddress = 3000\n");
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        assert_eq!(
            (e[0].line, e[0].key.as_deref()),
            (Some(2), Some("upstream.address")),
            "{}",
            e[0]
        );
    }

    #[test]
    fn redis_topologies_and_their_errors() {
        use crate::store::RedisEndpoint;
        let store = |lines: &str| format!("{MIN}[store]\nbackend = \"redis\"\n{lines}");
        let redis = |c: Config| match c.store {
            StoreConfig::Redis(r) => r,
            StoreConfig::Embedded(_) => panic!("not redis"),
        };
        let (_d, p) = write(&store(
            "topology = \"cluster\"\nnodes = [\"redis://10.0.0.1:7000\", \"rediss://10.0.0.2:7000\"]\n",
        ));
        let c = redis(Config::load_with_env(&p, env(&[])).unwrap());
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Cluster {
                nodes: vec![
                    "redis://10.0.0.1:7000".into(),
                    "rediss://10.0.0.2:7000".into()
                ]
            }
        );
        let (d, p) = write(&store(
            "topology = \"sentinel\"\nnodes = [\"redis://s1:26379\"]\nsentinel_service = \"gg\"\nurl = \"rediss://:pw@gg/1\"\nca_file = \"ca.pem\"\n",
        ));
        let c = redis(Config::load_with_env(&p, env(&[])).unwrap());
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Sentinel {
                sentinels: vec!["redis://s1:26379".into()],
                service: "gg".into(),
                primary_url: Some("rediss://:pw@gg/1".into()),
            }
        );
        assert_eq!(c.ca_file, Some(d.path().join("ca.pem")));
        // the same from the environment, as a container would set it
        let (_d, p) = write(MIN);
        let c = redis(
            Config::load_with_env(
                &p,
                env(&[
                    ("GUESTGATE_STORE__BACKEND", "redis"),
                    ("GUESTGATE_STORE__TOPOLOGY", "cluster"),
                    ("GUESTGATE_STORE__NODES", "[\"redis://a:7000\"]"),
                ]),
            )
            .unwrap(),
        );
        assert!(matches!(c.endpoint, RedisEndpoint::Cluster { .. }));

        let errors = |lines: &str| {
            let (_d, p) = write(&store(lines));
            Config::load_with_env(&p, env(&[]))
                .map(|_| ())
                .expect_err("must be refused")
                .0
                .into_iter()
                .map(|e| (e.line, e.key.unwrap_or_default(), e.message))
                .collect::<Vec<_>>()
        };
        let e = errors("topology = \"cluster\"\n");
        assert_eq!((e[0].0, e[0].1.as_str()), (None, "store.nodes"), "{e:?}");
        let e = errors("topology = \"cluster\"\nnodes = [\"redis://a:1\", \"http://:pw@b:2\"]\n");
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(6), "store.nodes[1]"),
            "{e:?}"
        );
        assert!(
            !e[0].2.contains(":pw@"),
            "passwords stay out of errors: {e:?}"
        );
        let e = errors("topology = \"sentinel\"\nnodes = [\"redis://s:26379\"]\n");
        assert_eq!(e[0].1, "store.sentinel_service", "{e:?}");
        let e = errors("nodes = [\"redis://s:26379\"]\n");
        assert_eq!((e[0].0, e[0].1.as_str()), (Some(5), "store.nodes"), "{e:?}");
        let e = errors("topology = \"ring\"\n");
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(5), "store.topology"),
            "{e:?}"
        );
        let e = errors("url = \"http://:hunter2@x\"\n");
        assert_eq!(e[0].1, "store.url", "{e:?}");
        assert!(!e[0].2.contains("hunter2"), "{e:?}");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let (_d, p) = write(MIN);
        let e = Config::load_with_env(&p, env(&[("GUESTGATE_UPSTREAM__ADRESS", "x:1")]))
            .unwrap_err()
            .0;
        assert!(
            e[0].origin.contains("GUESTGATE_UPSTREAM__ADRESS"),
            "{}",
            e[0]
        );
        let e = Config::load_with_env(&p, env(&[("GUESTGATE_MODE", "open")]))
            .unwrap_err()
            .0;
        assert!(e[0].origin.contains("GUESTGATE_MODE"), "{}", e[0]);
        assert_eq!(e[0].key.as_deref(), Some("mode"));
    }
}

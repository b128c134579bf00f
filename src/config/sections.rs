//! One validation function per section of `guestgate.toml`: each takes its raw section
//! (and what it needs from sections validated before it), reports every problem to the
//! shared [`Check`] with its key, and returns the settings type its owner module defines.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::HeaderName;

use super::check::Check;
use super::raw::{
    Backend, LogFormat, RawAdmin, RawAssertion, RawAudit, RawGuest, RawIdentity, RawLimits,
    RawListen, RawLog, RawMail, RawSession, RawStore, RawTls, RawUpstream, Topology, Transport,
};
use super::LogConfig;
use crate::admin::api::ApiKey;
use crate::assertion::AssertionConfig;
use crate::audit::AuditConfig;
use crate::client_addr::{Cidr, TrustedProxies};
use crate::mail::{MailTransport, SmtpSecurity};
use crate::proxy::UpstreamConfig;
use crate::session::{SameSite, SessionConfig};
use crate::shares::GuestConfig;
use crate::store::{redact, RedisConfig, RedisEndpoint, StoreConfig};
use crate::tls::TlsConfig;

/// `[listen]`: address, worker threads, trusted proxies.
pub fn listen(c: &mut Check<'_>, raw: RawListen) -> (SocketAddr, usize, TrustedProxies) {
    let address = c.addr("listen.address", raw.address, "0.0.0.0:8080");
    let threads = raw.threads.unwrap_or(2);
    if threads == 0 || threads > 256 {
        c.err("listen.threads", "threads must be between 1 and 256");
    }
    let mut trusted = Vec::new();
    for (i, block) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        match block.parse::<Cidr>() {
            Ok(b) => trusted.push(b),
            Err(m) => c.err(&format!("listen.trusted_proxies[{i}]"), m),
        }
    }
    (address, threads, TrustedProxies(trusted))
}

/// `[tls]`: both files or neither.
pub fn tls(c: &mut Check<'_>, raw: RawTls) -> Option<TlsConfig> {
    match (raw.cert_file, raw.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert_file, key_file) = (c.resolve(&cert), c.resolve(&key));
            for (k, f) in [("tls.cert_file", &cert_file), ("tls.key_file", &key_file)] {
                if !f.is_file() {
                    c.err(k, format!("{} does not exist", f.display()));
                }
            }
            Some(TlsConfig {
                cert_file,
                key_file,
                http2: raw.http2.unwrap_or(true),
            })
        }
        _ => {
            c.err(
                "tls.cert_file",
                "give both tls.cert_file and tls.key_file, or neither",
            );
            None
        }
    }
}

/// `[guest]`: guestgate's pages, the public URL and hosts, share and code lifetimes.
pub fn guest(c: &mut Check<'_>, g: RawGuest, listen: SocketAddr, tls: bool) -> GuestConfig {
    let prefix = g.prefix.unwrap_or_else(|| "/_guestgate".into());
    if !prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.len() < 2
        || prefix.contains(['?', '#', '%', ';', '\\'])
    {
        c.err(
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
        c.err(
            "guest.public_url",
            format!("`{public_url}` must start with https:// (or http:// for local use)"),
        );
    }
    let default_port = if tls { 443 } else { 80 };
    let mut public_hosts = Vec::new();
    let hosts =
        std::iter::once(authority_of(&public_url)).chain(g.public_hosts.unwrap_or_default());
    for (i, h) in hosts.enumerate() {
        let h = h.to_ascii_lowercase();
        if !valid_authority(&h) {
            let key = match i {
                0 => "guest.public_url".to_string(),
                n => format!("guest.public_hosts[{}]", n - 1),
            };
            c.err(
                &key,
                format!("`{h}` is not a host name with an optional port"),
            );
            continue;
        }
        push_host_forms(&mut public_hosts, &h, default_port);
    }
    let landing = g
        .landing
        .unwrap_or_else(|| "/cases/{case}/versions/{version}".into());
    if !landing.starts_with('/') {
        c.err("guest.landing", "the landing path must start with `/`");
    }
    GuestConfig {
        prefix,
        landing,
        code_lifetime: c.duration("guest.code_lifetime", g.code_lifetime, "10m"),
        default_share_lifetime: c.duration(
            "guest.default_share_lifetime",
            g.default_share_lifetime,
            "7d",
        ),
        max_share_lifetime: c.duration("guest.max_share_lifetime", g.max_share_lifetime, "90d"),
        resend_interval: c.duration("guest.resend_interval", g.resend_interval, "60s"),
        sends_per_hour: g.sends_per_hour.unwrap_or(5),
        verify_per_ip_per_minute: g.verify_per_ip_per_minute.unwrap_or(20),
        same_site: g.same_site.unwrap_or(SameSite::Lax),
        share_with: g.share_with.unwrap_or(crate::shares::ShareWith::Anyone),
        public_url,
        public_hosts,
    }
}

/// `[upstream]`: the app's address, the `Host` guests reach it with, timeouts.
pub fn upstream(c: &mut Check<'_>, raw: RawUpstream, public_url: &str) -> UpstreamConfig {
    let address = raw.address.unwrap_or_default();
    if address.is_empty() {
        c.err(
            "upstream.address",
            "the app's address is required (host:port)",
        );
    } else if !address.contains(':') {
        c.err(
            "upstream.address",
            format!("`{address}` needs a port (host:port)"),
        );
    }
    let host = raw.host.unwrap_or_else(|| authority_of(public_url));
    if !valid_authority(&host) {
        c.err(
            "upstream.host",
            format!("`{host}` is not a host name with an optional port"),
        );
    }
    UpstreamConfig {
        address,
        host,
        chunked_request_bodies: raw.chunked_request_bodies.unwrap_or(true),
        tls: raw.tls.unwrap_or(false),
        sni: raw.sni.unwrap_or_default(),
        connect_timeout: c.duration("upstream.connect_timeout", raw.connect_timeout, "2s"),
        read_timeout: c.duration("upstream.read_timeout", raw.read_timeout, "60s"),
    }
}

/// `[session]`: the cookie and the token keys.
pub fn session(c: &mut Check<'_>, raw: RawSession) -> SessionConfig {
    let cookie_name = raw
        .cookie_name
        .unwrap_or_else(|| "guestgate_session".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || cookie_name.starts_with("__")
    {
        c.err(
            "session.cookie_name",
            "cookie names are ASCII letters, digits, `_` or `-`; the `__Host-` prefix is added automatically",
        );
    }
    SessionConfig {
        cookie_name,
        key_file: c.resolve(raw.key_file.as_deref().unwrap_or("session.key")),
        previous_key_files: c.resolve_all(raw.previous_key_files),
        issuer: raw.issuer.unwrap_or_else(|| "guestgate".into()),
        audience: raw.audience.unwrap_or_else(|| "guestgate".into()),
        secure_cookie: raw.secure_cookie.unwrap_or(true),
        max_lifetime: c.duration("session.max_lifetime", raw.max_lifetime, "8h"),
        verified_cache: raw.verified_cache.unwrap_or(10_000),
    }
}

/// The validated `[limits]`.
pub struct Limits {
    /// Longest request target.
    pub max_target_length: usize,
    /// Largest `Content-Length`.
    pub max_content_length: u64,
    /// Forward bodies on bodiless methods for pass-through requests.
    pub forward_bodiless_method_bodies: bool,
}

/// `[limits]`.
pub fn limits(c: &mut Check<'_>, raw: RawLimits) -> Limits {
    let max_target_length = raw.max_target_length.unwrap_or(4096);
    if !(64..=65536).contains(&max_target_length) {
        c.err("limits.max_target_length", "must be between 64 and 65536");
    }
    let max_content_length = raw.max_content_length.unwrap_or(1 << 30);
    if max_content_length == 0 {
        c.err("limits.max_content_length", "must be at least 1 (bytes)");
    }
    Limits {
        max_target_length,
        max_content_length,
        forward_bodiless_method_bodies: raw.forward_bodiless_method_bodies.unwrap_or(false),
    }
}

/// `[assertion]`: off until an audience names the app; the header is guestgate's either
/// way (incoming copies are always stripped).
pub fn assertion(c: &mut Check<'_>, raw: RawAssertion) -> AssertionConfig {
    let name = raw.header.unwrap_or_else(|| "X-Guestgate-Assertion".into());
    let header = match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) if !crate::header_names::is_managed(h.as_str()) => h,
        _ => {
            c.err(
                "assertion.header",
                format!("`{name}` is not a header name guestgate can own"),
            );
            HeaderName::from_static("x-guestgate-assertion")
        }
    };
    if raw.audience.as_deref().is_some_and(str::is_empty) {
        c.err(
            "assertion.audience",
            "name the app (the `aud` it checks), or leave the key out to turn assertions off",
        );
    }
    let lifetime = c.duration("assertion.lifetime", raw.lifetime, "30s");
    if lifetime > crate::assertion::MAX_LIFETIME {
        c.err(
            "assertion.lifetime",
            "an assertion proves one request, now: at most 60s",
        );
    }
    AssertionConfig {
        header,
        audience: raw.audience,
        issuer: raw.issuer.unwrap_or_else(|| "guestgate".into()),
        key_file: c.resolve(raw.key_file.as_deref().unwrap_or("assertion.key")),
        previous_key_files: c.resolve_all(raw.previous_key_files),
        lifetime,
        jwks_under_prefix: raw.jwks_under_prefix.unwrap_or(false),
    }
}

/// `[identity]`: more headers guestgate owns.
pub fn identity(c: &mut Check<'_>, raw: RawIdentity) -> Vec<HeaderName> {
    let mut names = Vec::new();
    for (i, h) in raw.strip_headers.unwrap_or_default().iter().enumerate() {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => names.push(n),
            Err(_) => c.err(
                &format!("identity.strip_headers[{i}]"),
                format!("`{h}` is not a header name"),
            ),
        }
    }
    names
}

/// `[audit]`.
pub fn audit(c: &mut Check<'_>, raw: RawAudit) -> AuditConfig {
    AuditConfig {
        path: match raw.path.as_deref().unwrap_or("-") {
            "-" => None,
            p => Some(c.resolve(p)),
        },
        flush_interval: c.duration("audit.flush_interval", raw.flush_interval, "200ms"),
        include_pass_through: raw.include_pass_through.unwrap_or(true),
        key_file: c.resolve(raw.key_file.as_deref().unwrap_or("audit.key")),
        previous_key_files: c.resolve_all(raw.previous_key_files),
        checkpoint_interval: c.duration(
            "audit.checkpoint_interval",
            raw.checkpoint_interval,
            "60s",
        ),
    }
}

/// `[log]`.
pub fn log(raw: RawLog) -> LogConfig {
    LogConfig {
        json: raw.format.unwrap_or(LogFormat::Json) == LogFormat::Json,
        level: raw.level.unwrap_or_else(|| "info".into()),
    }
}

/// `[admin]`: listener, API keys (SHA-256 only), body limit.
pub fn admin(c: &mut Check<'_>, raw: RawAdmin) -> (SocketAddr, Vec<ApiKey>, usize) {
    let address = c.addr("admin.address", raw.address, "127.0.0.1:9190");
    let mut keys = Vec::new();
    for (i, k) in raw.keys.unwrap_or_default().into_iter().enumerate() {
        let key = format!("admin.keys[{i}]");
        let mut sha = [0u8; 32];
        match hex::decode(k.sha256.trim()) {
            Ok(b) if b.len() == 32 => sha.copy_from_slice(&b),
            _ => {
                c.err(
                    &format!("{key}.sha256"),
                    "must be the 64-hex-digit SHA-256 of the key (`guestgate admin new-key` prints one)",
                );
                continue;
            }
        }
        if k.name.is_empty() {
            c.err(
                &format!("{key}.name"),
                "an API key needs a name (it is the actor in audit events)",
            );
        }
        if k.name.contains('/') {
            c.err(
                &format!("{key}.name"),
                "a key name may not hold `/` (it separates the key from the staff member it acts for)",
            );
        }
        // The name is who owns a share: two keys with one name would see each other's.
        if keys.iter().any(|other: &ApiKey| other.name == k.name) {
            c.err(
                &format!("{key}.name"),
                format!(
                    "another key is already named `{}`: names own shares, so each key needs its own",
                    k.name
                ),
            );
        }
        let profiles = k.profiles.unwrap_or_else(|| vec!["view-only".into()]);
        if profiles.is_empty() {
            c.err(
                &format!("{key}.profiles"),
                "name at least one profile this key may share with",
            );
        }
        keys.push(ApiKey {
            name: k.name,
            role: k.role,
            sha256: sha,
            profiles,
            acts_for_staff: k.acts_for_staff.unwrap_or(false),
        });
    }
    (address, keys, raw.max_body_bytes.unwrap_or(16 * 1024))
}

/// `[store]`: the embedded file, or Redis and its topology.
pub fn store(c: &mut Check<'_>, st: RawStore) -> StoreConfig {
    match st.backend.unwrap_or(Backend::Embedded) {
        Backend::Embedded => {
            StoreConfig::Embedded(c.resolve(st.path.as_deref().unwrap_or("guestgate.redb")))
        }
        Backend::Redis => {
            let endpoint = redis_endpoint(c, st.topology, st.url, st.nodes, st.sentinel_service);
            let prefix = st.key_prefix.unwrap_or_else(|| "{guestgate}:".into());
            if !(prefix.starts_with('{') && prefix.contains('}')) {
                c.err(
                    "store.key_prefix",
                    "the prefix must start with a hash tag like `{guestgate}:` so every key lands in one Redis Cluster slot",
                );
            }
            StoreConfig::Redis(RedisConfig {
                endpoint,
                ca_file: st.ca_file.as_deref().map(|p| c.resolve(p)),
                prefix,
                timeout: c.duration("store.timeout", st.timeout, "1s"),
                staleness_bound: c.duration("store.staleness_bound", st.staleness_bound, "3s"),
            })
        }
    }
}

/// Which Redis: one URL, a Cluster's seed nodes, or Sentinels and the name they watch.
fn redis_endpoint(
    c: &mut Check<'_>,
    topology: Option<Topology>,
    url: Option<String>,
    nodes: Option<Vec<String>>,
    service: Option<String>,
) -> RedisEndpoint {
    let is_url = |u: &str, unix: bool| {
        u.starts_with("redis://")
            || u.starts_with("rediss://")
            || (unix && (u.starts_with("redis+unix://") || u.starts_with("unix://")))
    };
    let nodes = nodes.unwrap_or_default();
    let check_nodes = |c: &mut Check<'_>, what: &str| {
        if nodes.is_empty() {
            c.err(
                "store.nodes",
                format!("topology `{what}` needs `nodes`: a list of redis:// or rediss:// URLs"),
            );
        }
        for (i, n) in nodes.iter().enumerate() {
            if !is_url(n, false) {
                c.err(
                    &format!("store.nodes[{i}]"),
                    format!("`{}` is not a redis:// or rediss:// URL", redact(n)),
                );
            }
        }
    };
    match topology.unwrap_or(Topology::Single) {
        Topology::Single => {
            if !nodes.is_empty() {
                c.err(
                    "store.nodes",
                    "`nodes` is for topology `cluster` or `sentinel`; a single server is `url`",
                );
            }
            if service.is_some() {
                c.err(
                    "store.sentinel_service",
                    "`sentinel_service` needs topology = \"sentinel\"",
                );
            }
            let url = url.unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
            if !is_url(&url, true) {
                c.err(
                    "store.url",
                    format!(
                        "`{}` is not a redis://, rediss:// or redis+unix:// URL",
                        redact(&url)
                    ),
                );
            }
            RedisEndpoint::Single { url }
        }
        Topology::Cluster => {
            check_nodes(c, "cluster");
            if url.is_some() {
                c.err(
                    "store.url",
                    "with topology `cluster`, list the seed nodes in `nodes` instead of `url`",
                );
            }
            RedisEndpoint::Cluster { nodes }
        }
        Topology::Sentinel => {
            check_nodes(c, "sentinel");
            let service = service.unwrap_or_default();
            if service.is_empty() {
                c.err(
                    "store.sentinel_service",
                    "topology `sentinel` needs the name the sentinels monitor the primary under",
                );
            }
            if let Some(u) = &url {
                if !is_url(u, false) {
                    c.err(
                        "store.url",
                        format!(
                            "`{}` is not a redis:// or rediss:// URL (with sentinels it gives the primary's credentials, database and TLS)",
                            redact(u)
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
    }
}

/// `[mail]`: the sender, and the outbox directory or the SMTP server.
pub fn mail(c: &mut Check<'_>, m: RawMail) -> (String, MailTransport) {
    let transport = match m.transport.unwrap_or(Transport::File) {
        Transport::File => MailTransport::File(c.resolve(m.outbox.as_deref().unwrap_or("outbox"))),
        Transport::Smtp => {
            let host = m.smtp_host.unwrap_or_default();
            if host.is_empty() {
                c.err("mail.smtp_host", "SMTP transport needs a host");
            }
            let security = m.smtp_security.unwrap_or(SmtpSecurity::StartTls);
            let port = m.smtp_port.unwrap_or(match security {
                SmtpSecurity::Tls => 465,
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::None => 25,
            });
            let credentials = match (m.smtp_username, m.smtp_password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    c.err(
                        "mail.smtp_username",
                        "give both smtp_username and smtp_password, or neither",
                    );
                    None
                }
            };
            MailTransport::Smtp {
                host,
                port,
                security,
                credentials,
                timeout: c.duration("mail.smtp_timeout", m.smtp_timeout, "10s"),
            }
        }
    };
    let from = m
        .from
        .unwrap_or_else(|| "guestgate <no-reply@localhost>".into());
    (from, transport)
}

/// `[policies]`: the directory of profile files, which must exist (named with the path
/// it resolved to, since a relative one is relative to the config file, not the shell).
pub fn policies_dir(c: &mut Check<'_>, dir: Option<String>) -> PathBuf {
    let path = c.resolve(dir.as_deref().unwrap_or("policies"));
    if !path.is_dir() {
        let state = if path.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        c.err(
            "policies.dir",
            format!(
                "{} {state} (a relative policies.dir is resolved against the config file's directory)",
                path.display()
            ),
        );
    }
    path
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

//! Settings of different sections weighed against each other. Contradictions are refused
//! at load, each at the key to change, so a config that would start and then fail every
//! share creation (or loop requests back into itself) never starts. Combinations that work
//! but are probably a mistake become warnings that `serve --check` prints and `serve` logs.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::check::Check;
use super::Config;
use crate::decision::Mode;
use crate::store::StoreConfig;

/// Records every contradiction of a validated config.
pub fn contradictions(c: &mut Check<'_>, cfg: &Config) {
    let g = &cfg.guest;
    if g.default_share_lifetime > g.max_share_lifetime {
        c.err(
            "guest.default_share_lifetime",
            format!(
                "{} is longer than guest.max_share_lifetime ({}): every share created without \
                 an explicit expiry would be refused",
                human(g.default_share_lifetime),
                human(g.max_share_lifetime)
            ),
        );
    }
    if collide(cfg.listen, cfg.admin) {
        c.err(
            "admin.address",
            format!(
                "{} is the port guests use (listen.address {}); the admin API needs its own",
                cfg.admin, cfg.listen
            ),
        );
    }
    if let Some(up) = loopback_target(&cfg.upstream.address) {
        for (what, own) in [("listen.address", cfg.listen), ("admin.address", cfg.admin)] {
            if collide(own, up) {
                c.err(
                    "upstream.address",
                    format!(
                        "`{}` is guestgate's own {what} ({own}): every request would come back \
                         to guestgate",
                        cfg.upstream.address
                    ),
                );
            }
        }
    }
    same_file(c, cfg);
    let prefix = &cfg.guest.prefix;
    if under(&cfg.guest.landing, prefix) {
        c.err(
            "guest.prefix",
            format!(
                "`{prefix}` holds the landing page `{}`: guests would land on guestgate's own \
                 404 after entering their code",
                cfg.guest.landing
            ),
        );
    }
    if let StoreConfig::Redis(r) = &cfg.store {
        if r.timeout >= r.staleness_bound {
            c.err(
                "store.timeout",
                format!(
                    "{} is not shorter than store.staleness_bound ({}): one slow freshness check \
                     would mark the share index stale and refuse every guest while Redis is \
                     merely slow",
                    human(r.timeout),
                    human(r.staleness_bound)
                ),
            );
        }
    }
}

/// Whether a path is guestgate's own, under `prefix`.
pub fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Files guestgate writes or reads secrets from must be distinct: the audit stream
/// appended to the session key would break the next start and ship the key to whoever
/// reads the audit.
fn same_file(c: &mut Check<'_>, cfg: &Config) {
    let mut files: Vec<(String, &Path)> = vec![("session.key_file".into(), &cfg.session.key_file)];
    for (i, p) in cfg.session.previous_key_files.iter().enumerate() {
        files.push((format!("session.previous_key_files[{i}]"), p));
    }
    if cfg.assertion.audience.is_some() {
        files.push(("assertion.key_file".into(), &cfg.assertion.key_file));
        for (i, p) in cfg.assertion.previous_key_files.iter().enumerate() {
            files.push((format!("assertion.previous_key_files[{i}]"), p));
        }
    }
    files.push(("audit.key_file".into(), &cfg.audit.key_file));
    for (i, p) in cfg.audit.previous_key_files.iter().enumerate() {
        files.push((format!("audit.previous_key_files[{i}]"), p));
    }
    if let StoreConfig::Embedded(p) = &cfg.store {
        files.push(("store.path".into(), p));
    }
    if let Some(p) = &cfg.audit.path {
        files.push(("audit.path".into(), p));
    }
    if let crate::mail::MailTransport::File(p) = &cfg.mail {
        files.push(("mail.outbox".into(), p));
    }
    let norm = |p: &Path| -> PathBuf { p.components().collect() };
    for (i, (key, path)) in files.iter().enumerate() {
        if let Some((first, _)) = files[..i].iter().find(|(_, q)| norm(q) == norm(path)) {
            c.err(
                key,
                format!(
                    "{} is also {first}: each needs its own file",
                    path.display()
                ),
            );
        }
    }
}

/// Combinations that start but probably do not do what was meant.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if cfg.mode == Mode::Mixed {
        w.push(
            "mode = \"mixed\": requests without a guest cookie reach the app as its own users; \
             this protects nothing unless the app authenticates its own users \
             (use mode = \"guest-only\" on a host dedicated to guests)"
                .to_string(),
        );
    }
    let url = &cfg.guest.public_url;
    let plain = url.starts_with("http://");
    if cfg.tls.is_some() && plain {
        w.push(format!(
            "tls is configured but guest.public_url is {url}: links in invitations use http://, \
             which the TLS listener does not answer"
        ));
    }
    if cfg.session.secure_cookie && plain && !local_url(url) {
        w.push(format!(
            "session.secure_cookie = true but guest.public_url is {url}: browsers drop Secure \
             cookies over http:// (except on localhost), so guests could not sign in; \
             serve guests over https"
        ));
    }
    if !cfg.session.secure_cookie && !plain {
        w.push(
            "session.secure_cookie = false although guests use https: the session cookie loses \
             Secure and the __Host- prefix, so a sibling site or plain-http request could \
             overwrite or read it"
                .to_string(),
        );
    }
    if !cfg.admin.ip().is_loopback() {
        w.push(format!(
            "admin.address {} is not loopback: the admin API (shares, revocation, metrics) \
             speaks plain HTTP; keep it on a private network",
            cfg.admin
        ));
    }
    if cfg.api_keys.is_empty() {
        w.push(
            "no [[admin.keys]]: nobody can create or revoke shares through the admin API \
             (`guestgate admin new-key` makes one)"
                .to_string(),
        );
    }
    w
}

/// Whether two listening addresses would claim the same port.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The upstream as a socket address when it is this machine (loopback, `localhost` or an
/// unspecified address); other hosts cannot be guestgate's own listener.
fn loopback_target(address: &str) -> Option<SocketAddr> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    host.eq_ignore_ascii_case("localhost")
        .then_some(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port))
}

/// Whether browsers treat the URL's host as a secure context over http.
fn local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A duration as it is written in the config (`90d`, `8h`, `1500ms`), not in months.
fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_collide_on_the_same_address_or_a_wildcard() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(collide(a("0.0.0.0:8080"), a("127.0.0.1:8080")));
        assert!(collide(a("127.0.0.1:8080"), a("127.0.0.1:8080")));
        assert!(!collide(a("127.0.0.1:8080"), a("10.0.0.1:8080")));
        assert!(!collide(a("0.0.0.0:8080"), a("127.0.0.1:8081")));
        assert_eq!(loopback_target("localhost:80"), Some(a("127.0.0.1:80")));
        assert_eq!(loopback_target("app.internal:80"), None);
    }

    #[test]
    fn local_urls_are_secure_contexts() {
        for u in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://[::1]:80/x",
            "http://a.localhost",
        ] {
            assert!(local_url(u), "{u}");
        }
        for u in ["http://0.0.0.0:8080", "http://cases.example.com"] {
            assert!(!local_url(u), "{u}");
        }
    }
}

//! Configuration: `guestgate.toml` plus `GUESTGATE_SECTION__KEY` environment overrides,
//! validated into [`Config`]. Only valid config leaves this module; every error names
//! the file and line (or the environment variable) and the key.

mod check;
mod cross;
mod env;
mod raw;
mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use http::HeaderName;

use crate::admin::api::ApiKey;
use crate::assertion::AssertionConfig;
use crate::audit::AuditConfig;
use crate::decision::Mode;
use crate::proxy::UpstreamConfig;
use crate::session::SessionConfig;
use crate::shares::GuestConfig;
use crate::store::StoreConfig;
use crate::tls::TlsConfig;
use crate::toml_source::{Source, SourceError, SourceErrors};
use check::Check;
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
    /// The signed scope assertion for the app.
    pub assertion: AssertionConfig,
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
        validate(raw, &src, &overrides, base)
    }

    /// The settings that shape the proxy's decisions, as the live gate and trials use them.
    pub fn decision_settings(&self) -> crate::decision::Settings {
        crate::decision::Settings {
            mode: self.mode,
            max_target_length: self.max_target_length,
            max_content_length: self.max_content_length,
            forward_bodiless_bodies: self.forward_bodiless_method_bodies,
            chunked_bodies: self.upstream.chunked_request_bodies,
            public_hosts: self.guest.public_hosts.clone(),
            cookie_name: self.session.cookie_name.clone(),
            wire_cookie_name: self.session.wire_cookie_name(),
        }
    }

    /// Settings that work together but are probably not what was meant.
    pub fn warnings(&self) -> Vec<String> {
        cross::warnings(self)
    }
}

/// Validates every section into the settings types their modules own; all errors at
/// once, each with its key and where it was set.
fn validate(
    raw: RawConfig,
    src: &Source,
    overrides: &[env::Override],
    base: &Path,
) -> Result<Config, SourceErrors> {
    let mut c = Check::new(src, overrides, base);
    let (listen, threads, trusted_proxies) = sections::listen(&mut c, raw.listen);
    let tls = sections::tls(&mut c, raw.tls);
    let guest = sections::guest(&mut c, raw.guest, listen, tls.is_some());
    let upstream = sections::upstream(&mut c, raw.upstream, &guest.public_url);
    let session = sections::session(&mut c, raw.session);
    let limits = sections::limits(&mut c, raw.limits);
    let strip_headers = sections::identity(&mut c, raw.identity);
    let audit = sections::audit(&mut c, raw.audit);
    let (admin, api_keys, admin_max_body) = sections::admin(&mut c, raw.admin);
    let store = sections::store(&mut c, raw.store);
    let (mail_from, mail) = sections::mail(&mut c, raw.mail);
    let policies_dir = sections::policies_dir(&mut c, raw.policies.dir);
    let assertion = sections::assertion(&mut c, raw.assertion);
    let config = Config {
        file: c.file().to_path_buf(),
        mode: raw.mode.unwrap_or(Mode::Mixed),
        listen,
        threads,
        upstream,
        policies_dir,
        session,
        max_target_length: limits.max_target_length,
        max_content_length: limits.max_content_length,
        forward_bodiless_method_bodies: limits.forward_bodiless_method_bodies,
        trusted_proxies,
        strip_headers,
        audit,
        log: sections::log(raw.log),
        admin,
        api_keys,
        admin_max_body,
        store,
        guest,
        mail_from,
        mail,
        tls,
        assertion,
    };
    // Only sections that validated on their own are worth weighing against each other.
    if c.is_clean() {
        cross::contradictions(&mut c, &config);
    }
    let errors = c.into_errors();
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
        std::fs::create_dir(d.path().join("policies")).unwrap();
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
    fn two_keys_with_one_name_are_refused_at_the_second() {
        let key = |n: u8| {
            format!(
                "[[admin.keys]]\nname = \"desk\"\nrole = \"sharer\"\nsha256 = \"{}\"\n",
                format!("{n:x}").repeat(64)
            )
        };
        let (_d, p) = write(&format!("{MIN}{}{}", key(1), key(2)));
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("admin.keys[1].name") && e.contains("already named `desk`"),
            "{e}"
        );
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

        // A value outside an enum is a serde error, located, naming the choices.
        let (_d, p) = write("mode = \"open\"\n[upstream]\naddress = \"127.0.0.1:3000\"\n");
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        assert_eq!((e[0].line, e[0].key.as_deref()), (Some(1), Some("mode")));
        assert!(
            e[0].message.contains("mixed") && e[0].message.contains("guest-only"),
            "{}",
            e[0]
        );
        // Semantic errors of several sections come all at once.
        let (_d, p) = write("[upstream]\naddress = \"127.0.0.1\"\n[limits]\nmax_target_length = 1\n[listen]\nthreads = 0\n");
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        let located: Vec<_> = e
            .iter()
            .map(|e| (e.line, e.key.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            located,
            [
                (Some(6), "listen.threads".to_string()),
                (Some(2), "upstream.address".to_string()),
                (Some(4), "limits.max_target_length".to_string()),
            ]
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

    /// Each contradiction is refused at the key to change; warnings are only warnings.
    #[test]
    fn contradictions_are_refused_at_load() {
        let refused = |text: &str| -> Vec<(Option<usize>, String, String)> {
            let (_d, p) = write(text);
            Config::load_with_env(&p, env(&[]))
                .map(|_| ())
                .expect_err("must be refused")
                .0
                .into_iter()
                .map(|e| (e.line, e.key.unwrap_or_default(), e.message))
                .collect()
        };
        let e = refused(&format!(
            "{MIN}[guest]\ndefault_share_lifetime = \"120d\"\nmax_share_lifetime = \"90d\"\n"
        ));
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(4), "guest.default_share_lifetime"),
            "{e:?}"
        );
        assert!(
            e[0].2
                .contains("120d is longer than guest.max_share_lifetime (90d)"),
            "{e:?}"
        );
        let e = refused(&format!(
            "{MIN}[listen]\naddress = \"0.0.0.0:9000\"\n[admin]\naddress = \"127.0.0.1:9000\"\n"
        ));
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(6), "admin.address"),
            "{e:?}"
        );
        let e = refused("[upstream]\naddress = \"localhost:8080\"\n");
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(2), "upstream.address"),
            "{e:?}"
        );
        assert!(e[0].2.contains("listen.address"), "{e:?}");
        let e = refused(&format!(
            "{MIN}[store]\nbackend = \"redis\"\nurl = \"redis://r:6379\"\ntimeout = \"5s\"\n"
        ));
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(6), "store.timeout"),
            "{e:?}"
        );
        assert!(e[0].2.contains("store.staleness_bound (3s)"), "{e:?}");
        let e = refused(&format!("{MIN}[audit]\npath = \"session.key\"\n"));
        assert_eq!((e[0].0, e[0].1.as_str()), (Some(4), "audit.path"), "{e:?}");
        assert!(e[0].2.contains("is also session.key_file"), "{e:?}");
        let e = refused(&format!(
            "{MIN}[store]\npath = \"./state/s.redb\"\n[session]\nkey_file = \"state/s.redb\"\n"
        ));
        assert_eq!(e[0].1, "store.path", "{e:?}");
        let e = refused(&format!("{MIN}[guest]\nprefix = \"/cases\"\n"));
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(4), "guest.prefix"),
            "{e:?}"
        );
        let e = refused(&format!("{MIN}[policies]\ndir = \"rules\"\n"));
        assert_eq!(
            (e[0].0, e[0].1.as_str()),
            (Some(4), "policies.dir"),
            "{e:?}"
        );
        assert!(e[0].2.contains("rules does not exist"), "{e:?}");
        // the default directory, not set anywhere, is still named with its resolved path
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.toml");
        std::fs::write(&p, MIN).unwrap();
        let e = Config::load_with_env(&p, env(&[])).unwrap_err().0;
        assert_eq!(e[0].key.as_deref(), Some("policies.dir"));
        assert!(
            e[0].message
                .contains(&d.path().join("policies").display().to_string()),
            "{}",
            e[0]
        );

        // Each one, fixed, loads.
        for fixed in [
            format!("{MIN}[guest]\ndefault_share_lifetime = \"90d\"\nmax_share_lifetime = \"90d\"\n"),
            format!("{MIN}[listen]\naddress = \"0.0.0.0:9000\"\n[admin]\naddress = \"127.0.0.1:9001\"\n"),
            "[upstream]\naddress = \"localhost:8081\"\n".to_string(),
            format!("{MIN}[store]\nbackend = \"redis\"\nurl = \"redis://r:6379\"\ntimeout = \"1s\"\n"),
        ] {
            let (_d, p) = write(&fixed);
            Config::load_with_env(&p, env(&[])).unwrap_or_else(|e| panic!("{fixed}: {e}"));
        }
    }

    #[test]
    fn warnings_name_what_will_go_wrong() {
        let warned = |text: &str| {
            let (_d, p) = write(text);
            Config::load_with_env(&p, env(&[]))
                .unwrap()
                .warnings()
                .join("\n")
        };
        let quiet = "mode = \"guest-only\"\n[upstream]\naddress = \"127.0.0.1:3000\"\n[guest]\npublic_url = \"https://cases.example.com\"\n[[admin.keys]]\nname = \"staff\"\nrole = \"admin\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
        assert_eq!(warned(quiet), "");
        let w = warned(MIN);
        for expected in [
            "mode = \"mixed\"",
            "drop Secure cookies",
            "no [[admin.keys]]",
        ] {
            assert!(w.contains(expected), "{expected}: {w}");
        }
        let w = warned(&quiet.replace("https://cases.example.com", "http://localhost:8080"));
        assert_eq!(w, "", "a local http URL is a secure context");
        let w = warned(&format!("{quiet}[session]\nsecure_cookie = false\n"));
        assert!(w.contains("loses Secure"), "{w}");
        let w = warned(&format!("{quiet}[admin]\naddress = \"0.0.0.0:9190\"\n"));
        assert!(w.contains("not loopback"), "{w}");
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

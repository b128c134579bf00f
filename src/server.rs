//! Builds the pingora server from a validated config: loads keys and policies, starts
//! the audit writer, and registers the proxy and admin services. Used by `main` and
//! by anything that needs a real server in-process.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::admin::api::AdminApi;
use crate::admin::{AdminApp, Readiness};
use crate::assertion::AssertionKeys;
use crate::audit::AuditSink;
use crate::config::Config;
use crate::decision::Gate;
use crate::mail::LettreMailer;
use crate::otp::CodeKey;
use crate::policy::PolicySet;
use crate::proxy::stopping::AnswerAccepted;
use crate::proxy::{GuestGateProxy, ProxyParts};
use crate::reload::{on_sighup, LivePolicies};
use crate::session::{load_key, load_or_create_key, SessionKeys};
use crate::shares::Shares;
use crate::store::StoreConfig;
use crate::store::{EmbeddedStore, RedisStore, RedisSync, ShareIndex, Store};
use crate::tls::ReloadableCert;

/// Resolves the app's address once at start (no DNS on the request path).
fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    address
        .to_socket_addrs()
        .with_context(|| format!("upstream.address `{address}` does not resolve"))?
        .next()
        .ok_or_else(|| anyhow!("upstream.address `{address}` resolves to nothing"))
}

/// Everything `serve --check` validates, without binding a port, contacting the store,
/// or creating a file.
pub struct Checked {
    /// Compiled policies.
    pub policies: PolicySet,
    /// Resolved upstream.
    pub upstream: SocketAddr,
    /// What would run, one `(part, description)` per line.
    pub summary: Vec<(&'static str, String)>,
    /// Settings that are valid but worth a second look, and policy lint warnings.
    pub warnings: Vec<String>,
}

/// Loads policies, reads (never creates) keys and certificates, resolves the upstream,
/// and describes what `serve` would run.
pub fn check(config: &Config) -> anyhow::Result<Checked> {
    let policies = PolicySet::load_dir(&config.policies_dir).map_err(|e| anyhow!("{e}"))?;
    let upstream = resolve(&config.upstream.address)?;
    let session = &config.session;
    let key = if session.key_file.exists() {
        load_key(&session.key_file)?;
        format!("key {}", session.key_file.display())
    } else {
        format!(
            "key {} (absent: serve creates it, mode 0600)",
            session.key_file.display()
        )
    };
    for p in &session.previous_key_files {
        load_key(p)?;
    }
    let assertion = match &config.assertion.audience {
        None => "off (no [assertion] audience)".to_string(),
        Some(aud) => {
            let a = &config.assertion;
            let key = if a.key_file.exists() {
                crate::assertion::load(&a.key_file)?;
                a.key_file.display().to_string()
            } else {
                format!(
                    "{} (absent: serve creates it, mode 0600)",
                    a.key_file.display()
                )
            };
            for p in &a.previous_key_files {
                crate::assertion::load(p)?;
            }
            format!(
                "{} for `{aud}`, Ed25519 key {key}, {} previous keys",
                a.header,
                a.previous_key_files.len()
            )
        }
    };
    let audit_key = {
        let a = &config.audit;
        for p in &a.previous_key_files {
            crate::key_file::load_hex("audit key", p)?;
        }
        if a.key_file.exists() {
            crate::key_file::load_hex("audit key", &a.key_file)?;
            a.key_file.display().to_string()
        } else {
            format!(
                "{} (absent: serve creates it, mode 0600)",
                a.key_file.display()
            )
        }
    };
    let listener = match &config.tls {
        Some(tls) => {
            ReloadableCert::load(&tls.cert_file, &tls.key_file)?;
            if tls.http2 {
                "https (HTTP/1.1, HTTP/2)"
            } else {
                "https"
            }
        }
        None => "http",
    };
    let profiles: Vec<String> = policies
        .profiles()
        .map(|p| format!("{} ({} rules)", p.name, p.rules.len()))
        .collect();
    let mut warnings = config.warnings();
    // A rule under guestgate's prefix never applies: guestgate answers those paths itself.
    let prefix = &config.guest.prefix;
    for p in policies.profiles() {
        for r in &p.rules {
            let probe = format!("{prefix}/guest");
            if r.pattern_source.starts_with(&format!("{prefix}/")) || r.regex.is_match(&probe) {
                warnings.push(format!(
                    "{}: rule \"{}\" matches paths under guest.prefix `{prefix}`, which guestgate answers itself: it never applies",
                    p.file, r.name
                ));
            }
        }
    }
    warnings.extend(
        crate::policy::lint::lint(&policies)
            .into_iter()
            .filter(|l| l.level == crate::policy::lint::Level::Warning)
            .map(|l| l.to_string()),
    );
    let summary = vec![
        (
            "listen",
            format!(
                "{} {listener}, {} threads, mode {}; guests use {}",
                config.listen,
                config.threads,
                config.mode.as_str(),
                config.guest.public_url
            ),
        ),
        (
            "admin",
            format!("{}, {} API keys", config.admin, config.api_keys.len()),
        ),
        (
            "upstream",
            format!(
                "{} ({upstream}{}), Host {}",
                config.upstream.address,
                if config.upstream.tls { ", TLS" } else { "" },
                config.upstream.host
            ),
        ),
        ("store", describe_store(&config.store)),
        (
            "session",
            format!(
                "{key}; {} previous keys; cookie {}",
                session.previous_key_files.len(),
                session.wire_cookie_name()
            ),
        ),
        (
            "policies",
            format!("{}: {}", config.policies_dir.display(), profiles.join(", ")),
        ),
        ("assertion", assertion),
        ("mail", config.mail.describe()),
        (
            "audit",
            format!(
                "{}; key {}; checkpoint every {}",
                config
                    .audit
                    .path
                    .as_ref()
                    .map_or("standard output".into(), |p| format!(
                        "{}{}",
                        p.display(),
                        absent(p)
                    )),
                audit_key,
                humantime::format_duration(config.audit.checkpoint_interval)
            ),
        ),
    ];
    Ok(Checked {
        policies,
        upstream,
        summary,
        warnings,
    })
}

/// The store as `serve` would open it; Redis is named, not contacted.
fn describe_store(cfg: &StoreConfig) -> String {
    match cfg {
        StoreConfig::Embedded(p) => format!("embedded {}{}", p.display(), absent(p)),
        StoreConfig::Redis(r) => {
            format!("redis {} (not contacted by --check)", r.endpoint.describe())
        }
    }
}

fn absent(p: &std::path::Path) -> &'static str {
    if p.exists() {
        ""
    } else {
        " (absent: created on start)"
    }
}

/// Opens the configured store and fills the local index before the first request (it is
/// an allow-list). With Redis, a dedicated runtime thread owns the connections and the
/// task that keeps the index in step with every replica.
fn open_store(cfg: &StoreConfig) -> anyhow::Result<(Arc<dyn Store>, Arc<ShareIndex>)> {
    match cfg {
        StoreConfig::Embedded(path) => {
            let store = EmbeddedStore::open(path)
                .with_context(|| format!("cannot open the share store {}", path.display()))?;
            let index = Arc::new(ShareIndex::default());
            let all = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("start-up runtime")?
                .block_on(store.all_shares())
                .context("cannot read the share store")?;
            index.replace_all(&all);
            Ok((Arc::new(store), index))
        }
        StoreConfig::Redis(rc) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("guestgate-redis")
                .enable_all()
                .build()
                .context("redis runtime")?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("guestgate-redis-rt".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .context("redis runtime thread")?;
            let store = Arc::new(
                handle
                    .block_on(RedisStore::connect(rc.clone(), handle.clone()))
                    .with_context(|| format!("cannot reach redis at {}", rc.endpoint.describe()))?,
            );
            let index = Arc::new(ShareIndex::with_staleness_bound(Some(rc.staleness_bound)));
            let sync = RedisSync::new(Arc::clone(&store), Arc::clone(&index));
            handle
                .block_on(sync.resync())
                .context("cannot read shares from redis")?;
            handle.spawn(sync.run());
            Ok((store, index))
        }
    }
}

/// A ready-to-run server and the audit stream to close when it has stopped.
pub struct Built {
    /// The pingora server.
    pub server: Server,
    /// The audit stream: `close()` after the server returns writes the stop record and
    /// the final checkpoint.
    pub audit: Arc<AuditSink>,
}

/// Builds a ready-to-run server.
pub fn build(config: &Config, upgrade: bool) -> anyhow::Result<Built> {
    if upgrade && matches!(config.store, StoreConfig::Embedded(_)) {
        bail!(
            "--upgrade needs store.backend = \"redis\": the embedded store is one file that the running process holds"
        );
    }
    let Checked {
        policies, upstream, ..
    } = check(config)?;
    let keys = SessionKeys::from_config(&config.session)?;
    // The set check() compiled is the one that serves; reloads re-read the directory.
    let policies = Arc::new(LivePolicies::new(
        policies,
        config.policies_dir.clone(),
        config
            .strip_headers
            .iter()
            .chain(std::iter::once(&config.assertion.header))
            .cloned()
            .collect(),
        config.session.cookie_name.clone(),
    ));
    let (store, index) = open_store(&config.store)?;
    let mailer = LettreMailer::new(&config.mail_from, &config.mail).context("mail settings")?;
    // Codes and form tokens are keyed with secrets derived from the session key,
    // domain-separated.
    let session_secret = load_or_create_key(&config.session.key_file)?;
    let code_key = CodeKey::derive(&session_secret);
    let forms = crate::guest::forgery::FormKey::derive(&session_secret);
    let assertion = AssertionKeys::from_config(&config.assertion)?.map(Arc::new);
    let shares = Arc::new(Shares::new(
        store,
        Arc::clone(&index),
        Arc::new(mailer),
        code_key,
        Arc::clone(&policies),
        config.guest.clone(),
    ));
    tracing::info!(shares = index.len(), "share index loaded");
    let audit_keys = crate::audit::load_keys(&config.audit)?;
    let audit = Arc::new(
        AuditSink::start(&config.audit, audit_keys).context("cannot open the audit stream")?,
    );
    let readiness = Arc::new(Readiness::new(Arc::clone(&index)));
    let gate = Arc::new(Gate {
        settings: config.decision_settings(),
        keys,
        policies: Arc::clone(&policies),
        index,
    });
    readiness.set_policies_loaded(true);

    let tag = config.listen.port();
    let tmp = std::env::temp_dir();
    let conf = ServerConf {
        threads: config.threads,
        // Below Kubernetes' 30 s termination grace, so a rollout never hangs on us.
        grace_period_seconds: Some(5),
        graceful_shutdown_timeout_seconds: Some(5),
        // Per listen port, so several instances on one host do not share these files.
        pid_file: tmp
            .join(format!("guestgate-{tag}.pid"))
            .display()
            .to_string(),
        upgrade_sock: tmp
            .join(format!("guestgate-{tag}-upgrade.sock"))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);

    let api = AdminApi::new(
        Arc::clone(&shares),
        config.api_keys.clone(),
        Arc::clone(&audit),
        Arc::clone(&policies),
    );
    let proxy = GuestGateProxy::new(ProxyParts {
        gate,
        upstream,
        upstream_cfg: config.upstream.clone(),
        audit: Arc::clone(&audit),
        audit_pass_through: config.audit.include_pass_through,
        shares,
        session_cfg: config.session.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        forms,
        assertion: assertion.clone(),
        assertion_header: config.assertion.header.clone(),
        jwks_under_prefix: config.assertion.jwks_under_prefix,
    })?;
    // Connections accepted just before a stop are still answered: see proxy::stopping.
    let mut proxy_service = Service::new(
        "guestgate proxy".to_string(),
        AnswerAccepted::new(pingora::proxy::http_proxy(&server.configuration, proxy)),
    );
    let mut on_hup: Vec<Box<dyn Fn() + Send + Sync>> = Vec::new();
    let live = Arc::clone(&policies);
    on_hup.push(Box::new(move || {
        let _ = live.reload();
    }));
    match &config.tls {
        None => proxy_service.add_tcp(&config.listen.to_string()),
        Some(tls) => {
            let cert = Arc::new(ReloadableCert::load(&tls.cert_file, &tls.key_file)?);
            let (cert_path, key_path) = (
                tls.cert_file.display().to_string(),
                tls.key_file.display().to_string(),
            );
            let mut settings =
                pingora::listeners::tls::TlsSettings::intermediate(&cert_path, &key_path)
                    .map_err(|e| anyhow!("tls.cert_file / tls.key_file: {e}"))?;
            // The resolver serves the certificate; paths are only for pingora's bookkeeping.
            settings
                .set_cert_resolver(Arc::clone(&cert) as Arc<dyn pingora::tls::ResolvesServerCert>);
            if tls.http2 {
                settings.enable_h2();
            }
            proxy_service.add_tls_with_settings(&config.listen.to_string(), None, settings);
            on_hup.push(Box::new(move || match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload refused; the current certificate stays"),
            }));
        }
    }
    on_sighup(on_hup).context("cannot install the SIGHUP handler")?;
    let mut admin = Service::new(
        "guestgate admin".to_string(),
        HttpServer::new_app(
            AdminApp::new(readiness, api, config.admin_max_body)
                .with_jwks(assertion.as_deref().map(|k| k.jwks().to_string())),
        ),
    );
    admin.add_tcp(&config.admin.to_string());
    server.add_service(proxy_service);
    server.add_service(admin);
    server.bootstrap();
    Ok(Built { server, audit })
}

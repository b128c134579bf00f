//! How guestgate reaches Redis: one endpoint, a Cluster, or whichever primary the
//! Sentinels name. [`Link`] hands out one connection type, [`Conn`], that commands and
//! Lua scripts run on whatever the topology, and the pub/sub connection that change
//! messages arrive on.
//!
//! Each topology keeps its own way of following the truth: the single endpoint
//! reconnects to the same address; the Cluster connection follows `MOVED` and refreshes
//! its slot map after a failover; the Sentinel link asks the Sentinels again whenever
//! the primary it holds fails (I/O error, timeout, `READONLY` after a demotion) and on
//! every contact poll, and swaps in a connection to the new primary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};

/// Where Redis is, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisEndpoint {
    /// One server (or a managed service's primary endpoint): `redis://`, `rediss://` or
    /// `redis+unix://`.
    Single {
        /// The URL.
        url: String,
    },
    /// A Redis Cluster, found from one or more seed nodes.
    Cluster {
        /// Seed node URLs (any node will do; the rest is discovered).
        nodes: Vec<String>,
    },
    /// A primary with replicas, watched by Sentinels.
    Sentinel {
        /// Sentinel URLs (their own credentials in the URL; they must all use the same).
        sentinels: Vec<String>,
        /// The name the Sentinels monitor the primary under.
        service: String,
        /// Credentials, database and TLS (`rediss://`) for the primary and its replicas;
        /// the host part is not used (the Sentinels name the host).
        primary_url: Option<String>,
    },
}

impl RedisEndpoint {
    /// The addresses without passwords, for messages.
    pub fn describe(&self) -> String {
        match self {
            RedisEndpoint::Single { url } => redact_url(url),
            RedisEndpoint::Cluster { nodes } => format!(
                "the cluster seeded by {}",
                nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RedisEndpoint::Sentinel {
                sentinels, service, ..
            } => format!(
                "the primary `{service}` named by the sentinels {}",
                sentinels
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Connection settings shared by every topology.
#[derive(Clone)]
pub(super) struct LinkSettings {
    pub timeout: Duration,
    /// PEM roots for `rediss://` with a private CA (the system roots otherwise).
    pub ca_pem: Option<Vec<u8>>,
}

impl LinkSettings {
    fn certs(&self) -> Option<TlsCertificates> {
        self.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }

    fn client(&self, url: &str) -> RedisResult<Client> {
        match self.certs() {
            Some(c) if url.starts_with("rediss://") => Client::build_with_tls(url, c),
            _ => Client::open(url),
        }
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.timeout))
            .set_connection_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }
}

/// The connection commands and scripts run on.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelPrimary>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(p) => {
                let p = Arc::clone(p);
                Box::pin(async move {
                    let mut c = p.current.load().conn.clone();
                    let r = c.req_packed_command(cmd).await;
                    if let Err(e) = &r {
                        p.failed(e);
                    }
                    r
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(p) => {
                let p = Arc::clone(p);
                Box::pin(async move {
                    let mut c = p.current.load().conn.clone();
                    let r = c.req_packed_commands(pipeline, offset, count).await;
                    if let Err(e) = &r {
                        p.failed(e);
                    }
                    r
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(p) => p.current.load().conn.get_db(),
        }
    }
}

/// The primary a Sentinel deployment currently names, and a connection to it.
struct Primary {
    /// `host:port`, to notice a change.
    addr: String,
    client: Client,
    conn: ConnectionManager,
}

/// Follows the primary of a Sentinel deployment.
pub(super) struct SentinelPrimary {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    service: String,
    mcfg: ConnectionManagerConfig,
    current: ArcSwap<Primary>,
    /// A re-resolution is under way (failures during it do not start another).
    following: AtomicBool,
    /// Bounds one re-resolution, so a Sentinel that never answers cannot hold the lock.
    timeout: Duration,
}

impl SentinelPrimary {
    async fn connect(
        sentinels: &[String],
        service: &str,
        primary_url: Option<&str>,
        settings: &LinkSettings,
    ) -> RedisResult<Self> {
        let mut addrs = Vec::with_capacity(sentinels.len());
        let mut sentinel_auth = None;
        for s in sentinels {
            let info = s.as_str().into_connection_info()?;
            if sentinel_auth.is_none() && info.redis_settings().password().is_some() {
                sentinel_auth = Some((
                    info.redis_settings().username().map(str::to_string),
                    info.redis_settings().password().map(str::to_string),
                ));
            }
            addrs.push(info.addr().clone());
        }
        let tls_to_sentinels = addrs
            .iter()
            .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
        let mut b = SentinelClientBuilder::new(addrs, service, SentinelServerType::Master)?;
        if let Some((user, password)) = sentinel_auth {
            if let Some(u) = user {
                b = b.set_client_to_sentinel_username(u);
            }
            if let Some(p) = password {
                b = b.set_client_to_sentinel_password(p);
            }
        }
        if let (true, Some(c)) = (tls_to_sentinels, settings.certs()) {
            b = b.set_client_to_sentinel_certificates(c);
        }
        if let Some(url) = primary_url {
            let info = url.into_connection_info()?;
            let r = info.redis_settings();
            b = b.set_client_to_redis_db(r.db());
            if let Some(u) = r.username() {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = r.password() {
                b = b.set_client_to_redis_password(p);
            }
            if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
                b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
                if let Some(c) = settings.certs() {
                    b = b.set_client_to_redis_certificates(c);
                }
            }
        }
        let mut sentinel = b.build()?;
        let mcfg = settings.manager_config();
        let first = Self::resolve(&mut sentinel, &mcfg).await?;
        tracing::info!(primary = %first.addr, service, "redis primary found through the sentinels");
        Ok(Self {
            sentinel: tokio::sync::Mutex::new(sentinel),
            service: service.to_string(),
            mcfg,
            current: ArcSwap::from_pointee(first),
            following: AtomicBool::new(false),
            timeout: settings.timeout * 3,
        })
    }

    /// Asks the Sentinels for the primary (they check it calls itself primary) and connects.
    async fn resolve(
        sentinel: &mut SentinelClient,
        mcfg: &ConnectionManagerConfig,
    ) -> RedisResult<Primary> {
        let client = sentinel.async_get_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        let conn = client
            .get_connection_manager_with_config(mcfg.clone())
            .await?;
        Ok(Primary { addr, client, conn })
    }

    /// Asks the Sentinels again; swaps in the new primary if it changed.
    async fn follow(&self) -> RedisResult<()> {
        match tokio::time::timeout(self.timeout, self.ask_and_switch()).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from((
                redis::ErrorKind::Io,
                "the sentinels did not answer in time",
            ))),
        }
    }

    async fn ask_and_switch(&self) -> RedisResult<()> {
        let mut sentinel = self.sentinel.lock().await;
        let client = sentinel.async_get_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        if addr == self.current.load().addr {
            return Ok(());
        }
        let conn = client
            .get_connection_manager_with_config(self.mcfg.clone())
            .await?;
        tracing::warn!(
            service = %self.service,
            from = %self.current.load().addr,
            to = %addr,
            "redis primary changed; following it"
        );
        self.current.store(Arc::new(Primary { addr, client, conn }));
        Ok(())
    }

    /// A command failed: if the primary may have moved, ask the Sentinels in the
    /// background (this command has already failed; the caller fails closed).
    fn failed(self: &Arc<Self>, e: &RedisError) {
        let moved = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(e.code(), Some("READONLY" | "NOREPLICAS" | "MASTERDOWN"));
        if moved {
            self.follow_in_background();
        }
    }

    /// Asks the Sentinels without making the caller wait (one question at a time).
    fn follow_in_background(self: &Arc<Self>) {
        if self.following.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = me.follow().await {
                tracing::warn!(error = %e, "sentinels could not name a redis primary");
            }
            me.following.store(false, Ordering::Release);
        });
    }
}

enum Kind {
    /// The server, or a cluster's seed nodes, for pub/sub: classic PUBLISH reaches
    /// every node of a cluster, so any live one will do.
    Nodes(Vec<Client>),
    Sentinel(Arc<SentinelPrimary>),
}

/// A live way to Redis, for one topology.
pub(super) struct Link {
    conn: Conn,
    kind: Kind,
}

impl Link {
    /// Connects; fails if Redis cannot be reached now.
    pub async fn connect(endpoint: &RedisEndpoint, settings: &LinkSettings) -> RedisResult<Self> {
        match endpoint {
            RedisEndpoint::Single { url } => {
                let client = settings.client(url)?;
                let conn = client
                    .get_connection_manager_with_config(settings.manager_config())
                    .await?;
                Ok(Self {
                    conn: Conn::Single(conn),
                    kind: Kind::Nodes(vec![client]),
                })
            }
            RedisEndpoint::Cluster { nodes } => {
                let mut b = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    // Retries wait out a failover, but the caller's own bound comes first.
                    .retries(3);
                if let Some(c) = settings.certs() {
                    b = b.certs(c);
                }
                let conn = b.build()?.get_async_connection().await?;
                let clients = nodes
                    .iter()
                    .map(|n| settings.client(n))
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok(Self {
                    conn: Conn::Cluster(conn),
                    kind: Kind::Nodes(clients),
                })
            }
            RedisEndpoint::Sentinel {
                sentinels,
                service,
                primary_url,
            } => {
                let p = Arc::new(
                    SentinelPrimary::connect(sentinels, service, primary_url.as_deref(), settings)
                        .await?,
                );
                Ok(Self {
                    conn: Conn::Sentinel(Arc::clone(&p)),
                    kind: Kind::Sentinel(p),
                })
            }
        }
    }

    /// A handle for commands and scripts (cheap to clone).
    pub fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// A pub/sub connection. `attempt` rotates through a cluster's seed nodes so that a
    /// dead node is not tried forever.
    pub async fn pubsub(&self, attempt: usize) -> RedisResult<PubSub> {
        match &self.kind {
            Kind::Nodes(nodes) => match nodes.get(attempt % nodes.len().max(1)) {
                Some(c) => c.get_async_pubsub().await,
                None => Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "no cluster nodes configured",
                ))),
            },
            Kind::Sentinel(p) => {
                let client = p.current.load().client.clone();
                client.get_async_pubsub().await
            }
        }
    }

    /// Makes sure commands go to the current primary (asks the Sentinels; a no-op for
    /// the other topologies, which follow by themselves).
    pub async fn follow_primary(&self) -> RedisResult<()> {
        match &self.kind {
            Kind::Sentinel(p) => p.follow().await,
            _ => Ok(()),
        }
    }

    /// The same in the background: the contact poll must not wait on the Sentinels, or
    /// a Sentinel outage would stall it and refuse guests while the primary is fine.
    pub fn nudge_primary(&self) {
        if let Kind::Sentinel(p) = &self.kind {
            p.follow_in_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_carry_no_passwords() {
        let e = RedisEndpoint::Sentinel {
            sentinels: vec!["redis://:s3cret@10.0.0.1:26379".into()],
            service: "gg".into(),
            primary_url: Some("redis://:hunter2@gg/0".into()),
        };
        let d = e.describe();
        assert!(!d.contains("s3cret") && !d.contains("hunter2"), "{d}");
        assert!(d.contains("10.0.0.1:26379") && d.contains("`gg`"), "{d}");
        let c = RedisEndpoint::Cluster {
            nodes: vec!["redis://u:pw@a:7000".into(), "redis://b:7001".into()],
        }
        .describe();
        assert_eq!(
            c,
            "the cluster seeded by redis://***@a:7000, redis://b:7001"
        );
    }
}

//! The Redis backend, for several replicas sharing one truth. Every operation that must
//! not be split is one Lua script (atomic on the server): create, revoke, issue a code
//! under the resend limits, check-and-consume a code while counting failures. Each
//! change bumps a generation counter and publishes `"<generation> <share id>"` on a
//! channel; [`RedisSync`] keeps every replica's local index current from that channel,
//! resynchronises when it sees a gap, and marks the index stale when Redis is out of
//! reach so that guests are refused (fail closed) rather than served on old state.
//!
//! All keys share one hash tag (`{guestgate}` by default), so the multi-key scripts also
//! run on Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::{AsyncCommands, Script};

pub use super::redis_link::RedisEndpoint;
use super::redis_link::{Link, LinkSettings};
use super::{
    CodeCheck, CodeLimits, GuestAccount, IssueOutcome, PendingCode, Share, ShareIndex, ShareStatus,
    Store, StoreError,
};

const CREATE: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
local g = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[3], g .. ' ' .. ARGV[2] .. ' ' .. ARGV[4])
return g
";

/// The guest's last use, never moved back; no generation bump: replicas keep their own
/// live value, and this one only serves the stale-access review.
const TOUCH: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local s = cjson.decode(raw)
local at = tonumber(ARGV[1])
if s.last_used_at == nil or s.last_used_at == cjson.null or s.last_used_at < at then
  s.last_used_at = at
  redis.call('SET', KEYS[1], cjson.encode(s))
end
return 1
";

/// Invited → accepted once; an unknown email gets the accepted account in ARGV[3].
const ACCEPT_GUEST: &str = r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  local g = cjson.decode(raw)
  if g.status == 'accepted' then return 0 end
  g.status = 'accepted'
  g.accepted_at = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(g))
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
";

const REVOKE: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local s = cjson.decode(raw)
if s.status ~= 'revoked' then
  s.status = 'revoked'
  s.revoked_at = tonumber(ARGV[2])
  s.revoked_by = ARGV[1]
  raw = cjson.encode(s)
  redis.call('SET', KEYS[1], raw)
end
redis.call('DEL', KEYS[2])
local g = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], g .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])
return raw
";

const ISSUE_CODE: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return {'unusable'} end
local s = cjson.decode(raw)
local now = tonumber(ARGV[2])
if s.status == 'revoked' or s.expires_at <= now or s.locked then return {'unusable'} end
local recent, last, oldest = {}, nil, nil
for _, t in ipairs(s.sends or {}) do
  if t + 3600 > now then
    table.insert(recent, t)
    if not last or t > last then last = t end
    if not oldest or t < oldest then oldest = t end
  end
end
local interval = tonumber(ARGV[3])
if last and last + interval > now then return {'limited', tostring(last + interval - now)} end
if #recent >= tonumber(ARGV[4]) then return {'limited', tostring(math.max(oldest + 3600 - now, 1))} end
table.insert(recent, now)
s.sends = recent
raw = cjson.encode(s)
redis.call('SET', KEYS[1], raw)
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
return {'issued', raw}
";

// The comparison is of HMAC outputs: its timing says nothing about the code.
const CHECK_CODE: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return {'unusable'} end
local s = cjson.decode(raw)
local now = tonumber(ARGV[2])
if s.status == 'revoked' or s.expires_at <= now then return {'unusable'} end
if s.locked then return {'locked'} end
local craw = redis.call('GET', KEYS[2])
if not craw then return {'nocode'} end
local c = cjson.decode(craw)
local max = tonumber(ARGV[3])
if c.expires_at <= now or c.attempts >= max then return {'nocode'} end
if c.mac == ARGV[1] then
  redis.call('DEL', KEYS[2])
  s.failures = 0
  if s.status == 'pending' then
    s.status = 'active'
    s.accepted_at = now
  end
  raw = cjson.encode(s)
  redis.call('SET', KEYS[1], raw)
  local g = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[5], g .. ' ' .. ARGV[6] .. ' ' .. ARGV[7])
  return {'verified', raw}
end
c.attempts = c.attempts + 1
s.failures = s.failures + 1
if s.failures >= tonumber(ARGV[4]) then s.locked = true end
if c.attempts >= max then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], cjson.encode(c), 'KEEPTTL')
end
redis.call('SET', KEYS[1], cjson.encode(s))
if s.locked then
  local g = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[5], g .. ' ' .. ARGV[6] .. ' ' .. ARGV[7])
  return {'locked'}
end
return {'wrong', tostring(max - c.attempts)}
";

const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return n
";

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One server, a Cluster, or a Sentinel-watched primary.
    pub endpoint: RedisEndpoint,
    /// PEM file of the CA that signed the servers' certificates (`rediss://` with a
    /// private CA); the system roots otherwise.
    pub ca_file: Option<std::path::PathBuf>,
    /// Key prefix including the hash tag, e.g. `{guestgate}:`.
    pub prefix: String,
    /// Per-command timeout.
    pub timeout: Duration,
    /// How old the local index may get without contact before guests are refused.
    pub staleness_bound: Duration,
}

/// Shared state in Redis.
pub struct RedisStore {
    link: Link,
    cfg: RedisConfig,
    rt: tokio::runtime::Handle,
    create: Script,
    revoke: Script,
    issue: Script,
    check: Script,
    count: Script,
    touch: Script,
    accept: Script,
}

/// Wall-clock milliseconds, carried in change messages to measure propagation.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl RedisStore {
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.cfg.prefix)
    }

    fn set_key(&self) -> String {
        format!("{}shares", self.cfg.prefix)
    }

    fn guests_key(&self) -> String {
        format!("{}guests", self.cfg.prefix)
    }

    fn gen_key(&self) -> String {
        format!("{}gen", self.cfg.prefix)
    }

    fn channel(&self) -> String {
        format!("{}events", self.cfg.prefix)
    }

    /// What a change to one share touches: its record, its pending code, the generation
    /// counter and the change channel.
    fn change_keys(&self, id: &str) -> (String, String, String, String) {
        (
            self.key("share", id),
            self.key("code", id),
            self.gen_key(),
            self.channel(),
        )
    }

    /// Connects on `rt` (a runtime that outlives the store: the connection's driver
    /// runs there). Fails if Redis cannot be reached now.
    pub async fn connect(cfg: RedisConfig, rt: tokio::runtime::Handle) -> Result<Self, StoreError> {
        let ca_pem = match &cfg.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                StoreError::Unavailable(format!("cannot read store.ca_file {}: {e}", p.display()))
            })?),
            None => None,
        };
        let settings = LinkSettings {
            timeout: cfg.timeout,
            ca_pem,
        };
        let link = Link::connect(&cfg.endpoint, &settings)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            link,
            cfg,
            rt,
            create: Script::new(CREATE),
            revoke: Script::new(REVOKE),
            issue: Script::new(ISSUE_CODE),
            check: Script::new(CHECK_CODE),
            count: Script::new(COUNT),
            touch: Script::new(TOUCH),
            accept: Script::new(ACCEPT_GUEST),
        })
    }

    /// Runs a command future on the Redis runtime, bounded by the timeout.
    async fn on_rt<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let limit = self.cfg.timeout * 3;
        let task = self
            .rt
            .spawn(async move { tokio::time::timeout(limit, f).await });
        match task.await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Unavailable("redis timed out".into())),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The current generation (0 when absent: a Redis that lost its data).
    pub async fn generation(&self) -> Result<u64, StoreError> {
        let mut c = self.link.conn();
        let key = self.gen_key();
        self.on_rt(async move {
            let g: Option<u64> = c.get(&key).await.map_err(unavailable)?;
            Ok(g.unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn all_shares(&self) -> Result<Vec<Share>, StoreError> {
        let mut c = self.link.conn();
        let set = self.set_key();
        let prefix = self.key("share", "");
        self.on_rt(async move {
            let ids: Vec<String> = c.smembers(&set).await.map_err(unavailable)?;
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let keys: Vec<String> = chunk.iter().map(|id| format!("{prefix}{id}")).collect();
                let raws: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)?;
                for raw in raws.into_iter().flatten() {
                    out.push(decode(&raw)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn share(&self, id: &str) -> Result<Option<Share>, StoreError> {
        let mut c = self.link.conn();
        let key = self.key("share", id);
        self.on_rt(async move {
            let raw: Option<String> = c.get(&key).await.map_err(unavailable)?;
            raw.as_deref().map(decode).transpose()
        })
        .await
    }

    async fn share_by_token(&self, token_hash: &str) -> Result<Option<Share>, StoreError> {
        let mut c = self.link.conn();
        let tkey = self.key("token", token_hash);
        let prefix = self.key("share", "");
        self.on_rt(async move {
            let id: Option<String> = c.get(&tkey).await.map_err(unavailable)?;
            let Some(id) = id else { return Ok(None) };
            let raw: Option<String> = c.get(format!("{prefix}{id}")).await.map_err(unavailable)?;
            raw.as_deref().map(decode).transpose()
        })
        .await
    }

    async fn create_share(&self, share: &Share, token_hash: &str) -> Result<(), StoreError> {
        let mut c = self.link.conn();
        let script = self.create.clone();
        let share_key = self.key("share", &share.id);
        let token_key = self.key("token", token_hash);
        let set = self.set_key();
        let gen = self.gen_key();
        let channel = self.channel();
        let id = share.id.clone();
        let json = serde_json::to_string(share).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.on_rt(async move {
            let _: u64 = script
                .key(share_key)
                .key(token_key)
                .key(set)
                .key(gen)
                .arg(json)
                .arg(id)
                .arg(channel)
                .arg(now_ms())
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn revoke(&self, id: &str, by: &str, now: u64) -> Result<Option<Share>, StoreError> {
        let mut c = self.link.conn();
        let script = self.revoke.clone();
        let (share_key, code_key, gen, channel) = self.change_keys(id);
        let (by, id) = (by.to_string(), id.to_string());
        self.on_rt(async move {
            let raw: Option<String> = script
                .key(share_key)
                .key(code_key)
                .key(gen)
                .arg(by)
                .arg(now)
                .arg(channel)
                .arg(id)
                .arg(now_ms())
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            raw.as_deref().map(decode).transpose()
        })
        .await
    }

    async fn issue_code(
        &self,
        share_id: &str,
        code: PendingCode,
        now: u64,
        limits: CodeLimits,
    ) -> Result<IssueOutcome, StoreError> {
        let mut c = self.link.conn();
        let script = self.issue.clone();
        let (share_key, code_key) = (self.key("share", share_id), self.key("code", share_id));
        let ttl = code.expires_at.saturating_sub(now).max(1);
        let code_json =
            serde_json::to_string(&code).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.on_rt(async move {
            let reply: Vec<String> = script
                .key(share_key)
                .key(code_key)
                .arg(code_json)
                .arg(now)
                .arg(limits.resend_interval)
                .arg(limits.sends_per_hour)
                .arg(ttl)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(match reply.first().map(String::as_str) {
                Some("issued") => {
                    IssueOutcome::Issued(Box::new(decode(reply.get(1).map_or("", String::as_str))?))
                }
                Some("limited") => IssueOutcome::RateLimited {
                    retry_after: reply.get(1).and_then(|r| r.parse().ok()).unwrap_or(60),
                },
                _ => IssueOutcome::Unusable,
            })
        })
        .await
    }

    async fn check_code(
        &self,
        share_id: &str,
        mac: &str,
        now: u64,
        limits: CodeLimits,
    ) -> Result<CodeCheck, StoreError> {
        let mut c = self.link.conn();
        let script = self.check.clone();
        let (share_key, code_key, gen, channel) = self.change_keys(share_id);
        let (mac, id) = (mac.to_string(), share_id.to_string());
        self.on_rt(async move {
            let reply: Vec<String> = script
                .key(share_key)
                .key(code_key)
                .key(gen)
                .arg(mac)
                .arg(now)
                .arg(limits.max_attempts)
                .arg(limits.failure_budget)
                .arg(channel)
                .arg(id)
                .arg(now_ms())
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(match reply.first().map(String::as_str) {
                Some("verified") => {
                    CodeCheck::Verified(Box::new(decode(reply.get(1).map_or("", String::as_str))?))
                }
                Some("wrong") => CodeCheck::Wrong {
                    left: reply.get(1).and_then(|r| r.parse().ok()).unwrap_or(0),
                },
                Some("nocode") => CodeCheck::NoCode,
                Some("locked") => CodeCheck::Locked,
                _ => CodeCheck::Unusable,
            })
        })
        .await
    }

    async fn count_verify(&self, client: &str, now: u64) -> Result<u32, StoreError> {
        let mut c = self.link.conn();
        let script = self.count.clone();
        let key = self.key("verify", &format!("{client}:{}", now / 60));
        self.on_rt(async move {
            script
                .key(key)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        let mut c = self.link.conn();
        let script = self.touch.clone();
        let key = self.key("share", id);
        self.on_rt(async move {
            let _: i64 = script
                .key(key)
                .arg(at)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn create_guest(&self, guest: &GuestAccount) -> Result<bool, StoreError> {
        let mut c = self.link.conn();
        let (key, email, json) = (self.guests_key(), guest.email.clone(), encode(guest)?);
        self.on_rt(async move { c.hset_nx(&key, email, json).await.map_err(unavailable) })
            .await
    }

    async fn guest(&self, email: &str) -> Result<Option<GuestAccount>, StoreError> {
        let mut c = self.link.conn();
        let (key, email) = (self.guests_key(), email.to_string());
        self.on_rt(async move {
            let raw: Option<String> = c.hget(&key, email).await.map_err(unavailable)?;
            raw.as_deref().map(decode).transpose()
        })
        .await
    }

    async fn all_guests(&self) -> Result<Vec<GuestAccount>, StoreError> {
        let mut c = self.link.conn();
        let key = self.guests_key();
        self.on_rt(async move {
            let raws: Vec<String> = c.hvals(&key).await.map_err(unavailable)?;
            raws.iter().map(|r| decode(r)).collect()
        })
        .await
    }

    async fn accept_guest(&self, email: &str, now: u64) -> Result<(), StoreError> {
        let mut c = self.link.conn();
        let script = self.accept.clone();
        let key = self.guests_key();
        let fresh = encode(&GuestAccount::accepted_without_names(email, now))?;
        let email = email.to_string();
        self.on_rt(async move {
            let _: i64 = script
                .key(key)
                .arg(email)
                .arg(now)
                .arg(fresh)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

/// Keeps a replica's local index in step with Redis: applies every published change,
/// resynchronises on a generation gap or a reconnect, polls the generation to prove
/// contact, and lets the index go stale (guests refused) when contact is lost.
pub struct RedisSync {
    store: Arc<RedisStore>,
    index: Arc<ShareIndex>,
}

impl RedisSync {
    /// A syncer for `index`.
    pub fn new(store: Arc<RedisStore>, index: Arc<ShareIndex>) -> Self {
        Self { store, index }
    }

    /// Revocation is one-way. Redis replicates asynchronously, so a failover to a
    /// replica that had not received a revocation (or a restore from an old backup)
    /// brings the share back as usable. A replica that saw the revocation writes it
    /// again, and refuses the share locally even if that write fails.
    async fn keep_revoked(&self, mut share: Share) -> Share {
        if share.status == ShareStatus::Revoked || !self.index.is_revoked(&share.id) {
            return share;
        }
        tracing::warn!(
            share = %share.id,
            "redis lost a revocation (failover or restore); revoking the share again"
        );
        crate::metrics::get()
            .store_errors
            .with_label_values(&["lost_revocation"])
            .inc();
        let now = crate::stamp::unix_now();
        match self
            .store
            .revoke(&share.id, "guestgate (lost revocation re-applied)", now)
            .await
        {
            Ok(Some(revoked)) => revoked,
            _ => {
                share.status = ShareStatus::Revoked;
                share
            }
        }
    }

    /// Full reload: every share, and the generation it corresponds to.
    pub async fn resync(&self) -> Result<u64, StoreError> {
        // Generation first: a change racing with the reload shows up as a newer one.
        let gen = self.store.generation().await?;
        let mut all = Vec::new();
        for share in self.store.all_shares().await? {
            all.push(self.keep_revoked(share).await);
        }
        self.index.replace_all(&all);
        self.index.mark_fresh();
        Ok(gen)
    }

    /// Runs forever on the Redis runtime.
    pub async fn run(self) {
        let poll = (self.store.cfg.staleness_bound / 4).max(Duration::from_millis(100));
        let mut attempt = 0usize;
        loop {
            // A Sentinel failover may have moved the primary: subscribe where writes go.
            if let Err(e) = self.store.link.follow_primary().await {
                tracing::warn!(error = %e, "sentinels could not name a redis primary");
            }
            let mut pubsub = match self.store.link.pubsub(attempt).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "redis pub/sub unavailable; guests are refused once the index is stale");
                    attempt = attempt.wrapping_add(1);
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            if let Err(e) = pubsub.subscribe(self.store.channel()).await {
                tracing::warn!(error = %e, "redis subscribe failed");
                attempt = attempt.wrapping_add(1);
                tokio::time::sleep(poll).await;
                continue;
            }
            // Subscribed first, then reloaded: nothing published in between is lost.
            let mut last_gen = match self.resync().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "redis resync failed");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            tracing::info!(
                generation = last_gen,
                shares = self.index.len(),
                "share index synchronised from redis"
            );
            let mut stream = pubsub.into_on_message();
            let mut ticker = tokio::time::interval(poll);
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let Some(msg) = msg else { break };
                        let payload: String = msg.get_payload().unwrap_or_default();
                        let mut parts = payload.split(' ');
                        let gen: u64 = parts.next().and_then(|g| g.parse().ok()).unwrap_or(0);
                        let id = parts.next().unwrap_or("").to_string();
                        let sent_ms: Option<u64> = parts.next().and_then(|t| t.parse().ok());
                        if gen != last_gen + 1 {
                            // A gap (missed messages) or a reset: reload everything.
                            match self.resync().await { Ok(g) => last_gen = g.max(gen), Err(_) => break }
                            continue;
                        }
                        match self.store.share(&id).await {
                            Ok(Some(s)) => {
                                let s = self.keep_revoked(s).await;
                                self.index.upsert(&s);
                                last_gen = gen;
                                self.index.mark_fresh();
                                if let Some(sent) = sent_ms {
                                    // Wall clocks of replicas differ a little; the metric says so.
                                    let lag = now_ms().saturating_sub(sent) as f64 / 1000.0;
                                    crate::metrics::get().propagation_seconds.observe(lag);
                                }
                            }
                            Ok(None) => { match self.resync().await { Ok(g) => last_gen = g, Err(_) => break } }
                            Err(_) => break,
                        }
                    }
                    _ = ticker.tick() => {
                        // With Sentinels, a demoted primary still answers reads: ask who leads.
                        self.store.link.nudge_primary();
                        match self.store.generation().await {
                            Ok(g) if g == last_gen => self.index.mark_fresh(),
                            Ok(g) if g > last_gen => {
                                // Messages may still be on their way; a persistent lag means we missed some.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                match self.resync().await { Ok(g2) => last_gen = g2, Err(_) => break }
                            }
                            Ok(_) => {
                                // Generation went backwards: Redis lost its data. Reload (and deny what is gone).
                                tracing::warn!("redis generation went backwards; reloading the share index");
                                match self.resync().await { Ok(g) => last_gen = g, Err(_) => break }
                            }
                            Err(e) => {
                                crate::metrics::get().store_errors.with_label_values(&["sync"]).inc();
                                tracing::warn!(error = %e, "redis unreachable");
                            }
                        }
                    }
                }
            }
            // The stream ended: the node went away. Try the next one (a cluster's seeds).
            attempt = attempt.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

//! Durable state: shares, their link-token hashes and pending one-time codes, and guest
//! accounts, behind `trait Store`. Every operation that must not be split (consuming a code, counting a
//! failure, issuing a code under a resend limit) is one atomic step of the backend.
//! The embedded (redb, file-backed) backend is the default.

mod embedded;
mod index;
mod redis;
mod redis_link;

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedStore;
pub use index::{ShareIndex, ShareState};
pub use redis::{RedisConfig, RedisEndpoint, RedisStore, RedisSync};
pub use redis_link::redact_url as redact;

/// Which share store, and its settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// One redb file (one instance).
    Embedded(PathBuf),
    /// Redis shared by every replica.
    Redis(RedisConfig),
}

/// Where a share is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareStatus {
    /// Created, code sent, not yet verified.
    Pending,
    /// Verified at least once (the invitation was accepted).
    Active,
    /// Revoked by staff; kept for the audit trail.
    Revoked,
}

/// A share of one case version with one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Share id (not secret; appears in audit and admin API).
    pub id: String,
    /// Guest email, trimmed and lower-cased.
    pub email: String,
    /// Case id.
    pub case: String,
    /// Version id.
    pub version: String,
    /// Policy profile.
    pub profile: String,
    /// Who created it, as the guest sees it: a display name checked at creation.
    pub created_by: String,
    /// Who owns it for the admin API: the API key's name, or `key/staff` for a key that
    /// acts for the app's signed-in staff. A sharer sees and revokes only its own.
    #[serde(default)]
    pub owner: String,
    /// The guest's last request, as last written (at most hourly, for stale-access
    /// review); the live value is in the index.
    #[serde(default)]
    pub last_used_at: Option<u64>,
    /// How the guest reaches the sharer (an email address), when given.
    #[serde(default)]
    pub contact: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Status (expiry is derived from `expires_at`, see [`Share::effective_status`]).
    pub status: ShareStatus,
    /// First successful verification.
    pub accepted_at: Option<u64>,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Consecutive wrong codes across re-issued codes (NIST 800-63B §5.2.2 budget).
    pub failures: u32,
    /// Locked after the failure budget is spent; only staff can unlock (re-share).
    pub locked: bool,
    /// Code sends in the last hour (unix seconds), for the resend limits.
    #[serde(deserialize_with = "seq_or_empty_map")]
    pub sends: Vec<u64>,
}

/// A list that Redis' Lua `cjson` may have re-encoded as `{}` when it was empty (it
/// cannot tell an empty array from an empty object).
fn seq_or_empty_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SeqOrMap {
        Seq(Vec<u64>),
        Map(std::collections::BTreeMap<String, u64>),
    }
    Ok(match SeqOrMap::deserialize(d)? {
        SeqOrMap::Seq(v) => v,
        SeqOrMap::Map(m) => m.into_values().collect(),
    })
}

/// Whether a guest account has been used yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    /// Created (by an admin, or by a first share); no code verified yet.
    Invited,
    /// A code was verified at least once.
    Accepted,
}

/// A guest account: the person, before and across their shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAccount {
    /// Email, trimmed and lower-cased: the account's key.
    pub email: String,
    /// First name ("" when the account came from a share).
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default)]
    pub last_name: String,
    /// Invited or accepted.
    pub status: GuestStatus,
    /// Unix seconds.
    pub created_at: u64,
    /// Who created it (API key, or the share that did).
    pub created_by: String,
    /// First verified code.
    pub accepted_at: Option<u64>,
}

impl GuestAccount {
    /// An invited account with the names given.
    pub fn invited(email: &str, first: &str, last: &str, by: &str, now: u64) -> Self {
        Self {
            email: email.to_string(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            status: GuestStatus::Invited,
            created_at: now,
            created_by: by.to_string(),
            accepted_at: None,
        }
    }

    /// The account of a guest who verified a share made before accounts existed.
    pub fn accepted_without_names(email: &str, now: u64) -> Self {
        Self {
            status: GuestStatus::Accepted,
            accepted_at: Some(now),
            ..Self::invited(email, "", "", "share", now)
        }
    }
}

impl Share {
    /// A pending share of one case version, created now and expiring at `expires_at`:
    /// nothing sent, accepted, revoked or failed yet. Callers set the rest with struct
    /// update syntax.
    pub fn pending(id: &str, email: &str, scope: [&str; 3], now: u64, expires_at: u64) -> Self {
        let [case, version, profile] = scope;
        Self {
            id: id.into(),
            email: email.into(),
            case: case.into(),
            version: version.into(),
            profile: profile.into(),
            created_by: String::new(),
            owner: String::new(),
            last_used_at: None,
            contact: None,
            created_at: now,
            expires_at,
            status: ShareStatus::Pending,
            accepted_at: None,
            revoked_at: None,
            revoked_by: None,
            failures: 0,
            locked: false,
            sends: Vec::new(),
        }
    }

    /// `pending`, `active`, `revoked` or `expired`.
    pub fn effective_status(&self, now: u64) -> &'static str {
        match self.status {
            ShareStatus::Revoked => "revoked",
            _ if self.expires_at <= now => "expired",
            ShareStatus::Pending => "pending",
            ShareStatus::Active => "active",
        }
    }

    /// Whether a guest may still use it (verify, or hold it in a session).
    pub fn usable(&self, now: u64) -> bool {
        self.status != ShareStatus::Revoked && self.expires_at > now
    }
}

/// A pending one-time code: only its keyed hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    /// HMAC-SHA256(server key, share id ‖ code), hex.
    pub mac: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Wrong tries on this code.
    pub attempts: u32,
}

/// Limits applied atomically when a code is issued or checked.
#[derive(Debug, Clone, Copy)]
pub struct CodeLimits {
    /// Wrong tries that kill a code.
    pub max_attempts: u32,
    /// Consecutive failures across codes that lock the share.
    pub failure_budget: u32,
    /// Minimum seconds between two sends.
    pub resend_interval: u64,
    /// Sends allowed per rolling hour.
    pub sends_per_hour: usize,
}

/// Result of checking a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code: consumed, share now active.
    Verified(Box<Share>),
    /// Wrong code; `left` tries remain on this code.
    Wrong {
        /// Tries left on this code (0 = the code is dead).
        left: u32,
    },
    /// No live code (never issued, used, expired or killed by wrong tries).
    NoCode,
    /// The share is locked by its failure budget.
    Locked,
    /// Unknown, revoked or expired share.
    Unusable,
}

/// Result of issuing a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Stored; send it.
    Issued(Box<Share>),
    /// Too soon after the last send, or over the hourly limit.
    RateLimited {
        /// Seconds until a send is allowed again.
        retry_after: u64,
    },
    /// Locked, revoked, expired or unknown share.
    Unusable,
}

/// Store failures. Callers fail closed on every one of them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record could not be decoded.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

/// The persistence seam: embedded file database now, Redis for replicas.
#[async_trait]
pub trait Store: Send + Sync {
    /// Every share (for the local index at start and for listings).
    async fn all_shares(&self) -> Result<Vec<Share>, StoreError>;
    /// One share by id.
    async fn share(&self, id: &str) -> Result<Option<Share>, StoreError>;
    /// One share by the hash of its link token.
    async fn share_by_token(&self, token_hash: &str) -> Result<Option<Share>, StoreError>;
    /// Stores a new share and its token hash.
    async fn create_share(&self, share: &Share, token_hash: &str) -> Result<(), StoreError>;
    /// Revokes (idempotent: an already revoked share keeps its first who/when).
    async fn revoke(&self, id: &str, by: &str, now: u64) -> Result<Option<Share>, StoreError>;
    /// Issues a code under the resend limits, replacing any pending one.
    async fn issue_code(
        &self,
        share_id: &str,
        code: PendingCode,
        now: u64,
        limits: CodeLimits,
    ) -> Result<IssueOutcome, StoreError>;
    /// Checks a code and consumes it on success, counting failures, in one step.
    async fn check_code(
        &self,
        share_id: &str,
        mac: &str,
        now: u64,
        limits: CodeLimits,
    ) -> Result<CodeCheck, StoreError>;
    /// Counts one code check from `client` in the current minute; returns the count so far.
    async fn count_verify(&self, client: &str, now: u64) -> Result<u32, StoreError>;
    /// Records the guest's last use of a share (kept if an earlier write said later).
    async fn touch(&self, id: &str, at: u64) -> Result<(), StoreError>;
    /// Creates a guest account unless one exists for the email; true when created.
    async fn create_guest(&self, guest: &GuestAccount) -> Result<bool, StoreError>;
    /// One guest account.
    async fn guest(&self, email: &str) -> Result<Option<GuestAccount>, StoreError>;
    /// Every guest account.
    async fn all_guests(&self) -> Result<Vec<GuestAccount>, StoreError>;
    /// Marks an account accepted at its first verified code (creating it, accepted, when
    /// the share predates accounts); later calls change nothing.
    async fn accept_guest(&self, email: &str, now: u64) -> Result<(), StoreError>;
}

/// Per-minute counters kept in memory (for a single instance).
#[derive(Debug, Default)]
pub struct MinuteCounter {
    windows: std::sync::Mutex<std::collections::HashMap<String, (u64, u32)>>,
}

impl MinuteCounter {
    /// Counts one event for `key` in the minute of `now`; returns the count so far.
    pub fn count(&self, key: &str, now: u64) -> u32 {
        let minute = now / 60;
        let Ok(mut w) = self.windows.lock() else {
            return u32::MAX;
        };
        if w.len() > 100_000 {
            // Old windows are worthless; drop them rather than grow without bound.
            w.retain(|_, (m, _)| *m == minute);
        }
        let e = w.entry(key.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_counters_reset_each_minute() {
        let c = MinuteCounter::default();
        assert_eq!(
            (
                c.count("ip", 120),
                c.count("ip", 130),
                c.count("other", 130)
            ),
            (1, 2, 1)
        );
        assert_eq!(c.count("ip", 180), 1);
    }

    /// Redis' Lua cjson writes an empty list back as `{}`: still an empty list.
    #[test]
    fn a_share_reencoded_by_lua_decodes() {
        let mut v =
            serde_json::to_value(Share::pending("s", "g@x", ["1", "2", "p"], 1, 2)).unwrap();
        v["sends"] = serde_json::json!({});
        let s: Share = serde_json::from_value(v.clone()).unwrap();
        assert!(s.sends.is_empty());
        v["sends"] = serde_json::json!([5, 6]);
        assert_eq!(serde_json::from_value::<Share>(v).unwrap().sends, [5, 6]);
    }
}

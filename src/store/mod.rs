//! Durable state: shares, their link-token hashes and pending one-time codes, behind
//! `trait Store`. Every operation that must not be split (consuming a code, counting a
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
    /// Who created it, as the guest sees it (from the API key, or the request).
    pub created_by: String,
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
    pub sends: Vec<u64>,
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
}

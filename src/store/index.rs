//! The local share index: what the proxy consults on every guest request, in O(1) and
//! without a store round trip. It is an allow-list: a share it does not know is not
//! active, so an empty or lost index denies rather than allows. The store layer keeps
//! it current on every write (and, with Redis, on every revocation message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Share, ShareStatus};

/// What the hot path needs to know of a share.
#[derive(Debug)]
pub struct ShareState {
    /// Status as last written.
    pub status: ShareStatus,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// Guest email (for the guest directory's last access).
    pub email: String,
    /// Last guest request through this share, unix seconds (0 = never).
    last_access: AtomicU64,
}

impl ShareState {
    /// Last guest request, unix seconds (0 = never since start).
    pub fn last_access(&self) -> u64 {
        self.last_access.load(Ordering::Relaxed)
    }
}

/// Share id → state, plus how fresh that knowledge is.
#[derive(Debug)]
pub struct ShareIndex {
    map: RwLock<HashMap<String, Arc<ShareState>>>,
    /// Zero = never stale (the embedded store writes the index itself).
    staleness_bound_ms: u64,
    base: Instant,
    /// Milliseconds after `base` of the last proof of contact with the shared store.
    fresh_at_ms: AtomicU64,
}

impl Default for ShareIndex {
    fn default() -> Self {
        Self::with_staleness_bound(None)
    }
}

impl ShareIndex {
    /// An index that goes stale `bound` after the last [`ShareIndex::mark_fresh`]
    /// (`None`: never, for a store that writes the index itself).
    pub fn with_staleness_bound(bound: Option<Duration>) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            staleness_bound_ms: bound.map_or(0, |b| b.as_millis().max(1) as u64),
            base: Instant::now(),
            fresh_at_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Records contact with the shared store (the index reflects it as of now).
    pub fn mark_fresh(&self) {
        self.fresh_at_ms
            .store(self.now_ms().max(1), Ordering::Release);
    }

    /// Whether guests may be served from this index. A synced index that never synced,
    /// or lost contact longer than the bound ago, is stale: fail closed.
    pub fn is_fresh(&self) -> bool {
        if self.staleness_bound_ms == 0 {
            return true;
        }
        let at = self.fresh_at_ms.load(Ordering::Acquire);
        at != 0 && self.now_ms().saturating_sub(at) <= self.staleness_bound_ms
    }

    /// Milliseconds since the last proof of contact (0 for a never-stale index).
    pub fn staleness_ms(&self) -> u64 {
        if self.staleness_bound_ms == 0 {
            return 0;
        }
        self.now_ms()
            .saturating_sub(self.fresh_at_ms.load(Ordering::Acquire))
    }

    /// Replaces the whole index (start-up, or a resynchronisation).
    pub fn replace_all(&self, shares: &[Share]) {
        let fresh: HashMap<_, _> = shares
            .iter()
            .map(|s| (s.id.clone(), Arc::new(state(s, 0))))
            .collect();
        if let Ok(mut map) = self.map.write() {
            *map = fresh;
        }
    }

    /// Whether this replica has seen the share revoked.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.map
            .read()
            .map(|m| m.get(id).is_some_and(|s| s.status == ShareStatus::Revoked))
            .unwrap_or(false)
    }

    /// Records the current state of one share, keeping its last access.
    pub fn upsert(&self, share: &Share) {
        if let Ok(mut map) = self.map.write() {
            let last = map.get(&share.id).map_or(0, |s| s.last_access());
            map.insert(share.id.clone(), Arc::new(state(share, last)));
        }
    }

    /// Whether a session may use this share now: known, verified, not revoked, not expired.
    /// Records the access when it may.
    pub fn admit(&self, id: &str, now: u64) -> bool {
        let Ok(map) = self.map.read() else {
            return false;
        };
        match map.get(id) {
            Some(s) if s.status == ShareStatus::Active && s.expires_at > now => {
                s.last_access.store(now, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Whether a share is unknown here or known only as pending: it may have just been
    /// verified on another replica. Revoked and active shares are settled locally.
    pub fn may_be_newer_elsewhere(&self, id: &str) -> bool {
        self.map
            .read()
            .map(|m| m.get(id).is_none_or(|s| s.status == ShareStatus::Pending))
            .unwrap_or(false)
    }

    /// Last access of a share (0 = never or unknown).
    pub fn last_access(&self, id: &str) -> u64 {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(id).map(|s| s.last_access()))
            .unwrap_or(0)
    }

    /// Shares known, by effective status: (pending, active, revoked, expired).
    pub fn counts(&self, now: u64) -> (i64, i64, i64, i64) {
        let Ok(map) = self.map.read() else {
            return (0, 0, 0, 0);
        };
        let mut c = (0, 0, 0, 0);
        for s in map.values() {
            match s.status {
                ShareStatus::Revoked => c.2 += 1,
                _ if s.expires_at <= now => c.3 += 1,
                ShareStatus::Pending => c.0 += 1,
                ShareStatus::Active => c.1 += 1,
            }
        }
        c
    }

    /// Number of shares known.
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn state(s: &Share, last_access: u64) -> ShareState {
    ShareState {
        status: s.status,
        expires_at: s.expires_at,
        email: s.email.clone(),
        last_access: AtomicU64::new(last_access),
    }
}

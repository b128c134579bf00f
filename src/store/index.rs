//! The local share index: what the proxy consults on every guest request, in O(1) and
//! without a store round trip. It is an allow-list: a share it does not know is not
//! active, so an empty or lost index denies rather than allows. The store layer keeps
//! it current on every write (and, with Redis, on every revocation message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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

/// Share id → state.
#[derive(Debug, Default)]
pub struct ShareIndex {
    map: RwLock<HashMap<String, Arc<ShareState>>>,
}

impl ShareIndex {
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

    /// Last access of a share (0 = never or unknown).
    pub fn last_access(&self, id: &str) -> u64 {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(id).map(|s| s.last_access()))
            .unwrap_or(0)
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

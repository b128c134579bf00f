//! The local share index: what the proxy consults on every guest request, in O(1) and
//! without a store round trip. It is an allow-list: a share it does not know is not
//! active, so an empty or lost index denies rather than allows. The store layer keeps
//! it current on every write (and, with Redis, on every revocation message).
//!
//! Revocation is one-way here: no write of any kind turns a share this index has seen
//! revoked back into a usable one. Writers race (a code check that read the share just
//! before a revocation committed may record it after), so the order of writes cannot be
//! trusted to say which state is newer; "revoked" always is.

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
    /// The last use written to the store (0 = never), so it is written at most hourly.
    persisted: AtomicU64,
}

/// How stale the stored last use may get: the review works in days, the proxy should not
/// write on every request.
pub const TOUCH_EVERY: u64 = 3600;

impl ShareState {
    /// Last guest request, unix seconds (0 = never since start).
    pub fn last_access(&self) -> u64 {
        self.last_access.load(Ordering::Relaxed)
    }
}

/// Share id → state, plus how fresh that knowledge is.
#[derive(Debug)]
pub struct ShareIndex {
    /// Keyed by share id with foldhash, not SipHash: an allowed request looks its share
    /// up three times, and the keys are ids guestgate made (lookups with other strings
    /// cannot crowd a bucket they do not insert into).
    map: RwLock<HashMap<String, Arc<ShareState>, foldhash::fast::RandomState>>,
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
            map: RwLock::new(HashMap::default()),
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

    /// Replaces the whole index (start-up, or a resynchronisation). Shares missing from
    /// `shares` are forgotten (and so refused); shares seen revoked here stay revoked.
    pub fn replace_all(&self, shares: &[Share]) {
        if let Ok(mut map) = self.map.write() {
            let fresh: HashMap<_, _, foldhash::fast::RandomState> = shares
                .iter()
                .map(|s| {
                    let old = map.get(&s.id);
                    (s.id.clone(), Arc::new(merged(old.map(Arc::as_ref), s)))
                })
                .collect();
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

    /// Records the state of one share, keeping its last access. A share already seen
    /// revoked stays revoked, whatever `share` says.
    pub fn upsert(&self, share: &Share) {
        if let Ok(mut map) = self.map.write() {
            let next = merged(map.get(&share.id).map(Arc::as_ref), share);
            map.insert(share.id.clone(), Arc::new(next));
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

    /// Whether a session may use this share now, without recording an access.
    pub fn usable(&self, id: &str, now: u64) -> bool {
        self.map.read().is_ok_and(|map| {
            map.get(id)
                .is_some_and(|s| s.status == ShareStatus::Active && s.expires_at > now)
        })
    }

    /// Whether a share is unknown here or known only as pending: it may have just been
    /// verified on another replica. Revoked and active shares are settled locally.
    pub fn may_be_newer_elsewhere(&self, id: &str) -> bool {
        self.map
            .read()
            .map(|m| m.get(id).is_none_or(|s| s.status == ShareStatus::Pending))
            .unwrap_or(false)
    }

    /// Whether this use of a share should be written to the store (the stored last use is
    /// an hour old or more); claims the write, so concurrent requests make one.
    pub fn due_for_touch(&self, id: &str, now: u64) -> bool {
        let Ok(map) = self.map.read() else {
            return false;
        };
        let Some(s) = map.get(id) else {
            return false;
        };
        let stored = s.persisted.load(Ordering::Relaxed);
        stored + TOUCH_EVERY <= now
            && s.persisted
                .compare_exchange(stored, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
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

/// The state to record for `s`, given what the index held: revocation and last access
/// carry over.
fn merged(old: Option<&ShareState>, s: &Share) -> ShareState {
    let was_revoked = old.is_some_and(|o| o.status == ShareStatus::Revoked);
    ShareState {
        status: if was_revoked {
            ShareStatus::Revoked
        } else {
            s.status
        },
        expires_at: s.expires_at,
        email: s.email.clone(),
        last_access: AtomicU64::new(old.map_or(0, ShareState::last_access)),
        persisted: AtomicU64::new(
            old.map_or(0, |o| o.persisted.load(Ordering::Relaxed))
                .max(s.last_used_at.unwrap_or(0)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(status: ShareStatus) -> Share {
        Share {
            status,
            ..Share::pending("s1", "g@x.test", ["42", "3", "view-only"], 1, u64::MAX)
        }
    }

    #[test]
    fn no_write_turns_a_revoked_share_usable_again() {
        let index = ShareIndex::default();
        index.upsert(&share(ShareStatus::Active));
        assert!(index.admit("s1", 10));
        index.upsert(&share(ShareStatus::Revoked));
        assert!(!index.admit("s1", 10));
        // A code check that read the share before the revocation, recording it after.
        index.upsert(&share(ShareStatus::Active));
        assert!(!index.admit("s1", 10) && index.is_revoked("s1"));
        // A resynchronisation from a store that lost the revocation.
        index.replace_all(&[share(ShareStatus::Active)]);
        assert!(!index.admit("s1", 10) && index.is_revoked("s1"));
        // A share the store no longer has is forgotten, so refused.
        index.replace_all(&[]);
        assert!(!index.admit("s1", 10));
    }

    #[test]
    fn the_last_use_is_written_at_most_hourly() {
        let index = ShareIndex::default();
        index.upsert(&share(ShareStatus::Active));
        assert!(index.due_for_touch("s1", 10_000));
        assert!(!index.due_for_touch("s1", 10_001), "claimed once");
        assert!(!index.due_for_touch("s1", 10_000 + TOUCH_EVERY - 1));
        assert!(index.due_for_touch("s1", 10_000 + TOUCH_EVERY));
        // what the store says counts
        let mut s = share(ShareStatus::Active);
        s.last_used_at = Some(50_000);
        index.upsert(&s);
        assert!(!index.due_for_touch("s1", 50_100));
        assert!(!index.due_for_touch("nope", 99_999));
    }

    #[test]
    fn last_access_survives_updates() {
        let index = ShareIndex::default();
        index.upsert(&share(ShareStatus::Active));
        assert!(index.admit("s1", 77));
        index.upsert(&share(ShareStatus::Active));
        index.replace_all(&[share(ShareStatus::Active)]);
        assert_eq!(index.last_access("s1"), 77);
    }
}

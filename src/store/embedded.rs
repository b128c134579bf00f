//! The embedded backend: one redb file. Every write is one ACID transaction committed
//! to disk before the call returns, so a restart loses no share, revocation, attempt
//! counter or pending code; redb's single writer makes check-and-consume atomic.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use subtle::ConstantTimeEq;

use super::{
    CodeCheck, CodeLimits, GuestAccount, GuestStatus, IssueOutcome, MinuteCounter, PendingCode,
    Share, ShareStatus, Store, StoreError,
};

const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("codes");
const GUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("guests");

/// File-backed store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    verify_counts: MinuteCounter,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        // Guests' emails and the hashes of their codes and links: readable by guestgate's
        // own user only. Created 0600 before redb opens it (no window at a wider mode),
        // and an older file is tightened.
        {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(unavailable)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(unavailable)?;
        }
        let db = Database::create(path).map_err(unavailable)?;
        // Create the tables up front so reads never meet a missing table.
        let tx = db.begin_write().map_err(unavailable)?;
        {
            tx.open_table(SHARES).map_err(unavailable)?;
            tx.open_table(TOKENS).map_err(unavailable)?;
            tx.open_table(CODES).map_err(unavailable)?;
            tx.open_table(GUESTS).map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(Self {
            db: Arc::new(db),
            verify_counts: MinuteCounter::default(),
        })
    }

    /// Runs blocking database work off the async worker.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }
}

/// One share from an open shares table (read or write transaction).
fn share_in<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    id: &str,
) -> Result<Option<Share>, StoreError> {
    match t.get(id).map_err(unavailable)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

fn read_share(db: &Database, id: &str) -> Result<Option<Share>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let t = tx.open_table(SHARES).map_err(unavailable)?;
    share_in(&t, id)
}

/// Drops send times older than an hour.
fn recent_sends(sends: &[u64], now: u64) -> Vec<u64> {
    sends.iter().copied().filter(|&t| t + 3600 > now).collect()
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn all_shares(&self) -> Result<Vec<Share>, StoreError> {
        self.run(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(SHARES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)? {
                let (_, v) = row.map_err(unavailable)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn share(&self, id: &str) -> Result<Option<Share>, StoreError> {
        let id = id.to_string();
        self.run(move |db| read_share(db, &id)).await
    }

    async fn share_by_token(&self, token_hash: &str) -> Result<Option<Share>, StoreError> {
        let token_hash = token_hash.to_string();
        self.run(move |db| {
            let id = {
                let tx = db.begin_read().map_err(unavailable)?;
                let t = tx.open_table(TOKENS).map_err(unavailable)?;
                let found = t.get(token_hash.as_str()).map_err(unavailable)?;
                match found {
                    Some(v) => v.value().to_string(),
                    None => return Ok(None),
                }
            };
            read_share(db, &id)
        })
        .await
    }

    async fn create_share(&self, share: &Share, token_hash: &str) -> Result<(), StoreError> {
        let share = share.clone();
        let token_hash = token_hash.to_string();
        self.run(move |db| {
            let bytes = encode(&share)?;
            let tx = db.begin_write().map_err(unavailable)?;
            {
                tx.open_table(SHARES)
                    .map_err(unavailable)?
                    .insert(share.id.as_str(), bytes.as_slice())
                    .map_err(unavailable)?;
                tx.open_table(TOKENS)
                    .map_err(unavailable)?
                    .insert(token_hash.as_str(), share.id.as_str())
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn revoke(&self, id: &str, by: &str, now: u64) -> Result<Option<Share>, StoreError> {
        let (id, by) = (id.to_string(), by.to_string());
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let share = {
                let mut shares = tx.open_table(SHARES).map_err(unavailable)?;
                let current = share_in(&shares, &id)?;
                let Some(mut share) = current else {
                    return Ok(None);
                };
                if share.status != ShareStatus::Revoked {
                    share.status = ShareStatus::Revoked;
                    share.revoked_at = Some(now);
                    share.revoked_by = Some(by);
                    let bytes = encode(&share)?;
                    shares
                        .insert(id.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                }
                tx.open_table(CODES)
                    .map_err(unavailable)?
                    .remove(id.as_str())
                    .map_err(unavailable)?;
                share
            };
            tx.commit().map_err(unavailable)?;
            Ok(Some(share))
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
        let id = share_id.to_string();
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let outcome = {
                let mut shares = tx.open_table(SHARES).map_err(unavailable)?;
                let current = share_in(&shares, &id)?;
                let Some(mut share) = current else {
                    return Ok(IssueOutcome::Unusable);
                };
                if !share.usable(now) || share.locked {
                    return Ok(IssueOutcome::Unusable);
                }
                let sends = recent_sends(&share.sends, now);
                if let Some(&last) = sends.iter().max() {
                    if last + limits.resend_interval > now {
                        return Ok(IssueOutcome::RateLimited {
                            retry_after: last + limits.resend_interval - now,
                        });
                    }
                }
                if sends.len() >= limits.sends_per_hour {
                    let oldest = sends.iter().min().copied().unwrap_or(now);
                    return Ok(IssueOutcome::RateLimited {
                        retry_after: (oldest + 3600).saturating_sub(now).max(1),
                    });
                }
                share.sends = sends;
                share.sends.push(now);
                let bytes = encode(&share)?;
                shares
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(unavailable)?;
                let code_bytes = encode(&code)?;
                tx.open_table(CODES)
                    .map_err(unavailable)?
                    .insert(id.as_str(), code_bytes.as_slice())
                    .map_err(unavailable)?;
                IssueOutcome::Issued(Box::new(share))
            };
            tx.commit().map_err(unavailable)?;
            Ok(outcome)
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
        let (id, mac) = (share_id.to_string(), mac.to_string());
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let outcome = {
                let mut shares = tx.open_table(SHARES).map_err(unavailable)?;
                let mut codes = tx.open_table(CODES).map_err(unavailable)?;
                let current = share_in(&shares, &id)?;
                let Some(mut share) = current else {
                    return Ok(CodeCheck::Unusable);
                };
                if !share.usable(now) {
                    return Ok(CodeCheck::Unusable);
                }
                if share.locked {
                    return Ok(CodeCheck::Locked);
                }
                let pending: Option<PendingCode> =
                    match codes.get(id.as_str()).map_err(unavailable)? {
                        Some(v) => Some(decode(v.value())?),
                        None => None,
                    };
                let Some(mut code) =
                    pending.filter(|c| c.expires_at > now && c.attempts < limits.max_attempts)
                else {
                    return Ok(CodeCheck::NoCode);
                };
                let right: bool = code.mac.as_bytes().ct_eq(mac.as_bytes()).into();
                let outcome = if right {
                    codes.remove(id.as_str()).map_err(unavailable)?;
                    share.failures = 0;
                    if share.status == ShareStatus::Pending {
                        share.status = ShareStatus::Active;
                        share.accepted_at = Some(now);
                    }
                    CodeCheck::Verified(Box::new(share.clone()))
                } else {
                    code.attempts += 1;
                    share.failures += 1;
                    if share.failures >= limits.failure_budget {
                        share.locked = true;
                    }
                    if code.attempts >= limits.max_attempts {
                        codes.remove(id.as_str()).map_err(unavailable)?;
                    } else {
                        let bytes = encode(&code)?;
                        codes
                            .insert(id.as_str(), bytes.as_slice())
                            .map_err(unavailable)?;
                    }
                    if share.locked {
                        CodeCheck::Locked
                    } else {
                        CodeCheck::Wrong {
                            left: limits.max_attempts - code.attempts,
                        }
                    }
                };
                let bytes = encode(&share)?;
                shares
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(unavailable)?;
                outcome
            };
            tx.commit().map_err(unavailable)?;
            Ok(outcome)
        })
        .await
    }

    async fn count_verify(&self, client: &str, now: u64) -> Result<u32, StoreError> {
        // One instance: counting in memory is exact; nothing here needs to survive a restart.
        Ok(self.verify_counts.count(client, now))
    }

    async fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut shares = tx.open_table(SHARES).map_err(unavailable)?;
                let current = share_in(&shares, &id)?;
                if let Some(mut share) = current.filter(|s| s.last_used_at < Some(at)) {
                    share.last_used_at = Some(at);
                    let bytes = encode(&share)?;
                    shares
                        .insert(id.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn create_guest(&self, guest: &GuestAccount) -> Result<bool, StoreError> {
        let guest = guest.clone();
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let created = {
                let mut t = tx.open_table(GUESTS).map_err(unavailable)?;
                let exists = t.get(guest.email.as_str()).map_err(unavailable)?.is_some();
                if !exists {
                    let bytes = encode(&guest)?;
                    t.insert(guest.email.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                }
                !exists
            };
            tx.commit().map_err(unavailable)?;
            Ok(created)
        })
        .await
    }

    async fn guest(&self, email: &str) -> Result<Option<GuestAccount>, StoreError> {
        let email = email.to_string();
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(GUESTS).map_err(unavailable)?;
            let found = t.get(email.as_str()).map_err(unavailable)?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn all_guests(&self) -> Result<Vec<GuestAccount>, StoreError> {
        self.run(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(GUESTS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)? {
                let (_, v) = row.map_err(unavailable)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn accept_guest(&self, email: &str, now: u64) -> Result<(), StoreError> {
        let email = email.to_string();
        self.run(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(GUESTS).map_err(unavailable)?;
                let current: Option<GuestAccount> =
                    match t.get(email.as_str()).map_err(unavailable)? {
                        Some(v) => Some(decode(v.value())?),
                        None => None,
                    };
                let updated = match current {
                    Some(g) if g.status == GuestStatus::Accepted => None,
                    Some(g) => Some(GuestAccount {
                        status: GuestStatus::Accepted,
                        accepted_at: Some(now),
                        ..g
                    }),
                    None => Some(GuestAccount::accepted_without_names(&email, now)),
                };
                if let Some(g) = updated {
                    let bytes = encode(&g)?;
                    t.insert(email.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

// Behaviour is tested against both backends by the one suite in tests/store_behaviour.rs.

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn the_store_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.redb");
        drop(EmbeddedStore::open(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o600);
        // a file an older version left world-readable is tightened, and still opens
        let old = dir.path().join("old.redb");
        drop(EmbeddedStore::open(&old).unwrap());
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(EmbeddedStore::open(&old).unwrap());
        assert_eq!(mode(&old), 0o600);
    }
}

//! The embedded backend: one redb file. Every write is one ACID transaction committed
//! to disk before the call returns, so a restart loses no share, revocation, attempt
//! counter or pending code; redb's single writer makes check-and-consume atomic.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use subtle::ConstantTimeEq;

use super::{
    CodeCheck, CodeLimits, IssueOutcome, PendingCode, Share, ShareStatus, Store, StoreError,
};

const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("codes");

/// File-backed store.
pub struct EmbeddedStore {
    db: Arc<Database>,
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
        let db = Database::create(path).map_err(unavailable)?;
        // Create the tables up front so reads never meet a missing table.
        let tx = db.begin_write().map_err(unavailable)?;
        {
            tx.open_table(SHARES).map_err(unavailable)?;
            tx.open_table(TOKENS).map_err(unavailable)?;
            tx.open_table(CODES).map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db) })
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

fn read_share(db: &Database, id: &str) -> Result<Option<Share>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let t = tx.open_table(SHARES).map_err(unavailable)?;
    match t.get(id).map_err(unavailable)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
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
                let current: Option<Share> = match shares.get(id.as_str()).map_err(unavailable)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
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
                let current: Option<Share> = match shares.get(id.as_str()).map_err(unavailable)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
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
                let current: Option<Share> = match shares.get(id.as_str()).map_err(unavailable)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(id: &str) -> Share {
        Share {
            id: id.into(),
            email: "g@x.test".into(),
            case: "42".into(),
            version: "3".into(),
            profile: "view-only".into(),
            created_by: "t".into(),
            created_at: 100,
            expires_at: 10_000,
            status: ShareStatus::Pending,
            accepted_at: None,
            revoked_at: None,
            revoked_by: None,
            failures: 0,
            locked: false,
            sends: vec![],
        }
    }

    const LIMITS: CodeLimits = CodeLimits {
        max_attempts: 5,
        failure_budget: 7,
        resend_interval: 60,
        sends_per_hour: 3,
    };

    fn code(mac: &str) -> PendingCode {
        PendingCode {
            mac: mac.into(),
            expires_at: 5_000,
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn codes_are_single_use_and_die_after_five_wrong_tries() {
        let d = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(&d.path().join("db")).unwrap();
        s.create_share(&share("a"), "tok-a").await.unwrap();
        assert!(matches!(
            s.issue_code("a", code("m1"), 200, LIMITS).await.unwrap(),
            IssueOutcome::Issued(_)
        ));
        for left in (1..5).rev() {
            assert_eq!(
                s.check_code("a", "bad", 201, LIMITS).await.unwrap(),
                CodeCheck::Wrong { left }
            );
        }
        assert_eq!(
            s.check_code("a", "bad", 201, LIMITS).await.unwrap(),
            CodeCheck::Wrong { left: 0 }
        );
        // the right code no longer works: the code is dead
        assert_eq!(
            s.check_code("a", "m1", 202, LIMITS).await.unwrap(),
            CodeCheck::NoCode
        );
        // a new code after the resend interval; right code works once
        assert!(matches!(
            s.issue_code("a", code("m2"), 300, LIMITS).await.unwrap(),
            IssueOutcome::Issued(_)
        ));
        let CodeCheck::Verified(sh) = s.check_code("a", "m2", 301, LIMITS).await.unwrap() else {
            panic!("not verified")
        };
        assert_eq!(
            (sh.status, sh.accepted_at, sh.failures),
            (ShareStatus::Active, Some(301), 0)
        );
        assert_eq!(
            s.check_code("a", "m2", 302, LIMITS).await.unwrap(),
            CodeCheck::NoCode
        );
    }

    #[tokio::test]
    async fn expired_codes_fail_and_resends_are_limited() {
        let d = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(&d.path().join("db")).unwrap();
        s.create_share(&share("a"), "tok-a").await.unwrap();
        s.issue_code("a", code("m"), 200, LIMITS).await.unwrap();
        assert_eq!(
            s.check_code("a", "m", 5_000, LIMITS).await.unwrap(),
            CodeCheck::NoCode
        );
        assert_eq!(
            s.issue_code("a", code("m"), 230, LIMITS).await.unwrap(),
            IssueOutcome::RateLimited { retry_after: 30 }
        );
        s.issue_code("a", code("m"), 260, LIMITS).await.unwrap();
        s.issue_code("a", code("m"), 320, LIMITS).await.unwrap();
        assert!(matches!(
            s.issue_code("a", code("m"), 400, LIMITS).await.unwrap(),
            IssueOutcome::RateLimited { .. }
        ));
        // an hour later the window has moved
        assert!(matches!(
            s.issue_code("a", code("m"), 3_900, LIMITS).await.unwrap(),
            IssueOutcome::Issued(_)
        ));
    }

    #[tokio::test]
    async fn the_failure_budget_locks_the_share_across_codes() {
        let d = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(&d.path().join("db")).unwrap();
        s.create_share(&share("a"), "tok-a").await.unwrap();
        s.issue_code("a", code("m1"), 200, LIMITS).await.unwrap();
        for _ in 0..5 {
            s.check_code("a", "bad", 201, LIMITS).await.unwrap();
        }
        s.issue_code("a", code("m2"), 300, LIMITS).await.unwrap();
        s.check_code("a", "bad", 301, LIMITS).await.unwrap();
        assert_eq!(
            s.check_code("a", "bad", 302, LIMITS).await.unwrap(),
            CodeCheck::Locked
        );
        assert_eq!(
            s.check_code("a", "m2", 303, LIMITS).await.unwrap(),
            CodeCheck::Locked
        );
        assert_eq!(
            s.issue_code("a", code("m3"), 400, LIMITS).await.unwrap(),
            IssueOutcome::Unusable
        );
    }

    #[tokio::test]
    async fn revocation_and_shares_survive_reopening() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("db");
        {
            let s = EmbeddedStore::open(&p).unwrap();
            s.create_share(&share("a"), "tok-a").await.unwrap();
            s.create_share(&share("b"), "tok-b").await.unwrap();
            s.issue_code("b", code("mb"), 200, LIMITS).await.unwrap();
            let r = s.revoke("a", "staff@x", 500).await.unwrap().unwrap();
            assert_eq!(r.status, ShareStatus::Revoked);
            // idempotent: the first who/when stays
            let r2 = s.revoke("a", "other", 600).await.unwrap().unwrap();
            assert_eq!(
                (r2.revoked_at, r2.revoked_by.as_deref()),
                (Some(500), Some("staff@x"))
            );
        }
        let s = EmbeddedStore::open(&p).unwrap();
        assert_eq!(s.all_shares().await.unwrap().len(), 2);
        assert_eq!(
            s.share("a").await.unwrap().unwrap().status,
            ShareStatus::Revoked
        );
        assert_eq!(s.share_by_token("tok-b").await.unwrap().unwrap().id, "b");
        assert!(s.share_by_token("tok-x").await.unwrap().is_none());
        // the pending code survived the restart
        assert!(matches!(
            s.check_code("b", "mb", 201, LIMITS).await.unwrap(),
            CodeCheck::Verified(_)
        ));
        assert_eq!(
            s.check_code("a", "x", 201, LIMITS).await.unwrap(),
            CodeCheck::Unusable
        );
    }
}

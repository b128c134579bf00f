//! Revocation is one-way in the local share index, whatever order its writers land in.
//! A code check reads the share, then records it as active; a revocation committed in
//! between must not be undone by that late write. This test forces the interleaving with
//! the real share service over a real embedded store: the code check is held after the
//! store has consumed the code and before the service records the share, a revocation
//! runs to completion, then the code check is let go.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use guestgate::config::Config;
use guestgate::mail::LettreMailer;
use guestgate::otp::CodeKey;
use guestgate::policy::PolicySet;
use guestgate::reload::LivePolicies;
use guestgate::shares::{NewShare, Shares};
use guestgate::stamp::unix_now;
use guestgate::store::{
    CodeCheck, CodeLimits, EmbeddedStore, GuestAccount, IssueOutcome, PendingCode, Share,
    ShareIndex, Store, StoreError,
};
use tokio::sync::Notify;

/// The embedded store, with a gate in `check_code`: after the store step, it tells the
/// test and waits to be let go.
struct HeldStore {
    inner: EmbeddedStore,
    checked: Arc<Notify>,
    proceed: Arc<Notify>,
}

#[async_trait]
impl Store for HeldStore {
    async fn all_shares(&self) -> Result<Vec<Share>, StoreError> {
        self.inner.all_shares().await
    }
    async fn share(&self, id: &str) -> Result<Option<Share>, StoreError> {
        self.inner.share(id).await
    }
    async fn share_by_token(&self, h: &str) -> Result<Option<Share>, StoreError> {
        self.inner.share_by_token(h).await
    }
    async fn create_share(&self, share: &Share, h: &str) -> Result<(), StoreError> {
        self.inner.create_share(share, h).await
    }
    async fn revoke(&self, id: &str, by: &str, now: u64) -> Result<Option<Share>, StoreError> {
        self.inner.revoke(id, by, now).await
    }
    async fn issue_code(
        &self,
        id: &str,
        code: PendingCode,
        now: u64,
        limits: CodeLimits,
    ) -> Result<IssueOutcome, StoreError> {
        self.inner.issue_code(id, code, now, limits).await
    }
    async fn check_code(
        &self,
        id: &str,
        mac: &str,
        now: u64,
        limits: CodeLimits,
    ) -> Result<CodeCheck, StoreError> {
        let outcome = self.inner.check_code(id, mac, now, limits).await;
        self.checked.notify_one();
        self.proceed.notified().await;
        outcome
    }
    async fn count_verify(&self, client: &str, now: u64) -> Result<u32, StoreError> {
        self.inner.count_verify(client, now).await
    }
    async fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        self.inner.touch(id, at).await
    }
    async fn create_guest(&self, g: &GuestAccount) -> Result<bool, StoreError> {
        self.inner.create_guest(g).await
    }
    async fn guest(&self, email: &str) -> Result<Option<GuestAccount>, StoreError> {
        self.inner.guest(email).await
    }
    async fn all_guests(&self) -> Result<Vec<GuestAccount>, StoreError> {
        self.inner.all_guests().await
    }
    async fn accept_guest(&self, email: &str, now: u64) -> Result<(), StoreError> {
        self.inner.accept_guest(email, now).await
    }
}

#[tokio::test]
async fn a_revocation_between_a_code_check_and_its_index_write_is_not_undone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("guestgate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[upstream]\naddress = \"127.0.0.1:1\"\n[mail]\noutbox = \"outbox\"\n[policies]\ndir = \"{}\"\n",
            common::repo().join("policies").display()
        ),
    )
    .expect("config");
    let config = Config::load_with_env(&cfg_path, Vec::new()).expect("config loads");
    let set = PolicySet::load_dir(&common::repo().join("policies")).expect("policies");
    let checked = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let store = HeldStore {
        inner: EmbeddedStore::open(&dir.path().join("state.redb")).expect("store"),
        checked: Arc::clone(&checked),
        proceed: Arc::clone(&proceed),
    };
    let index = Arc::new(ShareIndex::default());
    let shares = Arc::new(Shares::new(
        Arc::new(store),
        Arc::clone(&index),
        Arc::new(LettreMailer::new(&config.mail_from, &config.mail).expect("mailer")),
        CodeKey::derive(&[9u8; 32]),
        Arc::new(LivePolicies::fixed(set, "guestgate_session")),
        config.guest.clone(),
    ));
    let now = unix_now();
    let created = shares
        .create(
            NewShare {
                email: "expert@clinic.example".into(),
                case: "42".into(),
                version: "3".into(),
                profile: None,
                expires_in: None,
                notify: true,
                created_by: "Ada".into(),
                contact: None,
                owner: "case-app".into(),
                by_admin: true,
            },
            now,
        )
        .await
        .expect("share created");
    let eml = std::fs::read_dir(dir.path().join("outbox"))
        .expect("outbox")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .next()
        .expect("an invitation");
    let (code, _) = common::code_and_link(&eml);
    let share = created.share.clone();

    // The guest's right code: the store consumes it, then the check is held.
    let checking = {
        let shares = Arc::clone(&shares);
        tokio::spawn(async move { shares.check_code(&share, &code, now).await })
    };
    checked.notified().await;
    // Staff revoke while the check is in flight; the revocation completes.
    shares
        .revoke(&created.share.id, "staff", now, None)
        .await
        .expect("revoked");
    assert!(index.is_revoked(&created.share.id));
    // The check goes on and records what it read: an active share.
    proceed.notify_one();
    let outcome = checking.await.expect("task").expect("check");
    assert!(matches!(outcome, CodeCheck::Verified(_)), "{outcome:?}");
    assert!(
        !index.admit(&created.share.id, now + 1),
        "a late write turned a revoked share usable again"
    );
    assert!(index.is_revoked(&created.share.id));
}

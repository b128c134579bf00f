//! The share flows over the store: create a share and send its invitation, issue and
//! check one-time codes, revoke one share or every share of a guest, list shares. After
//! every store write the local [`ShareIndex`] is updated, so the proxy sees a revocation
//! on its very next request. Guest accounts, the guest directory and the stale-access
//! review are in `review.rs`; names people read are checked in `names.rs`.

pub mod names;
mod review;

pub use review::{GuestSummary, Stale};

use std::sync::Arc;
use std::time::Duration;

use crate::mail::{Invitation, Mailer};
use crate::otp::{self, CodeKey};
use crate::reload::LivePolicies;
use crate::stamp::{human, random_hex};
use crate::store::{
    CodeCheck, CodeLimits, IssueOutcome, PendingCode, Share, ShareIndex, ShareStatus, Store,
    StoreError,
};

/// Guest-facing pages and share/code lifetimes.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// Path prefix of guestgate's own pages (`/_guestgate`).
    pub prefix: String,
    /// Public origin and base, e.g. `https://cases.example.com` (links, Origin checks).
    pub public_url: String,
    /// Where a verified guest lands; `{case}` and `{version}` are filled in.
    pub landing: String,
    /// Code lifetime.
    pub code_lifetime: Duration,
    /// Share lifetime when the request names none.
    pub default_share_lifetime: Duration,
    /// Longest share lifetime accepted.
    pub max_share_lifetime: Duration,
    /// Minimum time between two code sends for one share.
    pub resend_interval: Duration,
    /// Code sends per share per hour.
    pub sends_per_hour: usize,
    /// Code checks per client IP per minute.
    pub verify_per_ip_per_minute: u32,
    /// `Host` values guests may use, lower-case (`public_url`'s and `public_hosts`, each
    /// also with the listener's default port spelled out).
    pub public_hosts: Vec<String>,
    /// `Lax` or `Strict`.
    pub same_site: crate::session::SameSite,
    /// Whom sharers may share with: anyone (an account is made on the first share), or
    /// only guests an admin created first.
    pub share_with: ShareWith,
}

/// `guest.share_with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareWith {
    /// Any email; the first share creates an invited account (the Sky flow).
    Anyone,
    /// Only emails with a guest account an admin created (the CaseScribe flow).
    ExistingGuests,
}

/// What a share lets the guest do, in words, without hedging (from the profile's `can`
/// and `cannot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// What the guest can do.
    pub can: String,
    /// What the guest cannot do.
    pub cannot: String,
}

/// Why a share request is refused; each maps to one API status and reason.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// Bad input: which field and why.
    #[error("{field}: {why}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// No such share (or not one the caller may see).
    #[error("no such share")]
    NotFound,
    /// It exists already.
    #[error("{0}")]
    Exists(String),
    /// The store failed: the caller fails closed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request to share a case version.
#[derive(Debug, Clone)]
pub struct NewShare {
    /// Guest email (normalised here).
    pub email: String,
    /// Case id.
    pub case: String,
    /// Version id.
    pub version: String,
    /// Profile (default `view-only`).
    pub profile: Option<String>,
    /// Lifetime in seconds (default from config).
    pub expires_in: Option<u64>,
    /// Send the invitation (default true).
    pub notify: bool,
    /// Who shared, as the guest sees it (a display name, checked).
    pub created_by: String,
    /// How the guest reaches the sharer (an email address).
    pub contact: Option<String>,
    /// The caller that owns it (API key, or key/staff).
    pub owner: String,
    /// An admin key: may share with an email that has no guest account yet, whatever
    /// `guest.share_with` says.
    pub by_admin: bool,
}

/// A created share, with its link (the code is never returned).
#[derive(Debug, Clone)]
pub struct Created {
    /// The share.
    pub share: Share,
    /// The link to send or copy.
    pub link: String,
    /// Whether the invitation email went out.
    pub email: EmailOutcome,
}

/// What happened to an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailOutcome {
    /// Sent (or written to the outbox).
    Sent,
    /// Not requested.
    Skipped,
    /// Too soon after the previous one.
    RateLimited {
        /// Seconds until allowed.
        retry_after: u64,
    },
    /// The transport failed; the guest can ask for a new code from the link.
    Failed(String),
    /// The share cannot receive codes (locked, revoked, expired).
    Unusable,
}

/// Filters for listing shares.
#[derive(Debug, Default, Clone)]
pub struct ShareFilter {
    /// Case id.
    pub case: Option<String>,
    /// Version id.
    pub version: Option<String>,
    /// Guest email.
    pub email: Option<String>,
    /// Effective status (`pending`, `active`, `revoked`, `expired`).
    pub status: Option<String>,
    /// Only shares this caller owns (sharer keys).
    pub owner: Option<String>,
}

/// The share service.
pub struct Shares {
    store: Arc<dyn Store>,
    index: Arc<ShareIndex>,
    mailer: Arc<dyn Mailer>,
    code_key: CodeKey,
    policies: Arc<LivePolicies>,
    cfg: GuestConfig,
    uses: UseLog,
}

/// Uses of shares waiting to be written to the store (for the stale review), drained by
/// at most one task at a time, one write after another: a burst of first requests from
/// many sessions must not become a burst of concurrent store writes (each a blocking
/// thread for the embedded store). Bounded; past the bound a use is simply not recorded
/// now, and the next hour's first request records it.
#[derive(Default)]
struct UseLog {
    pending: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    draining: std::sync::atomic::AtomicBool,
}

/// Uses held for writing at most.
const MAX_PENDING_USES: usize = 100_000;

/// Normalises and validates an email; it ends up in headers and audit lines, so the
/// accepted alphabet is deliberately narrow.
pub fn normalise_email(raw: &str) -> Result<String, ShareError> {
    let email = raw.trim().to_ascii_lowercase();
    let bad = |why: &str| ShareError::Invalid {
        field: "email",
        why: why.into(),
    };
    if email.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("not an email address"));
    };
    // `=?` would let a mail reader decode an encoded word inside the address
    // (`=?utf-8?q?ceo=40bank.example?=@evil.example` shown as ceo@bank.example).
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains("=?")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let domain_ok = domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !local_ok || !domain_ok {
        return Err(bad(
            "not an email address guestgate accepts (ASCII, one @, a dotted domain)",
        ));
    }
    Ok(email)
}

/// Case and version ids end up in paths and headers: ASCII letters, digits, `.`, `_`, `-`.
fn check_id(field: &'static str, v: &str) -> Result<(), ShareError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ShareError::Invalid {
            field,
            why: "1 to 128 ASCII letters, digits, `.`, `_` or `-`".into(),
        })
    }
}

impl Shares {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<ShareIndex>,
        mailer: Arc<dyn Mailer>,
        code_key: CodeKey,
        policies: Arc<LivePolicies>,
        cfg: GuestConfig,
    ) -> Self {
        Self {
            store,
            index,
            mailer,
            code_key,
            policies,
            cfg,
            uses: UseLog::default(),
        }
    }

    /// Records a guest's use of a share for the stale review: queued here, written by one
    /// background task (see [`UseLog`]).
    pub fn note_use(self: &Arc<Self>, id: &str, now: u64) {
        if let Ok(mut pending) = self.uses.pending.lock() {
            if pending.len() < MAX_PENDING_USES {
                pending.insert(id.to_string(), now);
            }
        }
        if !self
            .uses
            .draining
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.drain_uses().await });
        }
    }

    async fn drain_uses(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let batch = self
                .uses
                .pending
                .lock()
                .map(|mut p| std::mem::take(&mut *p))
                .unwrap_or_default();
            if batch.is_empty() {
                self.uses.draining.store(false, Ordering::Release);
                // A use queued between the take and the store above saw `draining` set
                // and spawned nothing: take it on, unless another task already has.
                let more = self
                    .uses
                    .pending
                    .lock()
                    .map(|p| !p.is_empty())
                    .unwrap_or(false);
                if more && !self.uses.draining.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return;
            }
            for (id, at) in batch {
                if let Err(e) = self.store.touch(&id, at).await {
                    tracing::warn!(error = %e, share = %id, "could not record the share's last use");
                }
            }
        }
    }

    /// Loads every share into the local index (start-up).
    pub async fn load_index(&self) -> Result<usize, StoreError> {
        let all = self.store.all_shares().await?;
        self.index.replace_all(&all);
        Ok(all.len())
    }

    /// The index the proxy reads.
    pub fn index(&self) -> &Arc<ShareIndex> {
        &self.index
    }

    /// Guest page settings.
    pub fn guest_config(&self) -> &GuestConfig {
        &self.cfg
    }

    fn limits(&self) -> CodeLimits {
        CodeLimits {
            max_attempts: otp::MAX_ATTEMPTS,
            failure_budget: otp::FAILURE_BUDGET,
            resend_interval: self.cfg.resend_interval.as_secs(),
            sends_per_hour: self.cfg.sends_per_hour,
        }
    }

    /// The link for a token.
    pub fn link(&self, token: &str) -> String {
        format!("{}{}/s/{token}", self.cfg.public_url, self.cfg.prefix)
    }

    /// What a profile allows, in words for the guest.
    pub fn access(&self, profile: &str) -> Access {
        match self.policies.current().set.get(profile) {
            Some(p) => Access {
                can: p.can.clone(),
                cannot: p.cannot.clone(),
            },
            None => Access {
                can: format!("use the {profile} access that was granted"),
                cannot: "see other cases or other versions".into(),
            },
        }
    }

    /// Creates a share and (unless told not to) sends the invitation with a code.
    pub async fn create(&self, req: NewShare, now: u64) -> Result<Created, ShareError> {
        let email = normalise_email(&req.email)?;
        check_id("case", &req.case)?;
        check_id("version", &req.version)?;
        let profile = req.profile.unwrap_or_else(|| "view-only".into());
        let policies = self.policies.current();
        if policies.set.get(&profile).is_none() {
            let known: Vec<_> = policies.set.profiles().map(|p| p.name.as_str()).collect();
            return Err(ShareError::Invalid {
                field: "profile",
                why: format!("no profile `{profile}` (known: {})", known.join(", ")),
            });
        }
        let lifetime = req
            .expires_in
            .unwrap_or(self.cfg.default_share_lifetime.as_secs());
        if lifetime < 60 || lifetime > self.cfg.max_share_lifetime.as_secs() {
            return Err(ShareError::Invalid {
                field: "expires_in",
                why: format!(
                    "between 60 and {} seconds",
                    self.cfg.max_share_lifetime.as_secs()
                ),
            });
        }
        let created_by =
            names::person_name(&req.created_by).map_err(|why| ShareError::Invalid {
                field: "created_by",
                why: format!("the sharer's name, as the guest reads it: {why}"),
            })?;
        let contact = req
            .contact
            .as_deref()
            .map(|c| {
                normalise_email(c).map_err(|_| ShareError::Invalid {
                    field: "contact",
                    why: "an email address guestgate accepts (ASCII, one @, a dotted domain)"
                        .into(),
                })
            })
            .transpose()?;
        self.admit_guest(&email, &req.owner, req.by_admin, now)
            .await?;
        let token = otp::new_link_token();
        let id = format!("sh_{}", random_hex(12));
        let share = Share {
            created_by,
            owner: req.owner,
            contact,
            ..Share::pending(
                &id,
                &email,
                [&req.case, &req.version, &profile],
                now,
                now + lifetime,
            )
        };
        self.store
            .create_share(&share, &otp::token_hash(&token))
            .await?;
        self.index.upsert(&share);
        let link = self.link(&token);
        let email = if req.notify {
            self.send_code(&share, &link, false, now).await?
        } else {
            EmailOutcome::Skipped
        };
        Ok(Created { share, link, email })
    }

    /// Issues a fresh code (replacing any pending one) and emails it.
    pub async fn send_code(
        &self,
        share: &Share,
        link: &str,
        resend: bool,
        now: u64,
    ) -> Result<EmailOutcome, ShareError> {
        let code = otp::new_code();
        let pending = PendingCode {
            mac: self.code_key.mac(&share.id, &code),
            expires_at: now + self.cfg.code_lifetime.as_secs(),
            attempts: 0,
        };
        match self
            .store
            .issue_code(&share.id, pending, now, self.limits())
            .await?
        {
            IssueOutcome::Issued(_) => {}
            IssueOutcome::RateLimited { retry_after } => {
                return Ok(EmailOutcome::RateLimited { retry_after })
            }
            IssueOutcome::Unusable => return Ok(EmailOutcome::Unusable),
        }
        let access = self.access(&share.profile);
        let inv = Invitation {
            to: &share.email,
            shared_by: &share.created_by,
            contact: share.contact.as_deref(),
            case: &share.case,
            version: &share.version,
            link,
            code: &code,
            code_minutes: self.cfg.code_lifetime.as_secs().div_ceil(60),
            share_ends: &human(share.expires_at, now),
            can: &access.can,
            cannot: &access.cannot,
            resend,
        };
        let outcome = match self.mailer.send(&inv).await {
            Ok(()) => EmailOutcome::Sent,
            Err(e) => EmailOutcome::Failed(e.to_string()),
        };
        let label = if outcome == EmailOutcome::Sent {
            "sent"
        } else {
            "failed"
        };
        crate::metrics::get()
            .invitations
            .with_label_values(&[label])
            .inc();
        Ok(outcome)
    }

    /// The usable share behind a link token (unknown, revoked and expired all = None).
    pub async fn by_token(&self, token: &str, now: u64) -> Result<Option<Share>, StoreError> {
        if !otp::plausible_token(token) {
            return Ok(None);
        }
        Ok(self
            .store
            .share_by_token(&otp::token_hash(token))
            .await?
            .filter(|s| s.usable(now)))
    }

    /// Checks what the guest typed; on success the share is active and in the index.
    pub async fn check_code(
        &self,
        share: &Share,
        typed: &str,
        now: u64,
    ) -> Result<CodeCheck, StoreError> {
        // Anything that is not 6 digits is checked as a (wrong) code all the same, so a
        // malformed guess costs a try like any other.
        let normalised = otp::normalise_input(typed).unwrap_or_default();
        let mac = self.code_key.mac(&share.id, &normalised);
        let outcome = self
            .store
            .check_code(&share.id, &mac, now, self.limits())
            .await?;
        if let CodeCheck::Verified(s) = &outcome {
            self.index.upsert(s);
            // The account is accepted at its first verified code. The guest is in either
            // way; a failure here only leaves the directory saying "invited".
            if let Err(e) = self.store.accept_guest(&s.email, now).await {
                tracing::warn!(error = %e, share = %s.id, "could not mark the guest account accepted");
            }
        }
        Ok(outcome)
    }

    /// Re-reads one share from the store into the index; true if it is now usable.
    pub async fn refresh(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        match self.store.share(id).await? {
            Some(share) => {
                self.index.upsert(&share);
                Ok(share.status == ShareStatus::Active && share.usable(now))
            }
            None => Ok(false),
        }
    }

    /// Counts one code check from a client address this minute (shared by all replicas
    /// with Redis); returns the count so far.
    pub async fn count_verify(&self, client: &str, now: u64) -> Result<u32, StoreError> {
        self.store.count_verify(client, now).await
    }

    /// Revokes one share (idempotent). With `owner`, only a share that caller owns.
    pub async fn revoke(
        &self,
        id: &str,
        by: &str,
        now: u64,
        owner: Option<&str>,
    ) -> Result<Share, ShareError> {
        if owner.is_some() {
            self.get(id, owner).await?;
        }
        let share = self
            .store
            .revoke(id, by, now)
            .await?
            .ok_or(ShareError::NotFound)?;
        // Count revocations made by this call, not repeats of an earlier one.
        if share.revoked_at == Some(now) && share.revoked_by.as_deref() == Some(by) {
            crate::metrics::get().revocations.inc();
        }
        self.index.upsert(&share);
        Ok(share)
    }

    /// Revokes every share of a guest; returns the ones that were revoked by this call.
    pub async fn revoke_guest(
        &self,
        email: &str,
        by: &str,
        now: u64,
    ) -> Result<Vec<Share>, ShareError> {
        let email = normalise_email(email)?;
        let mut revoked = Vec::new();
        for s in self.store.all_shares().await? {
            if s.email == email && s.status != ShareStatus::Revoked {
                revoked.push(self.revoke(&s.id, by, now, None).await?);
            }
        }
        Ok(revoked)
    }

    /// One share; with `owner`, only if that caller owns it (else "no such share", so a
    /// sharer learns nothing of others' shares).
    pub async fn get(&self, id: &str, owner: Option<&str>) -> Result<Share, ShareError> {
        self.store
            .share(id)
            .await?
            .filter(|s| owner.is_none_or(|o| s.owner == o))
            .ok_or(ShareError::NotFound)
    }

    /// Records a guest's use of a share, for the stale-access review.
    pub async fn touch(&self, id: &str, now: u64) -> Result<(), StoreError> {
        self.store.touch(id, now).await
    }

    /// Shares matching a filter, newest first.
    pub async fn list(&self, f: &ShareFilter, now: u64) -> Result<Vec<Share>, ShareError> {
        let email = f.email.as_deref().map(normalise_email).transpose()?;
        let mut out: Vec<Share> = self
            .store
            .all_shares()
            .await?
            .into_iter()
            .filter(|s| f.case.as_ref().is_none_or(|c| &s.case == c))
            .filter(|s| f.version.as_ref().is_none_or(|v| &s.version == v))
            .filter(|s| email.as_ref().is_none_or(|e| &s.email == e))
            .filter(|s| f.owner.as_ref().is_none_or(|o| &s.owner == o))
            .filter(|s| {
                f.status
                    .as_ref()
                    .is_none_or(|st| s.effective_status(now) == st)
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_narrow() {
        assert_eq!(
            normalise_email("  Guest.Name+x@Clinic.Example ").unwrap(),
            "guest.name+x@clinic.example"
        );
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.c",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            "a@b.c\r\nX: y",
            "é@b.c",
            "a@b.c,d@e.f",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_path_safe() {
        for ok in ["42", "case-42_v.1", "A1"] {
            assert!(check_id("case", ok).is_ok());
        }
        for bad in [
            "",
            ".",
            "..",
            "4/2",
            "4 2",
            "42%2f",
            "４２",
            &"x".repeat(129),
        ] {
            assert!(check_id("case", bad).is_err(), "{bad:?}");
        }
    }
}

//! The staff side beyond single shares: guest accounts (invited until their first verified
//! code, accepted after), the guest directory (names, status, shares, last access), and
//! the stale-access review ("periodically review active shares for stale access"): shares
//! still usable but not used for a while, or never accepted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{names, normalise_email, ShareError, ShareWith, Shares};
use crate::stamp::rfc3339;
use crate::store::{GuestAccount, GuestStatus, Share, ShareStatus};

/// One guest in the directory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GuestSummary {
    /// Email.
    pub email: String,
    /// First name ("" when the account came from a share).
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// `invited`, `accepted`, or `no_account` (shares older than accounts).
    pub status: &'static str,
    /// Active (verified, unexpired, unrevoked) shares.
    pub active_shares: usize,
    /// Pending (not yet verified) shares.
    pub pending_shares: usize,
    /// Last request through any of their shares (RFC 3339), if any.
    pub last_access: Option<String>,
}

/// A share the review flags.
#[derive(Debug, Clone)]
pub struct Stale {
    /// The share.
    pub share: Share,
    /// `never_accepted` or `unused`.
    pub why: &'static str,
    /// Its last use (unix seconds), 0 for never.
    pub last_used: u64,
}

impl Shares {
    /// The latest use of a share known here: this instance's live value, or the last one
    /// written to the store (by any replica, at most an hour old).
    pub fn last_used(&self, s: &Share) -> u64 {
        self.index
            .last_access(&s.id)
            .max(s.last_used_at.unwrap_or(0))
    }

    /// Lets a share be made for `email`: an existing account, or one created now
    /// (invited) when the caller may share with new guests.
    pub(super) async fn admit_guest(
        &self,
        email: &str,
        owner: &str,
        by_admin: bool,
        now: u64,
    ) -> Result<(), ShareError> {
        if self.store.guest(email).await?.is_some() {
            return Ok(());
        }
        if !by_admin && self.cfg.share_with == ShareWith::ExistingGuests {
            return Err(ShareError::Invalid {
                field: "email",
                why: "no guest account for this email: shares go only to existing guests here \
                      (guest.share_with); an admin creates the account first"
                    .into(),
            });
        }
        self.store
            .create_guest(&GuestAccount::invited(email, "", "", owner, now))
            .await?;
        Ok(())
    }

    /// Creates a guest account (invited until their first verified code).
    pub async fn create_guest(
        &self,
        email: &str,
        first_name: &str,
        last_name: &str,
        by: &str,
        now: u64,
    ) -> Result<GuestAccount, ShareError> {
        let email = normalise_email(email)?;
        let name = |field, raw: &str| {
            names::person_name(raw).map_err(|why| ShareError::Invalid { field, why })
        };
        let account = GuestAccount::invited(
            &email,
            &name("first_name", first_name)?,
            &name("last_name", last_name)?,
            by,
            now,
        );
        if self.store.create_guest(&account).await? {
            Ok(account)
        } else {
            Err(ShareError::Exists(format!(
                "a guest account for {email} exists already"
            )))
        }
    }

    /// Every guest: accounts and the emails shares were made for, with names, status,
    /// share counts and last access.
    pub async fn guests(&self, now: u64) -> Result<Vec<GuestSummary>, ShareError> {
        let mut by_email: BTreeMap<String, (GuestSummary, u64)> = BTreeMap::new();
        let entry = |email: &str| {
            (
                GuestSummary {
                    email: email.to_string(),
                    first_name: String::new(),
                    last_name: String::new(),
                    status: "no_account",
                    active_shares: 0,
                    pending_shares: 0,
                    last_access: None,
                },
                0,
            )
        };
        for a in self.store.all_guests().await? {
            let (g, _) = by_email
                .entry(a.email.clone())
                .or_insert_with(|| entry(&a.email));
            g.first_name = a.first_name;
            g.last_name = a.last_name;
            g.status = match a.status {
                GuestStatus::Invited => "invited",
                GuestStatus::Accepted => "accepted",
            };
        }
        for s in self.store.all_shares().await? {
            let (g, last) = by_email
                .entry(s.email.clone())
                .or_insert_with(|| entry(&s.email));
            match s.effective_status(now) {
                "active" => g.active_shares += 1,
                "pending" => g.pending_shares += 1,
                _ => {}
            }
            *last = (*last).max(self.last_used(&s));
        }
        Ok(by_email
            .into_values()
            .map(|(mut g, last)| {
                g.last_access = (last > 0).then(|| rfc3339(last));
                g
            })
            .collect())
    }

    /// Usable shares not used for `unused_for` seconds (by their last request, or their
    /// acceptance when no request is known), or never accepted that long after creation.
    /// With `owner`, only that caller's shares.
    pub async fn stale(
        &self,
        unused_for: u64,
        now: u64,
        owner: Option<&str>,
    ) -> Result<Vec<Stale>, ShareError> {
        let cutoff = now.saturating_sub(unused_for);
        let mut out: Vec<Stale> = self
            .store
            .all_shares()
            .await?
            .into_iter()
            .filter(|s| s.usable(now) && !s.locked)
            .filter(|s| owner.is_none_or(|o| s.owner == o))
            .filter_map(|s| {
                let last_used = self.last_used(&s);
                let why = match (s.status, s.accepted_at) {
                    (ShareStatus::Pending, _) if s.created_at <= cutoff => "never_accepted",
                    (ShareStatus::Active, accepted)
                        if last_used.max(accepted.unwrap_or(0)) <= cutoff =>
                    {
                        "unused"
                    }
                    _ => return None,
                };
                Some(Stale {
                    share: s,
                    why,
                    last_used,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.last_used
                .cmp(&b.last_used)
                .then(a.share.id.cmp(&b.share.id))
        });
        Ok(out)
    }

    /// Revokes what [`Shares::stale`] lists; returns the shares revoked.
    pub async fn revoke_stale(
        &self,
        unused_for: u64,
        by: &str,
        now: u64,
        owner: Option<&str>,
    ) -> Result<Vec<Share>, ShareError> {
        let mut revoked = Vec::new();
        for s in self.stale(unused_for, now, owner).await? {
            revoked.push(self.revoke(&s.share.id, by, now, owner).await?);
        }
        Ok(revoked)
    }
}

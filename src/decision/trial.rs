//! Requests tried without a proxy, through the very [`Gate::decide`] the proxy calls:
//! `policy explain` (one request) and `policy test` (tables of them) build a gate from the
//! real configuration (mode, limits, public hosts, cookie names) and the policy files,
//! give it one share in the state a case asks for, mint a real session for it, and decide
//! a request head built from the method, target and headers. What they report is what the
//! live proxy would do.

use std::sync::Arc;

use super::{Gate, RequestFacts, Settings, Verdict};
use crate::policy::PolicySet;
use crate::reload::LivePolicies;
use crate::session::{SessionKeys, ShareGrant};
use crate::stamp::{random_hex, unix_now};
use crate::store::{Share, ShareIndex, ShareStatus};

/// The state of the share a trial's session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareState {
    /// Verified and usable.
    Active,
    /// Revoked by staff.
    Revoked,
    /// Past its end (the session then ends with it).
    Expired,
    /// Created, the code not yet entered.
    Pending,
}

/// The share a trial's session holds.
#[derive(Debug, Clone)]
pub struct TrialShare {
    /// Case.
    pub case: String,
    /// Version.
    pub version: String,
    /// Profile.
    pub profile: String,
    /// State.
    pub state: ShareState,
}

/// One request to try.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Method.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// Header lines (`Name: value`); a `Host` here replaces the public host.
    pub headers: Vec<String>,
    /// The share the guest's session holds; `None` for a request without a session.
    pub share: Option<TrialShare>,
}

/// What guestgate does with a trial: the decision, its reason, the rule and forwarded
/// target of an allow, and for a refusal what did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `allow`, `pass`, `deny`, `reject` or `unavailable`.
    pub decision: &'static str,
    /// The reason label.
    pub reason: &'static str,
    /// The status a refusal is answered with (0 when forwarded).
    pub status: u16,
    /// The rule that allowed.
    pub rule: Option<String>,
    /// The target the app would receive.
    pub forwards: Option<String>,
    /// For a refusal, the closest rule and what did not fit.
    pub detail: Option<String>,
}

/// Checks a trial's header line: `Name: value`, a token name, no line breaks (an empty
/// or broken line would end the request head early and silently drop what follows, the
/// session cookie included).
pub fn check_header_line(line: &str) -> Result<(), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header `{line}` is not `Name: value`"))?;
    if http::HeaderName::from_bytes(name.trim().as_bytes()).is_err() || name.trim() != name {
        return Err(format!("header `{line}`: `{name}` is not a header name"));
    }
    if value.contains(['\r', '\n']) {
        return Err(format!("header `{name}`: the value holds a line break"));
    }
    Ok(())
}

/// A gate for trials.
pub struct TrialGate {
    gate: Gate,
    host: String,
}

const EMAIL: &str = "trial@guestgate.test";

fn share_id(state: ShareState) -> &'static str {
    match state {
        ShareState::Active => "trial-active",
        ShareState::Revoked => "trial-revoked",
        ShareState::Expired => "trial-expired",
        ShareState::Pending => "trial-pending",
    }
}

impl TrialGate {
    /// The live gate's settings and policies, a throwaway signing key, and one share in
    /// each state.
    pub fn new(settings: Settings, policies: PolicySet) -> Self {
        let index = ShareIndex::default();
        let now = unix_now();
        for (state, status, expires_at) in [
            (ShareState::Active, ShareStatus::Active, now + 3600),
            (ShareState::Revoked, ShareStatus::Revoked, now + 3600),
            (
                ShareState::Expired,
                ShareStatus::Active,
                now.saturating_sub(60),
            ),
            (ShareState::Pending, ShareStatus::Pending, now + 3600),
        ] {
            // Scope lives in the session's grant; the index only answers "usable?".
            index.upsert(&Share {
                status,
                ..Share::pending(share_id(state), EMAIL, ["", "", ""], now, expires_at)
            });
        }
        let host = settings
            .public_hosts
            .first()
            .cloned()
            .unwrap_or_else(|| "guestgate.test".into());
        let secret = random_hex(32);
        let cookie_name = settings.cookie_name.clone();
        let gate = Gate {
            settings,
            keys: SessionKeys::new(secret.as_bytes(), &[], "guestgate", "guestgate"),
            policies: Arc::new(LivePolicies::fixed(policies, &cookie_name)),
            index: Arc::new(index),
        };
        Self { gate, host }
    }

    /// The compiled policies trials run against.
    pub fn policies(&self) -> Arc<crate::reload::Loaded> {
        self.gate.policies.current()
    }

    /// Decides a trial as the live proxy would.
    pub fn decide(&self, trial: &Trial) -> Outcome {
        let now = unix_now();
        let mut head = format!("{} {} HTTP/1.1\r\n", trial.method, trial.target);
        let has_host = trial.headers.iter().any(|h| {
            h.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("host"))
        });
        if !has_host {
            head.push_str(&format!("Host: {}\r\n", self.host));
        }
        for h in &trial.headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        if let Some(share) = &trial.share {
            let exp = match share.state {
                ShareState::Expired => now.saturating_sub(60),
                _ => now + 3600,
            };
            let grant = ShareGrant {
                id: share_id(share.state).into(),
                case: share.case.clone(),
                version: share.version.clone(),
                profile: share.profile.clone(),
                exp,
            };
            // mint() never lets a session outlive its share, as at verification.
            let token = self
                .gate
                .keys
                .mint(EMAIL, vec![grant], 3600)
                .unwrap_or_default();
            head.push_str(&format!(
                "Cookie: {}={token}\r\n",
                self.gate.settings.wire_cookie_name
            ));
        }
        head.push_str("\r\n");
        let lines: Vec<&str> = head
            .split("\r\n")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        let cookies: Vec<&[u8]> = lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| v.trim().as_bytes())
            .collect();
        let names: Vec<String> = lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, _)| k.trim().to_ascii_lowercase())
            .collect();
        let facts = RequestFacts {
            raw_head: head.as_bytes(),
            method: &trial.method,
            cookies,
            header_names: names.iter().map(String::as_str).collect(),
            http2: false,
            authority: None,
            frames_carry_body: false,
        };
        let verdict = self.gate.decide(&facts, now);
        let status = verdict.refusal().map_or(0, |r| r.answer.status());
        let (rule, forwards, detail) = match &verdict {
            Verdict::Allow(a) => (a.guest.rule.clone(), Some(a.target.to_string()), None),
            Verdict::Pass { .. } => (None, Some(trial.target.clone()), None),
            Verdict::Refuse { detail, .. } => (None, None, detail.clone()),
        };
        Outcome {
            decision: verdict.decision(),
            reason: verdict.reason().label(),
            status,
            rule,
            forwards,
            detail,
        }
    }
}

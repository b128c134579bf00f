//! The per-request decision: raw head + method + cookies → one [`Verdict`]. Framing,
//! session, host, target canonicalisation and policy are applied here in DESIGN §1
//! order; nothing here does I/O, so the whole pipeline is table-testable.
//!
//! A request that presents guestgate's cookie, in whatever state, is a guest request:
//! it is allowed by a rule or refused, never passed through as one of the app's users.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::framing::{self, Body};
use crate::header_names;
use crate::policy::{Bindings, DenyReason, Scope, Var};
use crate::reload::LivePolicies;
use crate::session::{self, CookieLookup, SessionKeys, ShareGrant};
use crate::store::ShareIndex;
use crate::target::CanonicalTarget;

/// What happens to requests that carry no valid guest session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// They pass through untouched (the app's own users share the host).
    Mixed,
    /// They are denied (a host dedicated to guests).
    GuestOnly,
}

/// What guestgate does with a request.
#[derive(Debug)]
pub enum Verdict {
    /// Refused for its shape (framing, host or target): 400, 413, 414, 421 or 501,
    /// connection closed.
    Reject {
        /// HTTP status.
        status: u16,
        /// Fixed reason label.
        reason: &'static str,
        /// The guest, when the request carried a valid session.
        guest: Option<Guest>,
    },
    /// Denied by policy (or no session in guest-only mode): 403.
    Deny {
        /// Fixed reason label.
        reason: &'static str,
        /// The guest, when known.
        guest: Option<Guest>,
        /// Canonical decoded path, when the target was canonical.
        path: Option<String>,
        /// The body the request announced (never read: the connection is then closed).
        body: Body,
    },
    /// Not a guest request (no guestgate cookie); mixed mode forwards it with guestgate's
    /// owned headers stripped and its framing rewritten.
    PassThrough {
        /// Always `no_session`.
        reason: &'static str,
        /// The body, framed by guestgate.
        body: Body,
    },
    /// Allowed for a guest.
    Allow(Box<AllowedRequest>),
    /// A guest request while share state is stale: 503, fail closed.
    Unavailable,
}

impl Verdict {
    /// `allow`, `deny`, `reject` or `pass`.
    pub fn decision(&self) -> &'static str {
        match self {
            Self::Reject { .. } => "reject",
            Self::Deny { .. } => "deny",
            Self::PassThrough { .. } => "pass",
            Self::Allow(_) => "allow",
            Self::Unavailable => "unavailable",
        }
    }

    /// The fixed reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Reject { reason, .. }
            | Self::Deny { reason, .. }
            | Self::PassThrough { reason, .. } => reason,
            Self::Allow(_) => "rule",
            Self::Unavailable => "store_stale",
        }
    }
}

/// Who a guest request is from, for audit.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Verified email.
    pub email: String,
    /// Session token id.
    pub jti: String,
    /// The share the decision is about (the allowing one, or the closest miss).
    pub share: Option<ShareGrant>,
    /// The rule that allowed, when one did.
    pub rule: Option<String>,
}

/// Everything needed to forward an allowed guest request.
#[derive(Debug)]
pub struct AllowedRequest {
    /// The guest, share and rule.
    pub guest: Guest,
    /// Decoded canonical path that matched.
    pub path: String,
    /// The encoded target sent upstream: the match (or its rewrite), canonical.
    pub target: http::Uri,
    /// Headers the profile sets, rendered.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers the profile removes.
    pub remove_headers: Vec<HeaderName>,
    /// The body, framed by guestgate.
    pub body: Body,
}

/// What the decision looks at, borrowed from the live request.
pub struct RequestFacts<'a> {
    /// Raw request head as sent (request line and header lines).
    pub raw_head: &'a [u8],
    /// Method as sent.
    pub method: &'a str,
    /// Values of every `Cookie` header.
    pub cookies: Vec<&'a [u8]>,
    /// Names of all headers (lower-case), to spot method overrides.
    pub header_names: Vec<&'a str>,
    /// The request came over HTTP/2.
    pub http2: bool,
    /// HTTP/2 only: the `:authority`, which stands in for `Host`.
    pub authority: Option<&'a [u8]>,
    /// HTTP/2 only: whether DATA frames follow the HEADERS frame. On HTTP/2 a body is
    /// known from the frames, not from the headers.
    pub frames_carry_body: bool,
}

/// The decision engine: keys, policies and the few settings that shape decisions.
pub struct Gate {
    /// Mixed or guest-only.
    pub mode: Mode,
    /// Longest accepted target.
    pub max_target_length: usize,
    /// Largest `Content-Length` accepted.
    pub max_content_length: u64,
    /// Forward bodies on GET, HEAD, DELETE, OPTIONS and TRACE for pass-through requests
    /// (guest requests never).
    pub forward_bodiless_bodies: bool,
    /// Forward chunked request bodies; `false` for apps that cannot read them (411 instead).
    pub chunked_bodies: bool,
    /// `Host` values guests may use, lower-case (`host`, and `host:port` for the default port).
    pub public_hosts: Vec<String>,
    /// guestgate's cookie name, without prefix; every spelling of it is guestgate's.
    pub cookie_name: String,
    /// The cookie name as guestgate sets it (`__Host-` prefixed over TLS): the only
    /// spelling that holds a session.
    pub wire_cookie_name: String,
    /// Token keys.
    pub keys: SessionKeys,
    /// Compiled policies (swapped on reload).
    pub policies: Arc<LivePolicies>,
    /// Local share states: the allow-list of usable shares.
    pub index: Arc<ShareIndex>,
}

struct IdentityBindings<'a> {
    email: &'a str,
    share: &'a ShareGrant,
    rule: &'a str,
}

impl Bindings for IdentityBindings<'_> {
    fn value(&self, var: &Var) -> &str {
        match var {
            Var::GuestEmail => self.email,
            Var::ShareId => &self.share.id,
            Var::Case => &self.share.case,
            Var::Version => &self.share.version,
            Var::Profile => &self.share.profile,
            Var::Rule => self.rule,
            // Captures are not allowed in header templates (checked at compile).
            Var::Capture(_) => "",
        }
    }
}

/// Why one share did not allow the request, ranked for the closest-miss report: a
/// share whose rules would allow the request but which is revoked or expired explains
/// a denial better than any other share's policy miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Miss {
    ProfileUnknown,
    Policy(DenyReason),
    ShareExpired,
    ShareInactive,
}

impl Miss {
    fn label(self) -> &'static str {
        match self {
            Self::ShareInactive => "share_inactive",
            Self::ShareExpired => "share_expired",
            Self::ProfileUnknown => "profile_unknown",
            Self::Policy(r) => r.label(),
        }
    }
}

impl Gate {
    /// Decides one request.
    pub fn decide(&self, facts: &RequestFacts<'_>, now: u64) -> Verdict {
        let reject = |e: framing::FramingError, guest| Verdict::Reject {
            status: e.status(),
            reason: e.reason(),
            guest,
        };
        let head = match framing::inspect(facts.raw_head, facts.http2, self.max_content_length) {
            Ok(h) => h,
            Err(e) => return reject(e, None),
        };
        let body = if facts.http2 {
            match (facts.frames_carry_body, head.body) {
                (false, _) => Body::None,
                (true, Body::Length(n)) => Body::Length(n),
                (true, _) => Body::Chunked,
            }
        } else {
            head.body
        };
        if body == Body::Chunked && !self.chunked_bodies {
            return reject(framing::FramingError::LengthRequired, None);
        }
        let body_refused = body.is_some() && framing::is_bodiless(facts.method);

        let presented = session::find_cookie(
            facts.cookies.iter().copied(),
            &self.cookie_name,
            &self.wire_cookie_name,
        );
        if presented == CookieLookup::Absent {
            if body_refused && !self.forward_bodiless_bodies {
                return reject(framing::FramingError::BodyOnBodilessMethod, None);
            }
            return match self.mode {
                Mode::Mixed => Verdict::PassThrough {
                    reason: "no_session",
                    body,
                },
                Mode::GuestOnly => Verdict::Deny {
                    reason: "no_session",
                    guest: None,
                    path: None,
                    body,
                },
            };
        }
        // From here on this is a guest request, whatever state its cookie is in.
        if body_refused {
            return reject(framing::FramingError::BodyOnBodilessMethod, None);
        }
        let claims = match presented {
            CookieLookup::One(token) => self.keys.verify(token).map_err(|e| e.reason()),
            CookieLookup::Misnamed => Err("session_misnamed"),
            _ => Err("session_ambiguous"),
        };
        let claims = match claims {
            Ok(c) => c,
            Err(reason) => {
                return Verdict::Deny {
                    reason,
                    guest: None,
                    path: None,
                    body,
                }
            }
        };
        if !self.index.is_fresh() {
            // The shared store has been out of reach longer than the bound: a revocation
            // may be unseen, so no guest request is served on this state.
            return Verdict::Unavailable;
        }
        let mut guest = Guest {
            email: claims.sub,
            jti: claims.jti,
            share: None,
            rule: None,
        };
        let host = head.host.or(facts.authority).unwrap_or_default();
        if !self.is_public_host(host) {
            return Verdict::Reject {
                status: 421,
                reason: "host_not_public",
                guest: Some(guest),
            };
        }

        let target = match CanonicalTarget::parse(head.target, self.max_target_length) {
            Ok(t) => t,
            Err(e) => {
                return Verdict::Reject {
                    status: e.status(),
                    reason: e.reason(),
                    guest: Some(guest),
                }
            }
        };
        let deny = |reason, guest| Verdict::Deny {
            reason,
            guest: Some(guest),
            path: Some(target.path.clone()),
            body,
        };
        if target.has_method_override_key()
            || facts
                .header_names
                .iter()
                .any(|n| header_names::is_method_override(n.as_bytes()))
        {
            return deny("method_override", guest);
        }

        // A session none of whose shares can be used any more has ended, wherever it goes.
        if !claims
            .shares
            .iter()
            .any(|s| s.exp > now && self.index.usable(&s.id, now))
        {
            let all_expired = claims.shares.iter().all(|s| s.exp <= now);
            guest.share = claims
                .shares
                .iter()
                .find(|s| s.exp > now)
                .or(claims.shares.first())
                .cloned();
            let reason = if all_expired {
                "share_expired"
            } else {
                "share_inactive"
            };
            return deny(reason, guest);
        }

        // One generation of policies for the whole decision, even if a reload lands now.
        let policies = self.policies.current();
        let mut closest: Option<(Miss, &ShareGrant)> = None;
        for share in &claims.shares {
            let outcome: Result<(), Miss> = match policies.set.get(&share.profile) {
                None => Err(Miss::ProfileUnknown),
                Some(profile) => {
                    let scope = Scope {
                        case: &share.case,
                        version: &share.version,
                    };
                    match profile.evaluate(facts.method, &target, scope) {
                        Err(reason) => Err(Miss::Policy(reason)),
                        Ok(_) if share.exp <= now => Err(Miss::ShareExpired),
                        // Revoked, unknown to this instance, or not yet verified: never allow.
                        Ok(_) if !self.index.admit(&share.id, now) => Err(Miss::ShareInactive),
                        Ok(allowed) => {
                            let rule = &profile.rules[allowed.rule];
                            let path = allowed.rewritten_path.as_deref().unwrap_or(&target.path);
                            let forward = target.to_target_with_path(path);
                            let Ok(uri) = forward.parse::<http::Uri>() else {
                                // Canonical targets always parse; refuse rather than guess if not.
                                return deny("target_unforwardable", guest);
                            };
                            let bindings = IdentityBindings {
                                email: &guest.email,
                                share,
                                rule: &rule.name,
                            };
                            let mut set_headers = Vec::with_capacity(profile.set_headers.len());
                            for (name, template) in &profile.set_headers {
                                match HeaderValue::from_str(&template.render(&bindings)) {
                                    Ok(v) => set_headers.push((name.clone(), v)),
                                    Err(_) => return deny("header_value_invalid", guest),
                                }
                            }
                            guest.share = Some(share.clone());
                            guest.rule = Some(rule.name.clone());
                            return Verdict::Allow(Box::new(AllowedRequest {
                                guest,
                                path: target.path.clone(),
                                target: uri,
                                set_headers,
                                remove_headers: profile.remove_headers.clone(),
                                body,
                            }));
                        }
                    }
                }
            };
            if let Err(miss) = outcome {
                if closest.is_none_or(|(m, _)| miss > m) {
                    closest = Some((miss, share));
                }
            }
        }
        let reason = closest.map_or("no_rule", |(m, _)| m.label());
        guest.share = closest.map(|(_, s)| s.clone());
        deny(reason, guest)
    }

    /// Whether a `Host` (or `:authority`) is one guests may use; compared without case.
    fn is_public_host(&self, host: &[u8]) -> bool {
        self.public_hosts
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
    }
}

//! The per-request decision: raw head + method + cookies → one [`Verdict`]. Framing,
//! session, host, target canonicalisation and policy are applied here in DESIGN §1
//! order; nothing here does I/O, so the whole pipeline is table-testable.
//!
//! A request that presents guestgate's cookie, in whatever state, is a guest request:
//! it is allowed by a rule or refused, never passed through as one of the app's users.

pub mod table;
pub mod trial;

use std::sync::Arc;

use http::HeaderName;

use crate::framing::{self, Body};
use crate::header_names;
use crate::policy::{Bindings, DenyReason, Missed, PolicySet, ResponsePlan, Scope, Var};
use crate::reason::{Answer, Reason};
use crate::refusal::Refusal;
use crate::reload::LivePolicies;
use crate::session::{self, CookieLookup, SessionKeys, ShareGrant};
use crate::store::ShareIndex;
use crate::target::CanonicalTarget;

/// What happens to requests that carry no valid guest session (`mode` in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// They pass through untouched (the app's own users share the host).
    Mixed,
    /// They are denied (a host dedicated to guests).
    GuestOnly,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mixed => "mixed",
            Mode::GuestOnly => "guest-only",
        }
    }
}

/// What guestgate does with a request.
#[derive(Debug)]
pub enum Verdict {
    /// Allowed for a guest: forwarded with guestgate's headers and canonical target.
    Allow(Box<AllowedRequest>),
    /// Not a guest request (no guestgate cookie) in mixed mode: forwarded with
    /// guestgate's owned headers stripped and its framing rewritten.
    Pass {
        /// The body, framed by guestgate.
        body: Body,
    },
    /// Refused: guestgate answers, nothing reaches the app.
    Refuse {
        /// Why (its answer gives the status and page).
        reason: Reason,
        /// The guest, when the request carried a valid session.
        guest: Option<Box<Guest>>,
        /// Canonical decoded path, when the target was canonical.
        path: Option<String>,
        /// What exactly did not fit, in words (the closest rule and why it missed): for
        /// the audit line and `policy explain`, never for the client.
        detail: Option<String>,
        /// The body the request announced (never read: the connection is then closed).
        body: Body,
    },
}

impl Verdict {
    /// A refusal for a reason, before anything about the guest is known.
    fn refuse(reason: impl Into<Reason>, body: Body) -> Self {
        Self::Refuse {
            reason: reason.into(),
            guest: None,
            path: None,
            detail: None,
            body,
        }
    }

    /// The fixed reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Allow(_) => Reason::Rule,
            Self::Pass { .. } => Reason::NoSession,
            Self::Refuse { reason, .. } => *reason,
        }
    }

    /// The audit decision: `allow`, `pass`, `deny`, `reject` or `unavailable`.
    pub fn decision(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allow",
            Self::Pass { .. } => "pass",
            Self::Refuse { reason, .. } => reason.answer().map_or("deny", |a| a.decision()),
        }
    }

    /// How guestgate answers a refused request (`None` when it is forwarded): the one
    /// mapping from verdict to status, page and connection handling.
    pub fn refusal(&self) -> Option<Refusal> {
        let Self::Refuse { reason, body, .. } = self else {
            return None;
        };
        let answer = reason.answer().unwrap_or(Answer::Forbidden);
        Some(Refusal {
            answer,
            reason: *reason,
            // An unread body must not be taken for the next request on the connection.
            close: answer.closes() || body.is_some(),
        })
    }

    /// The guest a verdict is about, if the request carried a valid session.
    pub fn guest(&self) -> Option<&Guest> {
        match self {
            Self::Allow(a) => Some(&a.guest),
            Self::Refuse { guest, .. } => guest.as_deref(),
            Self::Pass { .. } => None,
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
    /// On a refusal, every share the session holds (the refusal page's ways back);
    /// empty on an allow, which never needs them.
    pub held: Vec<ShareGrant>,
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
    /// Headers the profile sets, rendered (once per share and rule, then shared).
    pub set_headers: crate::policy::RenderedHeaders,
    /// Headers the profile removes.
    pub remove_headers: Vec<HeaderName>,
    /// What the profile does to the app's response (headers, banner).
    pub response: Arc<ResponsePlan>,
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

/// The few settings that shape decisions (the rest of the config never does).
#[derive(Debug, Clone)]
pub struct Settings {
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
}

impl Default for Settings {
    /// guestgate's defaults, for trials without a config file.
    fn default() -> Self {
        Self {
            mode: Mode::Mixed,
            max_target_length: 4096,
            max_content_length: 1 << 30,
            forward_bodiless_bodies: false,
            chunked_bodies: true,
            public_hosts: vec!["guestgate.test".into()],
            cookie_name: "guestgate_session".into(),
            wire_cookie_name: "__Host-guestgate_session".into(),
        }
    }
}

/// The decision engine: keys, policies and the settings that shape decisions.
pub struct Gate {
    /// What shapes decisions.
    pub settings: Settings,
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
#[derive(Debug, Clone)]
enum Miss<'a> {
    ProfileUnknown,
    Policy(Missed<'a>),
    ShareExpired,
    ShareInactive,
}

impl Miss<'_> {
    /// Closer misses rank higher.
    fn rank(&self) -> (u8, Option<DenyReason>) {
        match self {
            Self::ProfileUnknown => (0, None),
            Self::Policy(m) => (1, Some(m.reason)),
            Self::ShareExpired => (2, None),
            Self::ShareInactive => (3, None),
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Self::ShareInactive => Reason::ShareInactive,
            Self::ShareExpired => Reason::ShareExpired,
            Self::ProfileUnknown => Reason::ProfileUnknown,
            Self::Policy(m) => m.reason.into(),
        }
    }

    /// The miss in words, for the audit line and `policy explain`.
    fn describe(&self, share: &ShareGrant, policies: &PolicySet) -> String {
        let scope = format!("case {}, version {}", share.case, share.version);
        match self {
            Self::ProfileUnknown => format!("profile `{}` is not loaded", share.profile),
            Self::Policy(m) => match policies.get(&share.profile) {
                Some(p) => format!("profile `{}`, {}", p.name, m.describe(p)),
                None => m.why.to_string(),
            },
            Self::ShareExpired => format!("the share of {scope} has expired"),
            Self::ShareInactive => {
                format!("the share of {scope} is revoked, or not yet active here")
            }
        }
    }
}

impl Gate {
    /// Decides one request.
    pub fn decide(&self, facts: &RequestFacts<'_>, now: u64) -> Verdict {
        let head = match framing::inspect(
            facts.raw_head,
            facts.http2,
            self.settings.max_content_length,
        ) {
            Ok(h) => h,
            Err(e) => return Verdict::refuse(e, Body::None),
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
        if body == Body::Chunked && !self.settings.chunked_bodies {
            return Verdict::refuse(framing::FramingError::LengthRequired, body);
        }
        let body_refused = body.is_some() && framing::is_bodiless(facts.method);

        let presented = session::find_cookie(
            facts.cookies.iter().copied(),
            &self.settings.cookie_name,
            &self.settings.wire_cookie_name,
        );
        if presented == CookieLookup::Absent {
            if body_refused && !self.settings.forward_bodiless_bodies {
                return Verdict::refuse(framing::FramingError::BodyOnBodilessMethod, body);
            }
            return match self.settings.mode {
                Mode::Mixed => Verdict::Pass { body },
                Mode::GuestOnly => Verdict::refuse(Reason::NoSession, body),
            };
        }
        // From here on this is a guest request, whatever state its cookie is in.
        if body_refused {
            return Verdict::refuse(framing::FramingError::BodyOnBodilessMethod, body);
        }
        let claims = match presented {
            CookieLookup::One(token) => self.keys.verify_at(token, now).map_err(Reason::from),
            CookieLookup::Misnamed => Err(Reason::SessionMisnamed),
            _ => Err(Reason::SessionAmbiguous),
        };
        let claims = match claims {
            Ok(c) => c,
            Err(reason) => return Verdict::refuse(reason, body),
        };
        if !self.index.is_fresh() {
            // The shared store has been out of reach longer than the bound: a revocation
            // may be unseen, so no guest request is served on this state.
            return Verdict::refuse(Reason::StoreStale, body);
        }
        let mut guest = Guest {
            email: claims.sub.clone(),
            jti: claims.jti.clone(),
            share: None,
            rule: None,
            held: Vec::new(),
        };
        // A refusal carries the session's shares for its page's ways back.
        let refuse = |reason: Reason, mut guest: Guest, path, detail| {
            guest.held = claims.shares.clone();
            Verdict::Refuse {
                reason,
                guest: Some(Box::new(guest)),
                path,
                detail,
                body,
            }
        };
        let host = head.host.or(facts.authority).unwrap_or_default();
        if !self.is_public_host(host) {
            return refuse(Reason::HostNotPublic, guest, None, None);
        }

        let target = match CanonicalTarget::parse(head.target, self.settings.max_target_length) {
            Ok(t) => t,
            Err(e) => return refuse(e.into(), guest, None, None),
        };
        let deny = |reason, guest| refuse(reason, guest, Some(target.path.clone()), None);
        if target.has_method_override_key()
            || facts
                .header_names
                .iter()
                .any(|n| header_names::is_method_override(n.as_bytes()))
        {
            return deny(Reason::MethodOverride, guest);
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
                Reason::ShareExpired
            } else {
                Reason::ShareInactive
            };
            return deny(reason, guest);
        }

        // One generation of policies for the whole decision, even if a reload lands now.
        let policies = self.policies.current();
        let mut closest: Option<(Miss<'_>, &ShareGrant)> = None;
        for i in 0..claims.shares.len() {
            let share = &claims.shares[i];
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
                            // Parsed where it lies: no copy of the string.
                            let Ok(uri) = http::Uri::from_maybe_shared(bytes::Bytes::from(forward))
                            else {
                                // Canonical targets always parse; refuse rather than guess if not.
                                return deny(Reason::TargetUnforwardable, guest);
                            };
                            let bindings = IdentityBindings {
                                email: &guest.email,
                                share,
                                rule: &rule.name,
                            };
                            let key = crate::policy::RenderFor {
                                share: &share.id,
                                rule: allowed.rule,
                                email: &guest.email,
                                case: &share.case,
                                version: &share.version,
                            };
                            let Some(set_headers) =
                                profile
                                    .rendered
                                    .headers(&profile.set_headers, &key, &bindings)
                            else {
                                return deny(Reason::HeaderValueInvalid, guest);
                            };
                            guest.rule = Some(rule.name.clone());
                            let remove_headers = profile.remove_headers.clone();
                            let response = Arc::clone(&profile.response);
                            // An allow needs no other share (`held` stays empty).
                            guest.share = Some(share.clone());
                            return Verdict::Allow(Box::new(AllowedRequest {
                                guest,
                                path: target.path,
                                target: uri,
                                set_headers,
                                remove_headers,
                                response,
                                body,
                            }));
                        }
                    }
                }
            };
            if let Err(miss) = outcome {
                if closest.as_ref().is_none_or(|(m, _)| miss.rank() > m.rank()) {
                    closest = Some((miss, share));
                }
            }
        }
        let (reason, detail) = match &closest {
            Some((m, s)) => (m.reason(), Some(m.describe(s, &policies.set))),
            None => (Reason::NoRule, None),
        };
        guest.share = closest.map(|(_, s)| s.clone());
        refuse(reason, guest, Some(target.path.clone()), detail)
    }

    /// Whether a `Host` (or `:authority`) is one guests may use; compared without case.
    fn is_public_host(&self, host: &[u8]) -> bool {
        self.settings
            .public_hosts
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySet;
    use crate::stamp::unix_now;
    use crate::store::{Share, ShareStatus};

    const EMAIL: &str = "g@x.test";

    fn share(id: &str, case: &str, status: ShareStatus) -> Share {
        Share {
            status,
            ..Share::pending(id, EMAIL, [case, "3", "view-only"], 0, unix_now() + 3600)
        }
    }

    /// A gate over the shipped policies with shares s1 (case 42, active) and s2 (case 43,
    /// revoked); `stale` makes the index one that never heard from its store.
    fn gate(mode: Mode, stale: bool) -> Gate {
        let set =
            PolicySet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
                .unwrap_or_else(|e| panic!("{e}"));
        let index = if stale {
            ShareIndex::with_staleness_bound(Some(std::time::Duration::from_secs(1)))
        } else {
            ShareIndex::default()
        };
        index.upsert(&share("s1", "42", ShareStatus::Active));
        index.upsert(&share("s2", "43", ShareStatus::Revoked));
        Gate {
            settings: Settings {
                mode,
                max_content_length: 1 << 20,
                public_hosts: vec!["cases.example".into()],
                cookie_name: "gg".into(),
                wire_cookie_name: "gg".into(),
                ..Settings::default()
            },
            keys: SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate"),
            policies: Arc::new(LivePolicies::fixed(set, "gg")),
            index: Arc::new(index),
        }
    }

    fn token(g: &Gate, shares: &[(&str, &str)], exp_in: i64) -> String {
        let grants = shares
            .iter()
            .map(|(id, case)| ShareGrant {
                id: id.to_string(),
                case: case.to_string(),
                version: "3".into(),
                profile: "view-only".into(),
                exp: unix_now() + 3600,
            })
            .collect();
        let t = g
            .keys
            .mint(EMAIL, grants, 600)
            .unwrap_or_else(|e| panic!("{e}"));
        if exp_in >= 0 {
            return t;
        }
        let mut c = (*g.keys.verify(&t).unwrap_or_else(|e| panic!("{e}"))).clone();
        c.exp = unix_now().saturating_sub(exp_in.unsigned_abs());
        g.keys.sign(&c).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One case: the head's lines (request line first), and the expected decision and reason.
    fn decide(g: &Gate, lines: &[&str], h2_body: bool) -> (&'static str, &'static str) {
        let mut raw = lines.join("\r\n");
        raw.push_str("\r\n\r\n");
        let method = lines[0].split(' ').next().unwrap_or("");
        let cookies: Vec<&[u8]> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("Cookie: "))
            .map(str::as_bytes)
            .collect();
        let header_names: Vec<String> = lines[1..]
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        let facts = RequestFacts {
            raw_head: raw.as_bytes(),
            method,
            cookies,
            header_names: header_names.iter().map(String::as_str).collect(),
            http2: lines[0].ends_with("HTTP/2"),
            authority: lines[0]
                .ends_with("HTTP/2")
                .then_some(&b"cases.example"[..]),
            frames_carry_body: h2_body,
        };
        let v = g.decide(&facts, unix_now());
        (v.decision(), v.reason().label())
    }

    #[test]
    fn the_pipeline_table() {
        let mixed = gate(Mode::Mixed, false);
        let only = gate(Mode::GuestOnly, false);
        let stale = gate(Mode::Mixed, true);
        let s1 = format!("Cookie: gg={}", token(&mixed, &[("s1", "42")], 0));
        let s2 = format!("Cookie: gg={}", token(&mixed, &[("s2", "43")], 0));
        let both = format!(
            "Cookie: gg={}",
            token(&mixed, &[("s2", "43"), ("s1", "42")], 0)
        );
        let expired = format!("Cookie: gg={}", token(&mixed, &[("s1", "42")], -60));
        let misnamed = s1.replace("gg=", "GG=");
        let twice = format!("{s1}; gg=x");
        let doc = "GET /api/cases/42/versions/3/documents HTTP/1.1";
        let host = "Host: cases.example";
        type Case<'a> = (&'a Gate, Vec<&'a str>, bool, (&'a str, &'a str));
        let table: Vec<Case<'_>> = vec![
            // no cookie: the app's own users in mixed mode, refused in guest-only mode
            (&mixed, vec![doc, host], false, ("pass", "no_session")),
            (&only, vec![doc, host], false, ("deny", "no_session")),
            // framing comes first, for everyone
            (
                &mixed,
                vec![
                    "POST /x HTTP/1.1",
                    host,
                    "Content-Length: 3",
                    "Transfer-Encoding: chunked",
                ],
                false,
                ("reject", "framing_cl_and_te"),
            ),
            (
                &mixed,
                vec!["POST /x HTTP/1.1", host, "Content-Length: 3, 3"],
                false,
                ("reject", "framing_content_length_invalid"),
            ),
            (
                &mixed,
                vec!["GET /x HTTP/1.1", host, "Content-Length: 3"],
                false,
                ("reject", "framing_body_on_bodiless_method"),
            ),
            (
                &mixed,
                vec!["POST /x HTTP/1.1", host, "Transfer-Encoding: gzip, chunked"],
                false,
                ("reject", "framing_transfer_encoding_unsupported"),
            ),
            (
                &mixed,
                vec!["POST /x HTTP/1.1", host, "Content-Length: 2000000"],
                false,
                ("reject", "framing_content_length_too_large"),
            ),
            (
                &mixed,
                vec![doc, host, &s1, "Content-Length: 3"],
                false,
                ("reject", "framing_body_on_bodiless_method"),
            ),
            (
                &mixed,
                vec!["GET /api/cases/42/versions/3/documents HTTP/2", &s1],
                true,
                ("reject", "framing_body_on_bodiless_method"),
            ),
            (
                &mixed,
                vec!["GET /api/cases/42/versions/3/documents HTTP/2", &s1],
                false,
                ("allow", "rule"),
            ),
            // a presented cookie is a guest request in every state
            (&mixed, vec![doc, host, &s1], false, ("allow", "rule")),
            (
                &mixed,
                vec![doc, host, &misnamed],
                false,
                ("deny", "session_misnamed"),
            ),
            (
                &mixed,
                vec![doc, host, &twice],
                false,
                ("deny", "session_ambiguous"),
            ),
            (
                &mixed,
                vec![doc, host, &expired],
                false,
                ("deny", "session_expired"),
            ),
            (
                &mixed,
                vec![doc, host, "Cookie: gg=junk"],
                false,
                ("deny", "session_malformed"),
            ),
            (
                &mixed,
                vec!["GET /settings HTTP/1.1", host, &s2],
                false,
                ("deny", "share_inactive"),
            ),
            (
                &mixed,
                vec![
                    "GET /api/cases/43/versions/3/documents HTTP/1.1",
                    host,
                    &both,
                ],
                false,
                ("deny", "share_inactive"),
            ),
            // host, target, overrides, policy
            (
                &mixed,
                vec![doc, "Host: evil.example", &s1],
                false,
                ("reject", "host_not_public"),
            ),
            (
                &mixed,
                vec!["GET /api/cases/42/versions/3/%2e%2e/x HTTP/1.1", host, &s1],
                false,
                ("reject", "target_dot_segment"),
            ),
            (
                &mixed,
                vec!["GET /api/cases/42/versions/3/... HTTP/1.1", host, &s1],
                false,
                ("reject", "target_dot_like_segment"),
            ),
            (
                &mixed,
                vec![doc, host, &s1, "X_HTTP_Method_Override: DELETE"],
                false,
                ("deny", "method_override"),
            ),
            (
                &mixed,
                vec!["GET /api/cases/43/versions/3/documents HTTP/1.1", host, &s1],
                false,
                ("deny", "scope_mismatch"),
            ),
            (
                &mixed,
                vec![
                    "DELETE /api/cases/42/versions/3/documents/1 HTTP/1.1",
                    host,
                    &s1,
                ],
                false,
                ("deny", "method_not_allowed"),
            ),
            (
                &mixed,
                vec!["GET /settings HTTP/1.1", host, &s1],
                false,
                ("deny", "no_rule"),
            ),
            // shared state that cannot be confirmed fails closed, for guests only
            (
                &stale,
                vec![doc, host, &s1],
                false,
                ("unavailable", "store_stale"),
            ),
            (&stale, vec![doc, host], false, ("pass", "no_session")),
        ];
        for (g, lines, h2_body, want) in &table {
            assert_eq!(decide(g, lines, *h2_body), *want, "{lines:?}");
        }
    }

    #[test]
    fn settings_that_shape_framing() {
        let mut g = gate(Mode::Mixed, false);
        g.settings.forward_bodiless_bodies = true;
        let get_body = [
            "GET /x HTTP/1.1",
            "Host: cases.example",
            "Content-Length: 3",
        ];
        assert_eq!(decide(&g, &get_body, false), ("pass", "no_session"));
        let s1 = format!("Cookie: gg={}", token(&g, &[("s1", "42")], 0));
        let guest_body = [
            "GET /api/cases/42/versions/3/documents HTTP/1.1",
            "Host: cases.example",
            &s1,
            "Content-Length: 3",
        ];
        assert_eq!(
            decide(&g, &guest_body, false),
            ("reject", "framing_body_on_bodiless_method")
        );
        g.settings.chunked_bodies = false;
        let chunked = [
            "POST /x HTTP/1.1",
            "Host: cases.example",
            "Transfer-Encoding: chunked",
        ];
        assert_eq!(
            decide(&g, &chunked, false),
            ("reject", "framing_length_required")
        );
    }

    #[test]
    fn refusals_close_when_a_body_is_unread() {
        let g = gate(Mode::Mixed, false);
        let s1 = format!("Cookie: gg={}", token(&g, &[("s1", "42")], 0));
        let run = |lines: &[&str]| {
            let mut raw = lines.join("\r\n");
            raw.push_str("\r\n\r\n");
            let cookies: Vec<&[u8]> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("Cookie: "))
                .map(str::as_bytes)
                .collect();
            let facts = RequestFacts {
                raw_head: raw.as_bytes(),
                method: lines[0].split(' ').next().unwrap_or(""),
                cookies,
                header_names: vec![],
                http2: false,
                authority: None,
                frames_carry_body: false,
            };
            g.decide(&facts, unix_now()).refusal()
        };
        let denied_post = run(&[
            "POST /settings HTTP/1.1",
            "Host: cases.example",
            &s1,
            "Content-Length: 3",
        ]);
        assert_eq!(
            denied_post.map(|r| (r.answer.status(), r.close)),
            Some((403, true))
        );
        let denied_get = run(&["GET /settings HTTP/1.1", "Host: cases.example", &s1]);
        assert_eq!(
            denied_get.map(|r| (r.answer.status(), r.close)),
            Some((403, false))
        );
        let rejected = run(&["GET /a/%2e%2e HTTP/1.1", "Host: cases.example", &s1]);
        assert_eq!(
            rejected.map(|r| (r.answer.status(), r.close)),
            Some((400, true))
        );
        assert!(run(&["GET /x HTTP/1.1", "Host: cases.example"]).is_none());
    }
}

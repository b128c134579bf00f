//! The admin API (`/admin/v1/...`): bearer API keys checked against their SHA-256,
//! roles (`admin` everything; `sharer` only the shares it created, only with the profiles
//! its key allows), JSON in and out, errors as `{error, reason}`, and one audit event per
//! call. A key may act for the app's signed-in staff (`X-Guestgate-Staff`): each staff
//! member then owns their shares. Routing and status mapping live here; the flows are in
//! [`crate::shares`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::audit::{AdminEvent, AuditSink};
use crate::reason::Reason;
use crate::reload::LivePolicies;
use crate::shares::{EmailOutcome, NewShare, ShareError, ShareFilter, Shares};
use crate::stamp::unix_now;
use crate::stamp::{rfc3339, timestamp};
use crate::store::Share;
use crate::target::CanonicalTarget;

/// An admin API key role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Create, read and revoke shares; no organisation-wide guest listing or revocation.
    Sharer,
}

/// One admin API key (its SHA-256, never the key).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Name shown in audit events as the actor.
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the key, 32 bytes.
    pub sha256: [u8; 32],
    /// Profiles a sharer may create shares with (admins: any).
    pub profiles: Vec<String>,
    /// The key's app names its signed-in staff member in `X-Guestgate-Staff`.
    pub acts_for_staff: bool,
}

/// Every route the API serves, as (method, OpenAPI path). `docs/openapi.json` must list
/// exactly these (a test checks both directions), and a test calls each one.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/admin/v1/shares"),
    ("GET", "/admin/v1/shares"),
    ("GET", "/admin/v1/shares/stale"),
    ("POST", "/admin/v1/shares/stale/revoke"),
    ("GET", "/admin/v1/shares/{id}"),
    ("DELETE", "/admin/v1/shares/{id}"),
    ("POST", "/admin/v1/guests"),
    ("GET", "/admin/v1/guests"),
    ("GET", "/admin/v1/guests/{email}/shares"),
    ("DELETE", "/admin/v1/guests/{email}"),
    ("POST", "/admin/v1/reload"),
];

/// An API answer: status and JSON body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`None` for 204).
    pub body: Option<Value>,
}

fn ok(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
    }
}

fn fail(status: u16, error: &str, reason: impl Into<String>) -> Reply {
    ok(status, json!({"error": error, "reason": reason.into()}))
}

/// The `X-Guestgate-Staff` field lines of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staff<'a> {
    /// None sent.
    Absent,
    /// Exactly one.
    One(&'a [u8]),
    /// More than one: refused, since an app that appends its own value after a
    /// client's would otherwise act for whoever the client named.
    Repeated,
}

impl<'a> Staff<'a> {
    /// From every value of the header, in order.
    pub fn from_values(mut values: impl Iterator<Item = &'a [u8]>) -> Self {
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(v), None) => Self::One(v),
            (Some(_), Some(_)) => Self::Repeated,
        }
    }
}

/// What the router knows about the caller's request.
pub struct Call<'a> {
    /// Method.
    pub method: &'a str,
    /// Raw target.
    pub target: &'a [u8],
    /// `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// `X-Guestgate-Staff`: the app's signed-in staff member, for keys that act for staff.
    pub staff: Staff<'a>,
    /// Body (already size-limited).
    pub body: &'a [u8],
    /// Request id for audit.
    pub request_id: &'a str,
}

/// Who is calling: the key, and the staff member it acts for.
struct Caller<'a> {
    key: &'a ApiKey,
    staff: Option<String>,
}

impl Caller<'_> {
    fn admin(&self) -> bool {
        self.key.role == Role::Admin
    }

    /// Who owns what this caller creates: the key, or `key/staff`.
    fn owner(&self) -> String {
        match &self.staff {
            Some(s) => format!("{}/{s}", self.key.name),
            None => self.key.name.clone(),
        }
    }

    /// The shares this caller may see and revoke: all (admin), or its own.
    fn scope(&self) -> Option<String> {
        (!self.admin()).then(|| self.owner())
    }
}

/// A staff member's id as the app names it: an email or a login, ASCII, no `/`.
pub fn staff_id(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 254
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"@._+-".contains(b));
    ok.then(|| String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// `POST /admin/v1/guests` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGuest {
    email: String,
    first_name: String,
    last_name: String,
}

/// `POST /admin/v1/shares/stale/revoke` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaleRevoke {
    unused_for: String,
}

/// The API.
pub struct AdminApi {
    shares: Arc<Shares>,
    keys: Vec<ApiKey>,
    audit: Arc<AuditSink>,
    policies: Arc<LivePolicies>,
}

/// `POST /admin/v1/shares` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateShare {
    email: String,
    case: String,
    version: String,
    profile: Option<String>,
    expires_in: Option<u64>,
    notify: Option<bool>,
    created_by: Option<String>,
    contact: Option<String>,
}

/// The JSON form of a share (never its token or code).
pub fn share_json(s: &Share, now: u64, last_access: u64) -> Value {
    json!({
        "id": s.id,
        "email": s.email,
        "case": s.case,
        "version": s.version,
        "profile": s.profile,
        "status": s.effective_status(now),
        "created_by": s.created_by,
        "owner": s.owner,
        "contact": s.contact,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
        "accepted_at": s.accepted_at.map(rfc3339),
        "revoked_at": s.revoked_at.map(rfc3339),
        "revoked_by": s.revoked_by,
        "locked": s.locked,
        "last_access": (last_access > 0).then(|| rfc3339(last_access)),
    })
}

/// What one call did, for the audit event.
#[derive(Default)]
struct Facts {
    action: &'static str,
    share: Option<Share>,
    /// The share id the call named, kept when no share was found (probing shows).
    share_id: Option<String>,
    guest: Option<String>,
    count: Option<usize>,
    reason: Option<String>,
    email: Option<&'static str>,
}

impl AdminApi {
    /// Wires the API.
    pub fn new(
        shares: Arc<Shares>,
        keys: Vec<ApiKey>,
        audit: Arc<AuditSink>,
        policies: Arc<LivePolicies>,
    ) -> Self {
        Self {
            shares,
            keys,
            audit,
            policies,
        }
    }

    fn authenticate(&self, authorization: Option<&[u8]>) -> Option<&ApiKey> {
        let token = authorization
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.strip_prefix("Bearer "))?
            .trim();
        let digest = Sha256::digest(token.as_bytes());
        // Compare against every key, constant-time each, without early exit.
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.sha256.ct_eq(&digest[..])) {
                found = Some(k);
            }
        }
        found
    }

    /// Handles one call and audits it.
    pub async fn handle(&self, call: &Call<'_>) -> Reply {
        let span = tracing::info_span!("admin", request_id = %call.request_id);
        self.handle_in_span(call).instrument(span).await
    }

    /// The caller behind a key and the staff header, or the refusal.
    fn caller<'k>(&self, key: &'k ApiKey, staff: Staff<'_>) -> Result<Caller<'k>, Reply> {
        match (key.acts_for_staff, staff) {
            (_, Staff::Repeated) => Err(fail(
                400,
                "invalid_staff",
                "X-Guestgate-Staff sent more than once: send exactly one",
            )),
            (false, Staff::Absent) => Ok(Caller { key, staff: None }),
            (false, Staff::One(_)) => Err(fail(
                400,
                "staff_not_allowed",
                "this key does not act for staff (admin.keys[].acts_for_staff); drop X-Guestgate-Staff",
            )),
            (true, Staff::Absent) if key.role == Role::Admin => Ok(Caller { key, staff: None }),
            (true, Staff::Absent) => Err(fail(
                400,
                "staff_required",
                "this key acts for staff: name the signed-in staff member in X-Guestgate-Staff",
            )),
            (true, Staff::One(raw)) => match staff_id(raw) {
                Some(s) => Ok(Caller {
                    key,
                    staff: Some(s),
                }),
                None => Err(fail(
                    400,
                    "invalid_staff",
                    "X-Guestgate-Staff: 1 to 254 ASCII letters, digits, @ . _ + -",
                )),
            },
        }
    }

    async fn handle_in_span(&self, call: &Call<'_>) -> Reply {
        let mut facts = Facts::default();
        let mut actor = "-".to_string();
        let reply = match self.authenticate(call.authorization) {
            None => {
                facts.action = "auth";
                facts.reason = Some("unauthorized".into());
                let why = if self.keys.is_empty() {
                    "no API keys are configured ([[admin.keys]])"
                } else {
                    "missing or unknown bearer API key"
                };
                fail(401, "unauthorized", why)
            }
            Some(key) => match self.caller(key, call.staff) {
                Err(refusal) => {
                    actor.clone_from(&key.name);
                    facts.action = "auth";
                    refusal
                }
                Ok(caller) => {
                    actor = caller.owner();
                    self.route(&caller, call, &mut facts).await
                }
            },
        };
        if facts.reason.is_none() && reply.status >= 400 {
            facts.reason = reply
                .body
                .as_ref()
                .and_then(|b| b["error"].as_str())
                .map(String::from);
        }
        self.audit.emit(&AdminEvent {
            ts: timestamp(std::time::SystemTime::now()),
            kind: "admin",
            request_id: call.request_id,
            actor: &actor,
            action: if facts.action.is_empty() {
                "unknown"
            } else {
                facts.action
            },
            status: reply.status,
            reason: facts.reason.as_deref(),
            share: facts
                .share
                .as_ref()
                .map(|s| s.id.as_str())
                .or(facts.share_id.as_deref()),
            created_by: facts
                .share
                .as_ref()
                .filter(|_| facts.action == "share.create")
                .map(|s| s.created_by.as_str()),
            contact: facts
                .share
                .as_ref()
                .filter(|_| facts.action == "share.create")
                .and_then(|s| s.contact.as_deref()),
            guest: facts
                .guest
                .as_deref()
                .or(facts.share.as_ref().map(|s| s.email.as_str())),
            case: facts.share.as_ref().map(|s| s.case.as_str()),
            version: facts.share.as_ref().map(|s| s.version.as_str()),
            count: facts.count,
            email: facts.email,
        });
        reply
    }

    async fn route(&self, caller: &Caller<'_>, call: &Call<'_>, facts: &mut Facts) -> Reply {
        let target = match CanonicalTarget::parse(call.target, 4096) {
            Ok(t) => t,
            Err(e) => return fail(400, "bad_request", Reason::from(e).label()),
        };
        let segments: Vec<&str> = target.path.split('/').skip(1).collect();
        let now = unix_now();
        let scope = caller.scope();
        let scope = scope.as_deref();
        let admin_only = |facts: &mut Facts| {
            (!caller.admin()).then(|| {
                facts.reason = Some("forbidden".into());
                fail(
                    403,
                    "forbidden",
                    "this API key's role (sharer) cannot manage guests organisation-wide",
                )
            })
        };
        let q = |name: &str| {
            target
                .query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        match (call.method, segments.as_slice()) {
            ("POST", ["admin", "v1", "shares"]) => {
                facts.action = "share.create";
                self.create_share(caller, call.body, now, facts).await
            }
            ("GET", ["admin", "v1", "shares"]) => {
                facts.action = "share.list";
                let filter = ShareFilter {
                    case: q("case"),
                    version: q("version"),
                    email: q("email"),
                    status: q("status"),
                    owner: scope.map(String::from),
                };
                match self.shares.list(&filter, now).await {
                    Ok(list) => ok(
                        200,
                        json!({"shares": list.iter().map(|s| self.json(s, now)).collect::<Vec<_>>()}),
                    ),
                    Err(e) => share_error(e),
                }
            }
            ("GET", ["admin", "v1", "shares", "stale"]) => {
                facts.action = "share.stale";
                let Some(unused_for) = q("unused_for").as_deref().and_then(seconds) else {
                    return fail(400, "bad_request", "unused_for: a duration like 30d or 12h");
                };
                match self.shares.stale(unused_for, now, scope).await {
                    Ok(list) => {
                        facts.count = Some(list.len());
                        let shares: Vec<Value> = list
                            .iter()
                            .map(|st| {
                                let mut v = self.json(&st.share, now);
                                v["stale"] = json!(st.why);
                                v
                            })
                            .collect();
                        ok(200, json!({"unused_for": unused_for, "shares": shares}))
                    }
                    Err(e) => share_error(e),
                }
            }
            ("POST", ["admin", "v1", "shares", "stale", "revoke"]) => {
                facts.action = "share.revoke_stale";
                let req: StaleRevoke = match serde_json::from_slice(call.body) {
                    Ok(r) => r,
                    Err(e) => return fail(400, "invalid_json", e.to_string()),
                };
                let Some(unused_for) = seconds(&req.unused_for) else {
                    return fail(422, "invalid", "unused_for: a duration like 30d or 12h");
                };
                match self
                    .shares
                    .revoke_stale(unused_for, &caller.owner(), now, scope)
                    .await
                {
                    Ok(revoked) => {
                        facts.count = Some(revoked.len());
                        ok(
                            200,
                            json!({"revoked": revoked.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()}),
                        )
                    }
                    Err(e) => share_error(e),
                }
            }
            ("GET", ["admin", "v1", "shares", id]) => {
                facts.action = "share.show";
                facts.share_id = Some(id.to_string());
                match self.shares.get(id, scope).await {
                    Ok(s) => {
                        let body = self.json(&s, now);
                        facts.share = Some(s);
                        ok(200, body)
                    }
                    Err(e) => share_error(e),
                }
            }
            ("DELETE", ["admin", "v1", "shares", id]) => {
                facts.action = "share.revoke";
                facts.share_id = Some(id.to_string());
                match self.shares.revoke(id, &caller.owner(), now, scope).await {
                    Ok(s) => {
                        facts.share = Some(s);
                        Reply {
                            status: 204,
                            body: None,
                        }
                    }
                    Err(e) => share_error(e),
                }
            }
            ("POST", ["admin", "v1", "guests"]) => {
                facts.action = "guest.create";
                if let Some(r) = admin_only(facts) {
                    return r;
                }
                let req: CreateGuest = match serde_json::from_slice(call.body) {
                    Ok(r) => r,
                    Err(e) => return fail(400, "invalid_json", e.to_string()),
                };
                facts.guest = Some(req.email.clone());
                match self
                    .shares
                    .create_guest(
                        &req.email,
                        &req.first_name,
                        &req.last_name,
                        &caller.owner(),
                        now,
                    )
                    .await
                {
                    Ok(g) => {
                        let mut body = json!(g);
                        body["created_at"] = json!(rfc3339(g.created_at));
                        body["accepted_at"] = json!(g.accepted_at.map(rfc3339));
                        ok(201, body)
                    }
                    Err(e) => share_error(e),
                }
            }
            ("GET", ["admin", "v1", "guests"]) => {
                facts.action = "guest.list";
                if let Some(r) = admin_only(facts) {
                    return r;
                }
                match self.shares.guests(now).await {
                    Ok(g) => ok(200, json!({"guests": g})),
                    Err(e) => share_error(e),
                }
            }
            ("GET", ["admin", "v1", "guests", email, "shares"]) => {
                facts.action = "guest.shares";
                facts.guest = Some(email.to_string());
                if let Some(r) = admin_only(facts) {
                    return r;
                }
                let filter = ShareFilter {
                    email: Some(email.to_string()),
                    ..ShareFilter::default()
                };
                match self.shares.list(&filter, now).await {
                    Ok(list) => ok(
                        200,
                        json!({"email": email, "shares": list.iter().map(|s| self.json(s, now)).collect::<Vec<_>>()}),
                    ),
                    Err(e) => share_error(e),
                }
            }
            ("DELETE", ["admin", "v1", "guests", email]) => {
                facts.action = "guest.revoke";
                facts.guest = Some(email.to_string());
                if let Some(r) = admin_only(facts) {
                    return r;
                }
                match self.shares.revoke_guest(email, &caller.owner(), now).await {
                    Ok(revoked) => {
                        facts.count = Some(revoked.len());
                        ok(
                            200,
                            json!({"email": email, "revoked": revoked.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()}),
                        )
                    }
                    Err(e) => share_error(e),
                }
            }
            ("POST", ["admin", "v1", "reload"]) => {
                facts.action = "policy.reload";
                if let Some(r) = admin_only(facts) {
                    return r;
                }
                match self.policies.reload() {
                    Ok(n) => ok(200, json!({"status": "reloaded", "profiles": n})),
                    Err(e) => {
                        facts.reason = Some("invalid_policies".into());
                        ok(
                            422,
                            json!({"error": "invalid_policies", "reason": e.to_string(), "in_force": "the previous policies"}),
                        )
                    }
                }
            }
            (_, ["admin", "v1", ..]) => {
                facts.action = "unknown";
                fail(404, "not_found", "no such admin route")
            }
            _ => {
                facts.action = "unknown";
                fail(404, "not_found", "no such route")
            }
        }
    }

    /// `POST /admin/v1/shares`: a sharer only with the profiles its key allows.
    async fn create_share(
        &self,
        caller: &Caller<'_>,
        body: &[u8],
        now: u64,
        facts: &mut Facts,
    ) -> Reply {
        let req: CreateShare = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return fail(400, "invalid_json", e.to_string()),
        };
        let profile = req.profile.unwrap_or_else(|| "view-only".into());
        if !caller.admin() && !caller.key.profiles.contains(&profile) {
            facts.reason = Some("profile_not_allowed".into());
            return fail(
                403,
                "profile_not_allowed",
                format!(
                    "this key may share with {} only (admin.keys[].profiles)",
                    caller.key.profiles.join(", ")
                ),
            );
        }
        let new = NewShare {
            email: req.email,
            case: req.case,
            version: req.version,
            profile: Some(profile),
            expires_in: req.expires_in,
            notify: req.notify.unwrap_or(true),
            created_by: req.created_by.unwrap_or_else(|| caller.key.name.clone()),
            contact: req.contact,
            owner: caller.owner(),
            by_admin: caller.admin(),
        };
        match self.shares.create(new, now).await {
            Ok(c) => {
                let (email, email_error) = match &c.email {
                    EmailOutcome::Sent => ("sent", None),
                    EmailOutcome::Skipped => ("skipped", None),
                    EmailOutcome::RateLimited { .. } => ("rate_limited", None),
                    EmailOutcome::Unusable => ("not_sent", None),
                    EmailOutcome::Failed(e) => ("failed", Some(e.clone())),
                };
                let body = json!({
                    "id": c.share.id,
                    "link": c.link,
                    "status": c.share.effective_status(now),
                    "expires_at": rfc3339(c.share.expires_at),
                    "email": email,
                    "email_error": email_error,
                    "owner": c.share.owner,
                });
                facts.share = Some(c.share);
                facts.email = Some(email);
                ok(201, body)
            }
            Err(e) => share_error(e),
        }
    }

    fn json(&self, s: &Share, now: u64) -> Value {
        share_json(s, now, self.shares.last_used(s))
    }
}

/// A duration like `30d`, in seconds.
fn seconds(text: &str) -> Option<u64> {
    humantime::parse_duration(text)
        .ok()
        .map(|d| d.as_secs())
        .filter(|&s| s > 0)
}

/// The one mapping from share errors to API statuses.
fn share_error(e: ShareError) -> Reply {
    match e {
        ShareError::Invalid { field, why } => fail(422, "invalid", format!("{field}: {why}")),
        ShareError::NotFound => fail(404, "not_found", "no such share"),
        ShareError::Exists(why) => fail(409, "exists", why),
        ShareError::Store(e) => {
            crate::metrics::get()
                .store_errors
                .with_label_values(&["admin"])
                .inc();
            tracing::error!(error = %e, "store error in admin API");
            fail(
                503,
                "store_unavailable",
                "the share store is unavailable; retry",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Staff;

    #[test]
    fn a_staff_header_sent_twice_is_neither_value() {
        let one: [&[u8]; 1] = [b"jane"];
        let two: [&[u8]; 2] = [b"tom", b"jane"];
        assert_eq!(Staff::from_values(std::iter::empty()), Staff::Absent);
        assert_eq!(Staff::from_values(one.into_iter()), Staff::One(b"jane"));
        assert_eq!(Staff::from_values(two.into_iter()), Staff::Repeated);
    }
}

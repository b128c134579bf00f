//! The serde shape of `guestgate.toml`, exactly as written: every section and key that
//! may appear, defaults included, unknown keys refused. Validation is in `mod.rs`.

use serde::Deserialize;

use crate::admin::api::Role;
use crate::decision::Mode;
use crate::mail::SmtpSecurity;
use crate::session::SameSite;

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Embedded,
    Redis,
}

/// `store.topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    Single,
    Cluster,
    Sentinel,
}

/// `mail.transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    File,
    Smtp,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `mixed` (non-guest requests pass through) or `guest-only` (they are denied).
    pub mode: Option<Mode>,
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub policies: RawPolicies,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub guest: RawGuest,
    #[serde(default)]
    pub mail: RawMail,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub assertion: RawAssertion,
}

/// `[assertion]`: the signed scope assertion for the app.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    pub audience: Option<String>,
    pub header: Option<String>,
    pub issuer: Option<String>,
    pub key_file: Option<String>,
    pub previous_key_files: Option<Vec<String>>,
    pub lifetime: Option<String>,
    pub jwks_under_prefix: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub address: Option<String>,
    pub threads: Option<usize>,
    /// Load balancers whose `X-Forwarded-For` is believed (CIDR blocks).
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub address: Option<String>,
    /// `Host` sent to the app on guest requests (default: `guest.public_url`'s).
    pub host: Option<String>,
    /// Whether the app reads chunked request bodies (411 for them when false).
    pub chunked_request_bodies: Option<bool>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    pub dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie_name: Option<String>,
    pub key_file: Option<String>,
    pub previous_key_files: Option<Vec<String>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub secure_cookie: Option<bool>,
    pub max_lifetime: Option<String>,
    pub verified_cache: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_target_length: Option<usize>,
    pub max_content_length: Option<u64>,
    /// Forward bodies on GET, HEAD, DELETE, OPTIONS, TRACE for pass-through requests.
    pub forward_bodiless_method_bodies: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub strip_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: Option<String>,
    pub flush_interval: Option<String>,
    pub include_pass_through: Option<bool>,
    pub key_file: Option<String>,
    pub previous_key_files: Option<Vec<String>>,
    pub checkpoint_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Option<String>,
    /// API keys, stored as SHA-256 hashes.
    pub keys: Option<Vec<RawApiKey>>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    /// Profiles a sharer key may create shares with (default `["view-only"]`).
    pub profiles: Option<Vec<String>>,
    /// The key belongs to an app that names its signed-in staff member in
    /// `X-Guestgate-Staff`; each staff member then owns their own shares.
    pub acts_for_staff: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub backend: Option<Backend>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub topology: Option<Topology>,
    pub nodes: Option<Vec<String>>,
    pub sentinel_service: Option<String>,
    pub ca_file: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
    pub staleness_bound: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    pub prefix: Option<String>,
    pub public_url: Option<String>,
    /// More `Host` values guests may use besides `public_url`'s.
    pub public_hosts: Option<Vec<String>>,
    pub landing: Option<String>,
    pub code_lifetime: Option<String>,
    pub default_share_lifetime: Option<String>,
    pub max_share_lifetime: Option<String>,
    pub resend_interval: Option<String>,
    pub sends_per_hour: Option<usize>,
    pub verify_per_ip_per_minute: Option<u32>,
    pub same_site: Option<SameSite>,
    pub share_with: Option<crate::shares::ShareWith>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    pub transport: Option<Transport>,
    pub outbox: Option<String>,
    pub from: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_security: Option<SmtpSecurity>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_timeout: Option<String>,
}

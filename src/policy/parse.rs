//! Raw policy files: the serde shape of `policies/*.toml`, exactly as written, with
//! unknown keys refused. Compilation into matchers happens in `compile.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Profile name, referred to by shares (`view-only`, `collaborator`).
    pub name: String,
    /// Free text shown by `policy check` and in docs.
    #[serde(default)]
    pub description: String,
    /// What a guest with this profile can do, in words for the guest (challenge page,
    /// invitation email): "read the documents of this case version".
    pub can: Option<String>,
    /// What they cannot do: "change, upload or delete anything".
    pub cannot: Option<String>,
    /// The allow rules, in order; anything none of them allows is denied.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
    /// Header edits applied to every request this profile allows.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// Query limits that apply before any rule.
    #[serde(default)]
    pub query: RawProfileQuery,
    /// Header edits on the app's responses to this profile's guests.
    #[serde(default)]
    pub response: RawResponse,
    /// The banner guestgate puts at the top of the app's HTML pages.
    #[serde(default)]
    pub banner: RawBanner,
}

/// `[response]` of a profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponse {
    /// Headers set on responses (literal values); they replace the app's.
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    /// Headers removed from responses (guestgate's defaults included).
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

/// `[banner]` of a profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBanner {
    /// Show it (default true).
    pub show: Option<bool>,
    /// The short label ("View-only").
    pub label: Option<String>,
    /// The sentence after it.
    pub text: Option<String>,
}

/// `[query]` of a profile: limits on every request, before any rule is tried.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfileQuery {
    /// Most query keys a request may carry (0: no limit). Apps' parsers stop at some
    /// count (1,000 for qs and PHP) and drop the rest, required keys included.
    pub max_keys: Option<usize>,
    /// Read `k[]`, `k[0]`, `k[x]` as `k` for repetition and requirements, the way qs, PHP
    /// and Rails parsers merge them into one key (default on).
    pub bracket_keys: Option<bool>,
}

/// One allow rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique within the profile; appears in audit events and metrics.
    pub name: String,
    /// HTTP methods, upper-case.
    pub methods: Vec<String>,
    /// Path template: literal segments and `{name}` (one segment) or a final `{name*}`.
    pub path: Option<String>,
    /// Alternative to `path`: an anchored regex (`^...$`) with named captures.
    pub regex: Option<String>,
    /// Query rules.
    #[serde(default)]
    pub query: RawQuery,
    /// Decoded path template sent upstream instead of the matched path.
    pub rewrite: Option<String>,
    /// Why this rule needs no binding to the share's case and version (static assets):
    /// `policy check` then notes it instead of warning.
    pub unscoped: Option<String>,
}

/// Query constraints of a rule.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    /// Keys that may appear, at most once each.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Keys that must appear exactly once with exactly this (templated) value.
    #[serde(default)]
    pub require: BTreeMap<String, String>,
    /// Let keys not named above through as well (named keys keep their limits).
    #[serde(default)]
    pub allow_other: bool,
}

/// Profile-level header edits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Headers set on allowed requests; values are templates.
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    /// Headers removed from allowed requests.
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

//! Policy test tables: TOML files of requests and the outcome each must get, run through
//! [`TrialGate`] (so through the proxy's own decision), for platform teams to keep in
//! their CI. A file names default share settings and its cases:
//!
//! ```toml
//! [share]                       # the share every case's session holds, unless it says otherwise
//! profile = "view-only"
//! case = "42"
//! version = "3"
//!
//! [[case]]
//! name = "a document, paged"
//! request = "GET /api/cases/42/versions/3/documents?page=2"
//! expect = "allow"
//! rule = "documents-list"
//! forwards = "/api/cases/42/versions/3/documents?page=2"
//!
//! [[case]]
//! request = "GET /api/cases/43/versions/3/documents"
//! headers = ["Accept: application/json"]
//! share = { state = "revoked" }   # active (default), revoked, expired, pending; or session = false
//! expect = "deny"
//! reason = "share_inactive"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::trial::{Outcome, ShareState, Trial, TrialGate, TrialShare};
use crate::toml_source::{Source, SourceError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    share: RawShare,
    #[serde(default, rename = "case")]
    cases: Vec<RawCase>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    profile: Option<String>,
    case: Option<String>,
    version: Option<String>,
    state: Option<ShareState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    request: String,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    share: RawShare,
    /// `false`: the request carries no guest session.
    session: Option<bool>,
    expect: String,
    rule: Option<String>,
    forwards: Option<String>,
    reason: Option<String>,
}

/// One case of a table, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// `file:line` and name, for reports.
    pub label: String,
    /// The request.
    pub trial: Trial,
    /// The outcome it must get (only the fields given are compared).
    pub expect: Expected,
}

/// What a case expects.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// `allow`, `pass`, `deny`, `reject` or `unavailable`.
    pub decision: String,
    /// The rule that allows.
    pub rule: Option<String>,
    /// The target the app receives.
    pub forwards: Option<String>,
    /// The reason label.
    pub reason: Option<String>,
}

/// Reads the cases of table files; errors name file, line and key.
pub fn load(files: &[impl AsRef<Path>]) -> Result<Vec<Case>, Vec<SourceError>> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let src = match Source::read(file.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let raw: RawTable = match src.deserialize() {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for (i, c) in raw.cases.into_iter().enumerate() {
            let key = format!("case[{i}]");
            let at = |k: &str, m: String| src.error_at(&format!("{key}.{k}"), m);
            let Some((method, target)) = c.request.split_once(' ') else {
                errors.push(at("request", "a request is `METHOD TARGET`".into()));
                continue;
            };
            if !["allow", "pass", "deny", "reject", "unavailable"].contains(&c.expect.as_str()) {
                errors.push(at(
                    "expect",
                    format!(
                        "`{}`: expect allow, pass, deny, reject or unavailable",
                        c.expect
                    ),
                ));
                continue;
            }
            if let Some(e) = c
                .headers
                .iter()
                .find_map(|h| super::trial::check_header_line(h).err())
            {
                errors.push(at("headers", e));
                continue;
            }
            let pick = |own: &Option<String>, default: &Option<String>, fallback: &str| {
                own.clone()
                    .or_else(|| default.clone())
                    .unwrap_or_else(|| fallback.to_string())
            };
            let share = (c.session != Some(false)).then(|| TrialShare {
                profile: pick(&c.share.profile, &raw.share.profile, "view-only"),
                case: pick(&c.share.case, &raw.share.case, "42"),
                version: pick(&c.share.version, &raw.share.version, "3"),
                state: c
                    .share
                    .state
                    .or(raw.share.state)
                    .unwrap_or(ShareState::Active),
            });
            let line = src.line_of(&key).map_or(String::new(), |l| format!(":{l}"));
            cases.push(Case {
                label: format!(
                    "{}{line}{}",
                    file.as_ref().display(),
                    c.name.map(|n| format!(" ({n})")).unwrap_or_default()
                ),
                trial: Trial {
                    method: method.to_string(),
                    target: target.trim().to_string(),
                    headers: c.headers,
                    share,
                },
                expect: Expected {
                    decision: c.expect,
                    rule: c.rule,
                    forwards: c.forwards,
                    reason: c.reason,
                },
            });
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// The differences between what a case expects and what happened (empty: it passed).
pub fn compare(expect: &Expected, got: &Outcome) -> Vec<String> {
    let mut diff = Vec::new();
    let mut check = |what: &str, want: Option<&str>, got: Option<&str>| {
        if let Some(w) = want {
            if Some(w) != got {
                diff.push(format!(
                    "{what}: expected {w}, got {}",
                    got.unwrap_or("nothing")
                ));
            }
        }
    };
    check("decision", Some(&expect.decision), Some(got.decision));
    check("reason", expect.reason.as_deref(), Some(got.reason));
    check("rule", expect.rule.as_deref(), got.rule.as_deref());
    check(
        "forwards",
        expect.forwards.as_deref(),
        got.forwards.as_deref(),
    );
    diff
}

/// What a run of tables covered: per profile, the rules some case allowed; and the
/// refusal reasons some case got.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Profile → rules allowed at least once; every profile a case names is a key, so a
    /// profile no case allows shows all its rules as missing.
    pub allowed: BTreeMap<String, BTreeSet<String>>,
    /// Reasons of refusals seen.
    pub refusals: BTreeSet<&'static str>,
}

impl Coverage {
    /// Records an outcome.
    pub fn add(&mut self, case: &Case, got: &Outcome) {
        if let Some(share) = &case.trial.share {
            let seen = self.allowed.entry(share.profile.clone()).or_default();
            if let Some(rule) = &got.rule {
                seen.insert(rule.clone());
            }
        }
        if got.status != 0 {
            self.refusals.insert(got.reason);
        }
    }

    /// Rules of the tested profiles no case allowed: (profile, rule).
    pub fn missing_rules(&self, gate: &TrialGate) -> Vec<(String, String)> {
        let policies = gate.policies();
        let mut out = Vec::new();
        for (profile, seen) in &self.allowed {
            if let Some(p) = policies.set.get(profile) {
                for r in &p.rules {
                    if !seen.contains(&r.name) {
                        out.push((profile.clone(), r.name.clone()));
                    }
                }
            }
        }
        out
    }
}

/// Runs cases; returns (failures as `label: diff` lines, coverage).
pub fn run(gate: &TrialGate, cases: &[Case]) -> (Vec<String>, Coverage) {
    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for case in cases {
        let got = gate.decide(&case.trial);
        coverage.add(case, &got);
        let diff = compare(&case.expect, &got);
        if !diff.is_empty() {
            let detail = got.detail.map(|d| format!(" ({d})")).unwrap_or_default();
            failures.push(format!(
                "{}: {} {}: {}{detail}",
                case.label,
                case.trial.method,
                case.trial.target,
                diff.join("; ")
            ));
        }
    }
    (failures, coverage)
}

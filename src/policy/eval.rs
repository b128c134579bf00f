//! Evaluation: method + canonical target + a share's scope → allow (with the rule and
//! the decoded path to forward) or a miss (the closest rule, a fixed reason, and what
//! exactly did not fit, for `policy explain`, `policy test` and the audit line). Pure
//! and synchronous; a miss borrows from the request and the scope, so the allow path
//! allocates nothing for it.

use std::fmt;

use super::compile::{Bindings, Profile, Rule, Var};
use super::path_template::PathTemplate;
use crate::target::{app_key, reads_as, CanonicalTarget};

/// The case and version a share is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Case id, compared as an exact string ("042" is not "42").
    pub case: &'a str,
    /// Version id, compared as an exact string.
    pub version: &'a str,
}

/// Why a profile denied a request. Ordered: a later variant is a "closer miss",
/// and when several shares or rules deny, the closest miss is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DenyReason {
    /// More query keys than the profile allows (checked before any rule).
    QueryTooManyKeys,
    /// No rule's path matched.
    NoRule,
    /// A rule's path matched but not with this method.
    Method,
    /// A query key no rule allows.
    QueryKey,
    /// A constrained query key appears more than once.
    QueryRepeated,
    /// A required query key is missing or has the wrong value.
    QueryRequirement,
    /// The path names another case or version than the share's.
    Scope,
}

/// What exactly did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why<'a> {
    /// No rule's pattern matches the path.
    NoRule,
    /// The query has `count` keys; the profile allows `max`.
    TooManyKeys {
        /// Keys sent.
        count: usize,
        /// Keys allowed.
        max: usize,
    },
    /// The rule does not allow this method.
    Method(&'a str),
    /// The path names `captured` where the share is for `share`.
    Scope {
        /// `case` or `version`.
        part: &'static str,
        /// What the path named.
        captured: &'a str,
        /// What the share is for.
        share: &'a str,
    },
    /// A key the rule does not name.
    QueryKey(&'a str),
    /// A key that appears more than once: its first and second spellings (`k` and
    /// `k[]` when bracket keys count as `k`).
    QueryRepeated(&'a str, &'a str),
    /// A required key missing (`got: None`) or with another value.
    QueryRequirement {
        /// The key, as sent (or as required, when missing).
        key: String,
        /// The value required.
        want: String,
        /// The value sent.
        got: Option<&'a str>,
    },
}

/// A profile's closest miss for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed<'a> {
    /// The fixed reason.
    pub reason: DenyReason,
    /// Index of the closest rule, when one matched the path.
    pub rule: Option<usize>,
    /// What did not fit.
    pub why: Why<'a>,
}

impl Missed<'_> {
    /// The miss in words, naming the rule: "rule `document`: the path names case 43, the
    /// share is for case 42".
    pub fn describe(&self, profile: &Profile) -> String {
        let rule = self.rule.and_then(|i| profile.rules.get(i));
        let text = match (&self.why, rule) {
            (Why::Method(m), Some(r)) => format!("allows {}, not {m}", r.methods.join(", ")),
            (why, _) => why.to_string(),
        };
        match rule {
            Some(r) => format!("rule `{}`: {text}", r.name),
            None => text,
        }
    }
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NoRule => write!(f, "no rule matches the path"),
            Why::TooManyKeys { count, max } => write!(
                f,
                "the query has {count} keys; the profile allows at most {max}"
            ),
            Why::Method(m) => write!(f, "method {m} is not allowed"),
            Why::Scope {
                part,
                captured,
                share,
            } => write!(
                f,
                "the path names {part} {captured}, the share is for {part} {share}"
            ),
            Why::QueryKey(k) => write!(f, "query key `{k}` is not allowed"),
            Why::QueryRepeated(k, again) if k == again => {
                write!(f, "query key `{k}` appears more than once")
            }
            Why::QueryRepeated(first, again) => write!(
                f,
                "query keys `{first}` and `{again}` are one key to the app \
                 (qs, PHP and Rails read both as the same key)"
            ),
            Why::QueryRequirement { key, want, got } => match got {
                Some(g) => write!(f, "query key `{key}` must be {want}, is {g}"),
                None => write!(f, "query key `{key}` must be {want}, and is missing"),
            },
        }
    }
}

/// An allow: which rule, and the decoded path to forward (the match, or its rewrite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Index of the rule in the profile.
    pub rule: usize,
    /// Decoded path to forward; `None` = the matched path unchanged.
    pub rewritten_path: Option<String>,
}

/// The outcome of evaluating one profile for one share.
pub type Evaluation<'a> = Result<Allowed, Missed<'a>>;

/// A matched rule's captures.
enum Caps<'r, 'h> {
    /// A rule that uses no capture (see [`Rule::needs_captures`]).
    None,
    /// A `path` template's placeholders, read off the path when asked for.
    Template(&'r PathTemplate, &'h str),
    /// A `regex` rule's capture groups.
    Regex(regex::Captures<'h>),
}

impl<'h> Caps<'_, 'h> {
    fn name(&self, name: &str) -> Option<&'h str> {
        match self {
            Caps::None => None,
            Caps::Template(t, path) => t.capture(path, name),
            Caps::Regex(c) => c.name(name).map(|m| m.as_str()),
        }
    }
}

struct CaptureBindings<'a, 'h> {
    caps: &'a Caps<'a, 'h>,
    scope: Scope<'a>,
}

impl Bindings for CaptureBindings<'_, '_> {
    fn value(&self, var: &Var) -> &str {
        match var {
            Var::Case => self.scope.case,
            Var::Version => self.scope.version,
            Var::Capture(n) => self.caps.name(n).unwrap_or(""),
            // Identity values are not allowed in rule templates (checked at compile).
            _ => "",
        }
    }
}

/// Whether query key `query_key` is, to the app, the rule's key `name` (or a member of
/// it). With `bracket_keys` off, only the exact spelling is.
pub fn key_is(query_key: &str, name: &str, bracket_keys: bool) -> bool {
    if bracket_keys {
        reads_as(&app_key(query_key), name)
    } else {
        query_key == name
    }
}

impl Profile {
    /// Evaluates a request against this profile for one share's scope.
    pub fn evaluate<'a>(
        &self,
        method: &'a str,
        target: &'a CanonicalTarget,
        scope: Scope<'a>,
    ) -> Evaluation<'a> {
        let count = target.query.len();
        if self.max_query_keys > 0 && count > self.max_query_keys {
            return Err(Missed {
                reason: DenyReason::QueryTooManyKeys,
                rule: None,
                why: Why::TooManyKeys {
                    count,
                    max: self.max_query_keys,
                },
            });
        }
        let mut closest = Missed {
            reason: DenyReason::NoRule,
            rule: None,
            why: Why::NoRule,
        };
        // Candidate rules in file order: every rule whose template matches the path, or,
        // when some rule is a `regex` or there are many, what the profile's RegexSet
        // finds in one pass.
        let by_template = self.walk_rules.then(|| {
            self.rules.iter().enumerate().filter(|(_, r)| {
                r.template
                    .as_ref()
                    .is_some_and(|t| t.is_match(&target.path))
            })
        });
        let by_set = (!self.walk_rules).then(|| {
            self.set
                .matches(&target.path)
                .into_iter()
                .filter_map(|i| Some((i, self.rules.get(i)?)))
        });
        let candidates = by_template
            .into_iter()
            .flatten()
            .chain(by_set.into_iter().flatten());
        for (idx, rule) in candidates {
            match check_rule(rule, method, target, scope, self.bracket_keys) {
                Ok(rewritten_path) => {
                    return Ok(Allowed {
                        rule: idx,
                        rewritten_path,
                    })
                }
                Err((reason, why)) if reason > closest.reason => {
                    closest = Missed {
                        reason,
                        rule: Some(idx),
                        why,
                    }
                }
                Err(_) => {}
            }
        }
        Err(closest)
    }
}

fn check_rule<'a>(
    rule: &Rule,
    method: &'a str,
    target: &'a CanonicalTarget,
    scope: Scope<'a>,
    bracket_keys: bool,
) -> Result<Option<String>, (DenyReason, Why<'a>)> {
    // The rule's path already matched; a rule that binds nothing needs no capture
    // positions, the costliest search a regex does. A template reads its captures off
    // the path's segments.
    let caps = match &rule.template {
        _ if !rule.needs_captures() => Caps::None,
        Some(t) => Caps::Template(t, &target.path),
        None => Caps::Regex(
            rule.regex
                .captures(&target.path)
                .ok_or((DenyReason::NoRule, Why::NoRule))?,
        ),
    };
    // Scope first: a guest probing another case is the event worth reporting.
    for (binds, part, share) in [
        (rule.binds_case, "case", scope.case),
        (rule.binds_version, "version", scope.version),
    ] {
        if !binds {
            continue;
        }
        let captured = caps.name(part).unwrap_or("");
        if captured != share {
            return Err((
                DenyReason::Scope,
                Why::Scope {
                    part,
                    captured,
                    share,
                },
            ));
        }
    }
    if !rule.methods.iter().any(|m| m == method) {
        return Err((DenyReason::Method, Why::Method(method)));
    }
    let bindings = CaptureBindings { caps: &caps, scope };
    check_query(rule, target, &bindings, bracket_keys)?;
    Ok(rule.rewrite.as_ref().map(|t| t.render(&bindings)))
}

fn check_query<'a>(
    rule: &Rule,
    target: &'a CanonicalTarget,
    bindings: &CaptureBindings<'_, '_>,
    bracket_keys: bool,
) -> Result<(), (DenyReason, Why<'a>)> {
    let q = &rule.query;
    // The first pair read as `key`, and the next one, if another follows.
    let first_two = |key: &str| {
        let mut values = target
            .query
            .iter()
            .filter(|(k, _)| key_is(k, key, bracket_keys));
        (values.next(), values.next())
    };
    let repeated = |first: &'a str, second: &'a str| {
        (DenyReason::QueryRepeated, Why::QueryRepeated(first, second))
    };
    for (key, want) in &q.require {
        match first_two(key) {
            (Some((k, _)), Some((again, _))) => return Err(repeated(k, again)),
            (Some((k, v)), None) => {
                let want = want.render(bindings);
                // A bracketed spelling is a list in the app: never the one required value.
                if k != key || *v != want {
                    return Err((
                        DenyReason::QueryRequirement,
                        Why::QueryRequirement {
                            key: k.clone(),
                            want,
                            got: Some(v),
                        },
                    ));
                }
            }
            (None, _) => {
                return Err((
                    DenyReason::QueryRequirement,
                    Why::QueryRequirement {
                        key: key.clone(),
                        want: want.render(bindings),
                        got: None,
                    },
                ))
            }
        }
    }
    for key in &q.allow {
        if let (Some((k, _)), Some((again, _))) = first_two(key) {
            return Err(repeated(k, again));
        }
    }
    if !q.allow_other {
        let named = |k: &str| {
            q.allow.iter().any(|a| key_is(k, a, bracket_keys))
                || q.require.iter().any(|(r, _)| key_is(k, r, bracket_keys))
        };
        if let Some((k, _)) = target.query.iter().find(|(k, _)| !named(k)) {
            return Err((DenyReason::QueryKey, Why::QueryKey(k)));
        }
    }
    Ok(())
}

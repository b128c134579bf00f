//! Evaluation: method + canonical target + a share's scope → allow (with the rule and
//! the decoded path to forward) or deny (with a fixed reason). Pure and synchronous.

use super::compile::{Bindings, Profile, Rule, Var};
use crate::target::CanonicalTarget;

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

/// An allow: which rule, and the decoded path to forward (the match, or its rewrite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Index of the rule in the profile.
    pub rule: usize,
    /// Decoded path to forward; `None` = the matched path unchanged.
    pub rewritten_path: Option<String>,
}

/// The outcome of evaluating one profile for one share.
pub type Evaluation = Result<Allowed, DenyReason>;

struct CaptureBindings<'a, 'h> {
    caps: &'a regex::Captures<'h>,
    scope: Scope<'a>,
}

impl Bindings for CaptureBindings<'_, '_> {
    fn value(&self, var: &Var) -> &str {
        match var {
            Var::Case => self.scope.case,
            Var::Version => self.scope.version,
            Var::Capture(n) => self.caps.name(n).map_or("", |m| m.as_str()),
            // Identity values are not allowed in rule templates (checked at compile).
            _ => "",
        }
    }
}

impl Profile {
    /// Evaluates a request against this profile for one share's scope.
    pub fn evaluate(&self, method: &str, target: &CanonicalTarget, scope: Scope<'_>) -> Evaluation {
        let mut closest = DenyReason::NoRule;
        for idx in self.set.matches(&target.path).iter() {
            let rule = &self.rules[idx];
            match check_rule(rule, method, target, scope) {
                Ok(rewritten_path) => {
                    return Ok(Allowed {
                        rule: idx,
                        rewritten_path,
                    })
                }
                Err(reason) => closest = closest.max(reason),
            }
        }
        Err(closest)
    }
}

fn check_rule(
    rule: &Rule,
    method: &str,
    target: &CanonicalTarget,
    scope: Scope<'_>,
) -> Result<Option<String>, DenyReason> {
    let caps = rule
        .regex
        .captures(&target.path)
        .ok_or(DenyReason::NoRule)?;
    // Scope first: a guest probing another case is the event worth reporting.
    if rule.binds_case && caps.name("case").map(|m| m.as_str()) != Some(scope.case) {
        return Err(DenyReason::Scope);
    }
    if rule.binds_version && caps.name("version").map(|m| m.as_str()) != Some(scope.version) {
        return Err(DenyReason::Scope);
    }
    if !rule.methods.iter().any(|m| m == method) {
        return Err(DenyReason::Method);
    }
    let bindings = CaptureBindings { caps: &caps, scope };
    check_query(rule, target, &bindings)?;
    Ok(rule.rewrite.as_ref().map(|t| t.render(&bindings)))
}

fn check_query(
    rule: &Rule,
    target: &CanonicalTarget,
    bindings: &CaptureBindings<'_, '_>,
) -> Result<(), DenyReason> {
    let q = &rule.query;
    for (key, want) in &q.require {
        let mut values = target.query.iter().filter(|(k, _)| k == key);
        match (values.next(), values.next()) {
            (Some(_), Some(_)) => return Err(DenyReason::QueryRepeated),
            (Some((_, v)), None) if *v == want.render(bindings) => {}
            _ => return Err(DenyReason::QueryRequirement),
        }
    }
    for key in &q.allow {
        if target.query_count(key) > 1 {
            return Err(DenyReason::QueryRepeated);
        }
    }
    if !q.allow_other {
        let named =
            |k: &str| q.allow.iter().any(|a| a == k) || q.require.iter().any(|(r, _)| r == k);
        if target.query.iter().any(|(k, _)| !named(k)) {
            return Err(DenyReason::QueryKey);
        }
    }
    Ok(())
}

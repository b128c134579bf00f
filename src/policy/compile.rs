//! Compiles a raw profile into its matcher: path templates into segment matchers (and
//! their regexes), anchored regexes into one `RegexSet` (one pass per request) plus
//! per-rule capture regexes, and value templates into parts; every mistake is reported
//! against its file, line and rule.

use std::collections::{BTreeSet, HashSet};

use http::{HeaderName, HeaderValue};
use regex::{Regex, RegexSet};

use super::parse::{RawProfile, RawRule};
use super::path_template::PathTemplate;
use super::response::{compile_response, ResponsePlan};
use crate::header_names::is_managed;
use crate::toml_source::{Source, SourceError};

/// Methods a rule may name. Anything else is a typo, not a method the app serves.
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A value a template can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// A named capture of the rule's path pattern.
    Capture(String),
    /// `{case}`: the share's case (equal to the capture when the pattern has one).
    Case,
    /// `{version}`: the share's version.
    Version,
    /// `{guest.email}`: the verified guest email.
    GuestEmail,
    /// `{share.id}`: the share id.
    ShareId,
    /// `{profile}`: the profile name.
    Profile,
    /// `{rule}`: the rule that allowed the request.
    Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A string with `{placeholders}`, parsed once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Where template values come from when a request is allowed.
pub trait Bindings {
    /// The value of one placeholder.
    fn value(&self, var: &Var) -> &str;
}

impl Template {
    /// Parses `text`, resolving each placeholder with `resolve` (None = unknown placeholder).
    pub fn parse(text: &str, resolve: impl Fn(&str) -> Option<Var>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("unbalanced `}}` in `{text}`"));
            }
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
            let name = &after[..close];
            let var = resolve(name).ok_or_else(|| format!("unknown placeholder `{{{name}}}`"))?;
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders with the given bindings.
    pub fn render(&self, b: &dyn Bindings) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(b.value(v)),
            }
        }
        out
    }

    /// The placeholders it names, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    /// Whether the template names `var`.
    pub fn names(&self, var: &Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == var))
    }

    /// The literal text, if the template has no placeholder.
    pub fn literal(&self) -> Option<String> {
        match self.parts.as_slice() {
            [] => Some(String::new()),
            [Part::Lit(s)] => Some(s.clone()),
            _ => None,
        }
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            Part::Var(_) => None,
        })
    }
}

/// Query constraints of a compiled rule.
#[derive(Debug, Clone)]
pub struct QueryRule {
    /// Keys that may appear at most once.
    pub allow: Vec<String>,
    /// Keys that must appear exactly once with this value.
    pub require: Vec<(String, Template)>,
    /// Whether unnamed keys may appear.
    pub allow_other: bool,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// Methods allowed.
    pub methods: Vec<String>,
    /// The anchored pattern, for captures.
    pub regex: Regex,
    /// The `path` template, when the rule has one: matched without the regex.
    pub template: Option<PathTemplate>,
    /// Whether the pattern captures `case` / `version` (they must then equal the scope).
    pub binds_case: bool,
    /// See `binds_case`.
    pub binds_version: bool,
    /// Query constraints.
    pub query: QueryRule,
    /// Rewrite of the decoded path.
    pub rewrite: Option<Template>,
    /// Source text of the pattern, for `policy explain`.
    pub pattern_source: String,
    /// Whether a `query.require` value names `{case}` / `{version}`.
    pub requires_case: bool,
    /// See `requires_case`.
    pub requires_version: bool,
    /// Why the rule needs no scope, when its author said so.
    pub unscoped: Option<String>,
    /// Line of the rule in its file.
    pub line: Option<usize>,
}

impl Rule {
    /// Whether evaluating the rule reads capture positions: it binds the case or the
    /// version, rewrites the path, or requires query values (their templates may name
    /// captures). Any other rule is decided by the profile's RegexSet match alone.
    pub fn needs_captures(&self) -> bool {
        self.binds_case
            || self.binds_version
            || self.rewrite.is_some()
            || !self.query.require.is_empty()
    }

    /// Whether a request allowed by this rule is bound to the share's case (by a path
    /// capture or a required query value).
    pub fn bound_to_case(&self) -> bool {
        self.binds_case || self.requires_case
    }

    /// Whether it is bound to the share's version.
    pub fn bound_to_version(&self) -> bool {
        self.binds_version || self.requires_version
    }
}

/// The default `[query] max_keys`: far above what a page or API call sends, far below
/// the counts where apps' parsers start dropping keys.
pub const DEFAULT_MAX_QUERY_KEYS: usize = 64;

/// Most rules a profile's paths are matched against one by one. A template walk costs
/// a few dozen instructions per rule whose first segments fit; the `RegexSet`'s one pass
/// costs a few thousand whatever the count. Above this many rules (which may share long
/// prefixes) the set finds the candidates; their captures are still read off the
/// templates.
pub const WALK_MAX_RULES: usize = 32;

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Description.
    pub description: String,
    /// What a guest can do, in words (`can`, or the description).
    pub can: String,
    /// What a guest cannot do, in words (`cannot`, or a default naming the scope).
    pub cannot: String,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// All rule patterns, so one pass finds the candidate rules.
    pub set: RegexSet,
    /// Whether candidate rules are found by walking the rules in order, each `path`
    /// template matched segment by segment, rather than by the `RegexSet`: when every
    /// rule has a template and there are at most [`WALK_MAX_RULES`] of them.
    pub walk_rules: bool,
    /// Headers set on allowed requests.
    pub set_headers: Vec<(HeaderName, Template)>,
    /// Those headers as rendered for each share and rule, reused across requests.
    pub rendered: std::sync::Arc<super::rendered::RenderCache>,
    /// Headers removed from allowed requests.
    pub remove_headers: Vec<HeaderName>,
    /// Most query keys a request may carry (0: no limit), checked before any rule.
    pub max_query_keys: usize,
    /// Whether `k[]`, `k[0]`, `k[x]` count as `k`.
    pub bracket_keys: bool,
    /// What guestgate does to the app's responses: headers and the banner.
    pub response: std::sync::Arc<ResponsePlan>,
    /// The file it came from.
    pub file: String,
}

/// Compiles one profile; collects every error rather than stopping at the first.
pub fn compile_profile(raw: RawProfile, src: &Source) -> Result<Profile, Vec<SourceError>> {
    let mut errors = Vec::new();
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        errors.push(src.error_at(
            "name",
            "profile name must be non-empty lower-case letters, digits, `-` or `_`",
        ));
    }

    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw_rule) in raw.rules.into_iter().enumerate() {
        let rule_name = raw_rule.name.clone();
        let at = |key: &str, msg: String| {
            let mut e = src.error_at(
                &format!("rule[{i}].{key}"),
                format!("rule \"{rule_name}\": {msg}"),
            );
            if e.line.is_none() {
                e.line = src.line_of(&format!("rule[{i}]"));
            }
            e
        };
        if !seen.insert(raw_rule.name.clone()) {
            errors.push(at(
                "name",
                format!("duplicate rule name `{}`", raw_rule.name),
            ));
            continue;
        }
        match compile_rule(raw_rule, &at) {
            Ok(mut r) => {
                r.line = src.line_of(&format!("rule[{i}]"));
                rules.push(r)
            }
            Err(mut e) => errors.append(&mut e),
        }
    }

    let mut set_headers = Vec::new();
    for (name, value) in &raw.upstream.set_headers {
        let key = format!("upstream.set_headers.{name}");
        let header = match header_name(name) {
            Ok(h) => h,
            Err(msg) => {
                errors.push(src.error_at(&key, msg));
                continue;
            }
        };
        match Template::parse(value, identity_var) {
            Ok(t) => {
                if t.literals().any(|l| HeaderValue::from_str(l).is_err()) {
                    errors.push(src.error_at(&key, "value has characters not allowed in a header"));
                } else {
                    set_headers.push((header, t));
                }
            }
            Err(msg) => errors.push(src.error_at(
                &key,
                format!("{msg}; header values may use {{guest.email}}, {{share.id}}, {{case}}, {{version}}, {{profile}}, {{rule}}"),
            )),
        }
    }
    let mut remove_headers = Vec::new();
    for (i, name) in raw.upstream.remove_headers.iter().enumerate() {
        match header_name(name) {
            Ok(h) => remove_headers.push(h),
            Err(msg) => errors.push(src.error_at(&format!("upstream.remove_headers[{i}]"), msg)),
        }
    }

    let can = raw.can.unwrap_or_else(|| {
        if raw.description.is_empty() {
            format!("use the {} access that was granted", raw.name)
        } else {
            raw.description.clone()
        }
    });
    let cannot = raw.cannot.unwrap_or_else(|| {
        "see other cases or other versions, or do anything not named above".into()
    });
    let read_only = rules
        .iter()
        .all(|r| r.methods.iter().all(|m| m == "GET" || m == "HEAD"));
    let response =
        compile_response(raw.response, raw.banner, read_only, &can, src).map_err(|mut e| {
            errors.append(&mut e);
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    let Ok(response) = response else {
        return Err(errors);
    };
    let set = RegexSet::new(rules.iter().map(|r| r.regex.as_str()))
        .map_err(|e| vec![src.error_at("rule", format!("rules do not compile together: {e}"))])?;
    Ok(Profile {
        name: raw.name,
        description: raw.description,
        can,
        cannot,
        max_query_keys: raw.query.max_keys.unwrap_or(DEFAULT_MAX_QUERY_KEYS),
        bracket_keys: raw.query.bracket_keys.unwrap_or(true),
        walk_rules: rules.len() <= WALK_MAX_RULES && rules.iter().all(|r| r.template.is_some()),
        rules,
        set,
        rendered: std::sync::Arc::new(super::rendered::RenderCache::for_templates(&set_headers)),
        set_headers,
        remove_headers,
        response: std::sync::Arc::new(response),
        file: src.path().display().to_string(),
    })
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    let h = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    // Routing, framing and guestgate's own cookie travel through other code paths;
    // letting a policy touch them would open smuggling.
    if is_managed(h.as_str()) {
        return Err(format!(
            "header `{name}` is managed by guestgate and cannot be set or removed by a profile"
        ));
    }
    if name.contains('_') {
        return Err(format!(
            "header `{name}` contains `_`; backends disagree on such names, use `-`"
        ));
    }
    Ok(h)
}

pub(super) fn identity_var(name: &str) -> Option<Var> {
    Some(match name {
        "guest.email" => Var::GuestEmail,
        "share.id" => Var::ShareId,
        "case" => Var::Case,
        "version" => Var::Version,
        "profile" => Var::Profile,
        "rule" => Var::Rule,
        _ => return None,
    })
}

fn compile_rule(
    raw: RawRule,
    at: &dyn Fn(&str, String) -> SourceError,
) -> Result<Rule, Vec<SourceError>> {
    let mut errors = Vec::new();
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        errors.push(at(
            "name",
            "rule name must be ASCII letters, digits, `-` or `_`".into(),
        ));
    }
    if raw.methods.is_empty() {
        errors.push(at("methods", "a rule needs at least one method".into()));
    }
    for m in &raw.methods {
        if !KNOWN_METHODS.contains(&m.as_str()) {
            errors.push(at(
                "methods",
                format!(
                    "unknown method `{m}` (methods are upper-case: {})",
                    KNOWN_METHODS.join(", ")
                ),
            ));
        }
    }

    let template = raw.path.as_deref().map(PathTemplate::parse);
    let (pattern, source_key) = match (&template, &raw.regex) {
        (Some(t), None) => (
            t.as_ref()
                .map(PathTemplate::to_regex)
                .map_err(|m| at("path", m.clone())),
            "path",
        ),
        (None, Some(r)) => (user_regex(r).map_err(|m| at("regex", m)), "regex"),
        (Some(_), Some(_)) => {
            errors.push(at("path", "give either `path` or `regex`, not both".into()));
            return Err(errors);
        }
        (None, None) => {
            errors.push(at(
                "path",
                "a rule needs a `path` template or a `regex`".into(),
            ));
            return Err(errors);
        }
    };
    let regex = match pattern.and_then(|p| {
        Regex::new(&p).map_err(|e| at(source_key, format!("pattern does not compile: {e}")))
    }) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    let captures: BTreeSet<String> = regex.capture_names().flatten().map(String::from).collect();
    if let Some(name) = repeated_capture(regex.as_str()) {
        errors.push(at(
            source_key,
            format!(
                "capture `{name}` is inside a repetition: the app sees every repetition, guestgate would compare only the last; capture it once"
            ),
        ));
    }
    let scoped_var = |name: &str| -> Option<Var> {
        match name {
            "case" => Some(Var::Case),
            "version" => Some(Var::Version),
            n if captures.contains(n) => Some(Var::Capture(n.to_string())),
            _ => None,
        }
    };

    let mut require = Vec::new();
    for (k, v) in &raw.query.require {
        match Template::parse(v, scoped_var) {
            Ok(t) => require.push((k.clone(), t)),
            Err(m) => errors.push(at(
                &format!("query.require.{k}"),
                format!("{m}; a requirement may use {{case}}, {{version}} or a capture of the path ({})", list(&captures)),
            )),
        }
    }
    for k in &raw.query.allow {
        if raw.query.require.contains_key(k) {
            errors.push(at(
                "query.allow",
                format!("`{k}` is both allowed and required"),
            ));
        }
    }
    let rewrite = match &raw.rewrite {
        None => None,
        Some(r) if !r.starts_with('/') => {
            errors.push(at("rewrite", "a rewrite must start with `/`".into()));
            None
        }
        Some(r) => match Template::parse(r, scoped_var) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.push(at(
                    "rewrite",
                    format!("{m}; a rewrite may use {{case}}, {{version}} or a capture of the path ({})", list(&captures)),
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let names = |var: &Var| require.iter().any(|(_, t)| t.names(var));
    Ok(Rule {
        requires_case: names(&Var::Case),
        requires_version: names(&Var::Version),
        unscoped: raw.unscoped,
        line: None,
        name: raw.name,
        methods: raw.methods,
        binds_case: captures.contains("case"),
        binds_version: captures.contains("version"),
        regex,
        template: template.and_then(Result::ok),
        query: super::compile::QueryRule {
            allow: raw.query.allow,
            require,
            allow_other: raw.query.allow_other,
        },
        rewrite,
        pattern_source: raw.path.or(raw.regex).unwrap_or_default(),
    })
}

fn list(captures: &BTreeSet<String>) -> String {
    if captures.is_empty() {
        "it has none".into()
    } else {
        captures
            .iter()
            .map(|c| format!("{{{c}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `/api/cases/{case}/documents/{doc}` → `^/api/cases/(?P<case>[^/]+)/documents/(?P<doc>[^/]+)$`.
/// A placeholder is a whole segment; `{name*}` (last segment only) spans one or more segments.
pub fn template_to_regex(template: &str) -> Result<String, String> {
    PathTemplate::parse(template).map(|t| t.to_regex())
}

/// A user regex must be visibly anchored at both ends; it is also wrapped so that a
/// top-level alternation (`^/a$|/b`) cannot escape the anchors.
/// The name of a capture that can match more than once (inside `*`, `+` or `{n,m}` with
/// m > 1), if any: `(?:/cases/(?P<case>[0-9]+))+` lets `/cases/44/cases/42` through with
/// `case` = 42.
fn repeated_capture(pattern: &str) -> Option<String> {
    use regex_syntax::hir::{Hir, HirKind};
    fn walk(h: &Hir, repeated: bool) -> Option<String> {
        match h.kind() {
            HirKind::Capture(c) => match (&c.name, repeated) {
                (Some(name), true) => Some(name.to_string()),
                _ => walk(&c.sub, repeated),
            },
            HirKind::Repetition(r) => walk(&r.sub, repeated || r.max != Some(1)),
            HirKind::Concat(hs) | HirKind::Alternation(hs) => {
                hs.iter().find_map(|h| walk(h, repeated))
            }
            _ => None,
        }
    }
    walk(&regex_syntax::parse(pattern).ok()?, false)
}

fn user_regex(r: &str) -> Result<String, String> {
    if !r.starts_with('^') || !r.ends_with('$') || r.ends_with("\\$") {
        return Err("a rule regex must be anchored: start with `^` and end with `$`".into());
    }
    Ok(format!("^(?:{})$", &r[1..r.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_anchored_single_segment_regexes() {
        let r = template_to_regex("/api/cases/{case}/documents/{doc}").unwrap();
        assert_eq!(r, "^/api/cases/(?P<case>[^/]+)/documents/(?P<doc>[^/]+)$");
        let re = Regex::new(&r).unwrap();
        assert!(re.is_match("/api/cases/1/documents/2"));
        assert!(!re.is_match("/api/cases/1/documents/2/content"));
        assert!(!re.is_match("/api/cases/1/x/documents/2"));
        let r = template_to_regex("/static/{file*}").unwrap();
        assert!(Regex::new(&r).unwrap().is_match("/static/a/b.css"));
        assert_eq!(template_to_regex("/a.b").unwrap(), "^/a\\.b$");
    }

    #[test]
    fn bad_templates_are_refused() {
        for t in [
            "api/cases",
            "/cases/{Case}",
            "/cases/{case}x",
            "/cases/{case}/{case}",
            "/files/{p*}/x",
            "/a//b",
            "/a/../b",
            "/a;b",
            "/{}",
        ] {
            assert!(template_to_regex(t).is_err(), "{t}");
        }
    }

    #[test]
    fn captures_inside_repetitions_are_found() {
        for (re, want) in [
            ("^(?:/cases/(?P<case>[0-9]+))+/x$", Some("case")),
            ("^/a(?:/(?P<doc>[a-z]+)){1,3}$", Some("doc")),
            ("^/a(?:/(?P<v>[a-z]+))*$", Some("v")),
            ("^/a(?:/(?P<case>[0-9]+))?$", None),
            ("^/cases/(?P<case>[0-9]+)/(?P<f>.+)$", None),
        ] {
            assert_eq!(repeated_capture(re).as_deref(), want, "{re}");
        }
    }

    #[test]
    fn user_regexes_must_be_anchored() {
        assert!(user_regex("/a").is_err());
        assert!(user_regex("^/a").is_err());
        assert!(user_regex("/a$").is_err());
        assert!(user_regex("^/a\\$").is_err());
        let wrapped = user_regex("^/a$|^/b$").unwrap();
        let re = Regex::new(&wrapped).unwrap();
        assert!(!re.is_match("/a/../x/b"));
        assert!(re.is_match("/b"));
    }

    #[test]
    fn templates_parse_and_render() {
        struct B;
        impl Bindings for B {
            fn value(&self, v: &Var) -> &str {
                match v {
                    Var::GuestEmail => "g@example.com",
                    Var::Case => "42",
                    _ => "?",
                }
            }
        }
        let t = Template::parse("{guest.email} on {case}", identity_var).unwrap();
        assert_eq!(t.render(&B), "g@example.com on 42");
        assert!(Template::parse("{nope}", identity_var).is_err());
        assert!(Template::parse("{case", identity_var).is_err());
        assert!(Template::parse("case}", identity_var).is_err());
        assert_eq!(
            Template::parse("plain", identity_var).unwrap().literal(),
            Some("plain".into())
        );
    }
}

//! The policy linter: rules that compile but leak. Each check looks at one compiled
//! profile and reports what a plausible first draft gets wrong, with the file, line and
//! rule, and a level: a warning is a likely leak (`policy check --strict` fails on it), a
//! note is worth a second look.

use std::fmt;

use super::{PolicySet, Profile, Var};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Worth a look.
    Note,
    /// A likely leak.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// How serious.
    pub level: Level,
    /// Which check (`unbound`, `case-not-version`, ...).
    pub check: &'static str,
    /// The profile's file.
    pub file: String,
    /// Line of the rule, when the finding is about one.
    pub line: Option<usize>,
    /// The rule, when the finding is about one.
    pub rule: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Note => "note",
        };
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {level}[{}]", self.check)?;
        if let Some(r) = &self.rule {
            write!(f, ": rule \"{r}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every finding of every profile, in file order.
pub fn lint(set: &PolicySet) -> Vec<Lint> {
    set.profiles().flat_map(lint_profile).collect()
}

/// A profile's findings.
pub fn lint_profile(p: &Profile) -> Vec<Lint> {
    let mut out = Vec::new();
    check_query_limit(p, &mut out);
    for rule in &p.rules {
        let finding = |level, check, message: String| Lint {
            level,
            check,
            file: p.file.clone(),
            line: rule.line,
            rule: Some(rule.name.clone()),
            message,
        };
        match (rule.bound_to_case(), rule.bound_to_version()) {
            (true, true) => {}
            (true, false) => out.push(finding(
                Level::Warning,
                "case-not-version",
                "bound to the share's case but not its version: every version of the case is reachable; capture `{version}` in the path, or require it in the query".into(),
            )),
            (false, true) => out.push(finding(
                Level::Warning,
                "version-not-case",
                "bound to the share's version but not its case: the same version of every case is reachable; capture `{case}` too".into(),
            )),
            (false, false) => match &rule.unscoped {
                Some(why) => out.push(finding(
                    Level::Note,
                    "unscoped",
                    format!("not bound to the share's case or version, on purpose: {why}"),
                )),
                None => out.push(finding(
                    Level::Warning,
                    "unbound",
                    "not bound to the share's case or version: a guest reaches every case this path serves (by id, or by listing); capture `{case}` and `{version}`, require them in the query, or say why with `unscoped = \"...\"`".into(),
                )),
            },
        }
        if rule.query.allow_other && !rule.query.require.is_empty() {
            out.push(finding(
                Level::Warning,
                "allow-other-with-require",
                "`allow_other` next to `require`: keys the rule does not name pass, and an app's parser may read them as more values of a required key, or stop before it; name the keys in `query.allow` instead".into(),
            ));
        }
        for name in rule.regex.capture_names().flatten() {
            let lower = name.to_ascii_lowercase();
            if name != "case"
                && name != "version"
                && (lower.contains("case") || lower.contains("version"))
            {
                out.push(finding(
                    Level::Warning,
                    "scope-like-capture",
                    format!("the path captures `{{{name}}}`, which is compared with nothing: whatever the guest puts there reaches the app; name it `{{case}}` or `{{version}}` so it must equal the share's"),
                ));
            }
        }
        if let Some(rewrite) = &rule.rewrite {
            for (bound, var, part) in [
                (rule.bound_to_case(), Var::Case, "case"),
                (rule.bound_to_version(), Var::Version, "version"),
            ] {
                if bound && !rewrite.names(&var) {
                    out.push(finding(
                        Level::Warning,
                        "rewrite-drops-scope",
                        format!("the rule is bound to the share's {part}, but the rewrite sends the app a path without `{{{part}}}`: what the app reads there comes from another capture or from nowhere; put `{{{part}}}` in the rewrite"),
                    ));
                }
            }
        }
        if !p.bracket_keys && !rule.query.require.is_empty() {
            out.push(finding(
                Level::Warning,
                "bracket-keys-off",
                "the profile reads `k[]` as a key of its own, but qs, PHP and Rails read it as more values of `k`: `k[]=other` passes a requirement on `k`; leave `[query] bracket_keys` on".into(),
            ));
        }
    }
    out
}

fn check_query_limit(p: &Profile, out: &mut Vec<Lint>) {
    if p.max_query_keys == 0 || p.max_query_keys > 1000 {
        out.push(Lint {
            level: Level::Warning,
            check: "no-query-limit",
            file: p.file.clone(),
            line: None,
            rule: None,
            message: format!(
                "no useful limit on the number of query keys (`[query] max_keys = {}`): apps' parsers stop at some count (1,000 for qs and PHP) and drop the rest, required keys included; keep the default ({}) or set one below 1000",
                p.max_query_keys,
                super::DEFAULT_MAX_QUERY_KEYS
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lints(text: &str) -> Vec<(Level, &'static str, Option<String>)> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.toml"), text).unwrap();
        let set = PolicySet::load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
        lint(&set)
            .into_iter()
            .map(|l| (l.level, l.check, l.rule))
            .collect()
    }

    /// The four shapes a plausible first draft leaked with, against a real REST app.
    #[test]
    fn the_drafts_that_leaked_are_caught() {
        use Level::*;
        let rule = |name: &str, body: &str| {
            format!("name = \"draft\"\n[[rule]]\nname = \"{name}\"\nmethods = [\"GET\"]\n{body}\n")
        };
        let table: &[(String, Vec<(Level, &str)>)] = &[
            // bound to the case but not the version: other versions leaked
            (rule("docs", "path = \"/cases/{case}/documents\""), vec![(Warning, "case-not-version")]),
            (rule("docs", "path = \"/versions/{version}/documents\""), vec![(Warning, "version-not-case")]),
            // allow_other next to require: key[]=44 and 1,000 padding keys leaked
            (
                rule("search", "path = \"/search\"\nquery.require = { case = \"{case}\", version = \"{version}\" }\nquery.allow_other = true"),
                vec![(Warning, "allow-other-with-require")],
            ),
            // a bare document id: other cases' documents leaked
            (rule("doc", "path = \"/documents/{doc}\""), vec![(Warning, "unbound")]),
            // said why: a note
            (rule("static", "path = \"/static/{file*}\"\nunscoped = \"build assets carry no case data\""), vec![(Note, "unscoped")]),
            // no limit on the number of keys
            (
                format!("{}[query]\nmax_keys = 0\n", rule("ok", "path = \"/c/{case}/v/{version}\"")),
                vec![(Warning, "no-query-limit")],
            ),
            (
                format!("{}[query]\nbracket_keys = false\n", rule("s", "path = \"/s\"\nquery.require = { c = \"{case}\", v = \"{version}\" }")),
                vec![(Warning, "bracket-keys-off")],
            ),
            // a scope-looking capture compared with nothing: the path's case went unchecked
            (
                rule("docs", "path = \"/api/cases/{case_id}/versions/{version_id}/documents\"\nquery.require = { case_id = \"{case}\", version_id = \"{version}\" }"),
                vec![(Warning, "scope-like-capture"), (Warning, "scope-like-capture")],
            ),
            // a rewrite that drops the scope, or puts another capture where the case goes
            (
                rule("legacy", "regex = '^/legacy/(?P<case>[0-9]+)/(?P<version>[0-9]+)/(?P<doc>[0-9]+)$'\nrewrite = \"/api/documents/{doc}\""),
                vec![(Warning, "rewrite-drops-scope"), (Warning, "rewrite-drops-scope")],
            ),
            (
                rule("old", "regex = '^/old/(?P<case>[0-9]+)/(?P<version>[0-9]+)/(?P<other>[0-9]+)$'\nrewrite = \"/api/cases/{other}/versions/{version}\""),
                vec![(Warning, "rewrite-drops-scope")],
            ),
            // the safe versions: nothing to say
            (rule("docs", "path = \"/cases/{case}/versions/{version}/documents\""), vec![]),
            (rule("search", "path = \"/search\"\nquery.require = { case = \"{case}\", version = \"{version}\" }\nquery.allow = [\"q\"]"), vec![]),
        ];
        for (text, want) in table {
            let got: Vec<(Level, &str)> = lints(text).iter().map(|(l, c, _)| (*l, *c)).collect();
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn findings_name_file_line_and_rule() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("p.toml"),
            "name = \"p\"\n\n[[rule]]\nname = \"doc\"\nmethods = [\"GET\"]\npath = \"/documents/{doc}\"\n",
        )
        .unwrap();
        let set = PolicySet::load_dir(d.path()).unwrap();
        let l = &lint(&set)[0];
        let text = l.to_string();
        assert!(
            text.contains("p.toml:3: warning[unbound]: rule \"doc\": not bound"),
            "{text}"
        );
    }

    #[test]
    fn the_shipped_profiles_have_no_warnings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load_dir(&dir).unwrap();
        let warnings: Vec<String> = lint(&set)
            .iter()
            .filter(|l| l.level == Level::Warning)
            .map(ToString::to_string)
            .collect();
        assert!(warnings.is_empty(), "{warnings:#?}");
    }
}

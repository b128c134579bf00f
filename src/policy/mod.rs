//! Declarative access policies: `policies/*.toml` (one profile per file) are parsed,
//! compiled and evaluated here. Default deny: a request is allowed only when a rule of
//! the share's profile matches method, canonical path, query and scope.

mod compile;
mod eval;
pub mod lint;
mod parse;
mod path_template;
mod rendered;
mod response;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use http::HeaderName;

pub use compile::{
    template_to_regex, Bindings, Profile, QueryRule, Rule, Template, Var, DEFAULT_MAX_QUERY_KEYS,
};
pub use eval::{key_is, Allowed, DenyReason, Evaluation, Missed, Scope, Why};
pub use rendered::{RenderCache, RenderFor, RenderedHeaders, RENDERED_MAX_ENTRIES};
pub use response::{BannerWords, ResponsePlan, DEFAULT_RESPONSE_HEADERS};

use crate::toml_source::{Source, SourceError, SourceErrors};

/// Every profile, by name, plus the header names any profile manages.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    profiles: BTreeMap<String, Profile>,
    owned_headers: Vec<HeaderName>,
}

impl PolicySet {
    /// Loads and compiles every `*.toml` file of a directory. All errors of all files are
    /// returned together, each naming its file, line and rule.
    pub fn load_dir(dir: &Path) -> Result<Self, SourceErrors> {
        let origin = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            SourceErrors(vec![SourceError {
                origin: origin.clone(),
                line: None,
                key: None,
                message: format!("cannot read policy directory: {e}"),
                help: None,
            }])
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut errors = Vec::new();
        let mut profiles = Vec::new();
        for file in &files {
            match Source::read(file).and_then(|src| Ok((src.deserialize()?, src))) {
                Ok((raw, src)) => match compile::compile_profile(raw, &src) {
                    Ok(p) => profiles.push(p),
                    Err(mut e) => errors.append(&mut e),
                },
                Err(e) => errors.push(e),
            }
        }
        if files.is_empty() {
            errors.push(SourceError {
                origin,
                line: None,
                key: None,
                message: "no policy files (*.toml) found".into(),
                help: Some("a deny-everything set is almost surely a deployment mistake".into()),
            });
        }
        if !errors.is_empty() {
            return Err(SourceErrors(errors));
        }
        Self::from_profiles(profiles)
    }

    /// Builds a set from compiled profiles; duplicate names are an error.
    pub fn from_profiles(profiles: Vec<Profile>) -> Result<Self, SourceErrors> {
        let mut map = BTreeMap::new();
        let mut errors = Vec::new();
        let mut owned = HashSet::new();
        for p in profiles {
            for (h, _) in &p.set_headers {
                owned.insert(h.clone());
            }
            if let Some(prev) = map.get(&p.name).map(|q: &Profile| q.file.clone()) {
                errors.push(SourceError {
                    origin: p.file.clone(),
                    line: Some(1),
                    key: Some("name".into()),
                    message: format!("profile `{}` is already defined in {prev}", p.name),
                    help: None,
                });
                continue;
            }
            map.insert(p.name.clone(), p);
        }
        if !errors.is_empty() {
            return Err(SourceErrors(errors));
        }
        let mut owned_headers: Vec<_> = owned.into_iter().collect();
        owned_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(Self {
            profiles: map,
            owned_headers,
        })
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// All profiles, by name.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }

    /// Headers some profile sets: guestgate owns them, so incoming copies are stripped.
    pub fn owned_headers(&self) -> &[HeaderName] {
        &self.owned_headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::CanonicalTarget;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn errors_of(text: &str) -> Vec<SourceError> {
        let d = dir_with(&[("p.toml", text)]);
        PolicySet::load_dir(d.path()).unwrap_err().0
    }

    const VIEW: &str = r#"
name = "view"

[[rule]]
name = "docs"
methods = ["GET", "HEAD"]
path = "/api/cases/{case}/versions/{version}/documents/{doc}"
query.allow = ["page"]

[[rule]]
name = "search"
methods = ["GET"]
path = "/api/search"
query.require = { case_id = "{case}" }
query.allow = ["q"]

[[rule]]
name = "legacy"
methods = ["GET"]
regex = '^/legacy/(?P<case>[0-9]+)/(?P<doc>[a-z]+)$'
rewrite = "/api/cases/{case}/versions/{version}/documents/{doc}"

[upstream]
set_headers = { "X-Guest-Email" = "{guest.email}", "X-Guest-Share" = "{share.id}" }
"#;

    fn view() -> PolicySet {
        let d = dir_with(&[("view.toml", VIEW)]);
        PolicySet::load_dir(d.path()).unwrap()
    }

    /// The allow, or the miss's reason and its words.
    fn eval(
        set: &PolicySet,
        method: &str,
        target: &str,
        case: &str,
        version: &str,
    ) -> Result<Allowed, (DenyReason, String)> {
        let t = CanonicalTarget::parse(target.as_bytes(), 4096).unwrap();
        let p = set.get("view").unwrap();
        p.evaluate(method, &t, Scope { case, version })
            .map_err(|m| (m.reason, m.describe(p)))
    }

    /// The same rules decide the same whether the rules are walked (templates only, few
    /// of them) or found by the RegexSet (a `regex` rule, or many rules), captures read
    /// off the templates either way.
    #[test]
    fn walked_and_set_matched_rules_decide_alike() {
        let without_regex = &VIEW[..VIEW.find("[[rule]]\nname = \"legacy\"").unwrap()];
        let filler: String = (0..40)
            .map(|i| {
                format!(
                    "[[rule]]\nname = \"f{i}\"\nmethods = [\"GET\"]\n\
                     path = \"/api/cases/{{case}}/versions/{{version}}/section{i}/{{item}}\"\n"
                )
            })
            .collect();
        let many = format!("{without_regex}{filler}");
        let walked = PolicySet::load_dir(dir_with(&[("v.toml", without_regex)]).path()).unwrap();
        let by_set = PolicySet::load_dir(dir_with(&[("v.toml", &many)]).path()).unwrap();
        assert!(walked.get("view").unwrap().walk_rules);
        assert!(!by_set.get("view").unwrap().walk_rules);
        assert!(
            !view().get("view").unwrap().walk_rules,
            "a regex rule: the set"
        );
        for (method, target, case) in [
            ("GET", "/api/cases/42/versions/3/documents/7", "42"),
            ("GET", "/api/cases/43/versions/3/documents/7", "42"),
            ("POST", "/api/cases/42/versions/3/documents/7", "42"),
            ("GET", "/api/cases/42/versions/3/documents/7?x=1", "42"),
            ("GET", "/api/search?case_id=42&q=a", "42"),
            ("GET", "/api/search?case_id=43", "42"),
            ("GET", "/api/cases/42/versions/3/section39/a", "42"),
            ("GET", "/api/cases/42/versions/3/documents/", "42"),
            ("GET", "/nothing", "42"),
        ] {
            let w = eval(&walked, method, target, case, "3");
            let s = eval(&by_set, method, target, case, "3");
            let f = eval(&view(), method, target, case, "3");
            // The filler rules only add allows of their own paths.
            if !target.contains("section") {
                assert_eq!(w, s, "{method} {target}");
            }
            assert_eq!(w, f, "{method} {target}");
        }
        assert_eq!(
            eval(
                &by_set,
                "GET",
                "/api/cases/42/versions/3/section39/a",
                "42",
                "3"
            )
            .map(|a| a.rule),
            Ok(41),
            "the 40th filler rule, after the two of the file"
        );
    }

    #[test]
    fn decisions_table() {
        let set = view();
        use DenyReason::*;
        let table: &[(&str, &str, Result<&str, DenyReason>)] = &[
            ("GET", "/api/cases/42/versions/3/documents/7", Ok("docs")),
            ("HEAD", "/api/cases/42/versions/3/documents/7", Ok("docs")),
            (
                "GET",
                "/api/cases/42/versions/3/documents/7?page=2",
                Ok("docs"),
            ),
            (
                "GET",
                "/api/cases/42/versions/3/documents/7?page=2&page=3",
                Err(QueryRepeated),
            ),
            (
                "GET",
                "/api/cases/42/versions/3/documents/7?other=1",
                Err(QueryKey),
            ),
            ("POST", "/api/cases/42/versions/3/documents/7", Err(Method)),
            (
                "DELETE",
                "/api/cases/42/versions/3/documents/7",
                Err(Method),
            ),
            ("GET", "/api/cases/43/versions/3/documents/7", Err(Scope)),
            ("GET", "/api/cases/042/versions/3/documents/7", Err(Scope)),
            (
                "GET",
                "/api/cases/%EF%BC%94%EF%BC%92/versions/3/documents/7",
                Err(Scope),
            ),
            ("GET", "/api/cases/42/versions/4/documents/7", Err(Scope)),
            ("GET", "/API/cases/42/versions/3/documents/7", Err(NoRule)),
            ("GET", "/api/cases/42/versions/3/documents", Err(NoRule)),
            ("GET", "/api/cases/42/versions/3/documents/7/", Err(NoRule)),
            ("GET", "/api/cases", Err(NoRule)),
            ("GET", "/api/search?case_id=42&q=x", Ok("search")),
            ("GET", "/api/search?q=x&case_id=42", Ok("search")),
            ("GET", "/api/search?case_id=43", Err(QueryRequirement)),
            ("GET", "/api/search", Err(QueryRequirement)),
            (
                "GET",
                "/api/search?case_id=42&case_id=43",
                Err(QueryRepeated),
            ),
            ("GET", "/api/search?case_id=42&q=a&q=b", Err(QueryRepeated)),
            ("GET", "/legacy/42/abc", Ok("legacy")),
            ("GET", "/legacy/43/abc", Err(Scope)),
            ("GET", "/legacy/%EF%BC%94%EF%BC%92/abc", Err(NoRule)),
        ];
        for (method, target, want) in table {
            let got = eval(&set, method, target, "42", "3");
            let got_rule = got
                .as_ref()
                .map(|a| set.get("view").unwrap().rules[a.rule].name.as_str())
                .map_err(|e| e.0);
            assert_eq!(&got_rule, want, "{method} {target}");
        }
    }

    #[test]
    fn misses_say_which_rule_and_what_did_not_fit() {
        let set = view();
        let why = |m: &str, t: &str| eval(&set, m, t, "42", "3").unwrap_err().1;
        assert_eq!(
            why("GET", "/api/cases/43/versions/3/documents/7"),
            "rule `docs`: the path names case 43, the share is for case 42"
        );
        assert_eq!(
            why("DELETE", "/api/cases/42/versions/3/documents/7"),
            "rule `docs`: allows GET, HEAD, not DELETE"
        );
        assert_eq!(
            why("GET", "/api/cases/42/versions/3/documents/7?x=1"),
            "rule `docs`: query key `x` is not allowed"
        );
        assert_eq!(
            why("GET", "/api/search?case_id=43"),
            "rule `search`: query key `case_id` must be 42, is 43"
        );
        assert_eq!(
            why("GET", "/api/search?q=a"),
            "rule `search`: query key `case_id` must be 42, and is missing"
        );
        assert_eq!(why("GET", "/nothing"), "no rule matches the path");
        assert_eq!(
            why("GET", "/api/search?case_id=42&q=a&q=b"),
            "rule `search`: query key `q` appears more than once"
        );
        assert_eq!(
            why("GET", "/api/search?case_id=42&case_id[]=44"),
            "rule `search`: query keys `case_id` and `case_id[]` are one key to the app \
             (qs, PHP and Rails read both as the same key)"
        );
    }

    /// `key[]=44`, `key[0]=44` and `key[x]=44` are more values of `key` to qs, PHP and
    /// Rails: with bracket keys on (the default) they count as `key`.
    #[test]
    fn bracket_keys_count_as_their_key_and_the_number_of_keys_is_bounded() {
        let set = view();
        use DenyReason::*;
        for (target, want) in [
            ("/api/search?case_id=42&case_id[]=44", QueryRepeated),
            ("/api/search?case_id[]=42", QueryRequirement),
            ("/api/search?case_id=42&case_id[0]=44", QueryRepeated),
            ("/api/search?case_id[x]=44&case_id=42", QueryRepeated),
            ("/api/search?case_id=42&q=a&q[]=b", QueryRepeated),
            // qs unwraps a leading bracket; PHP drops leading spaces (`+`) and reads `.`
            // and spaces before the first bracket as `_`; an unclosed bracket still merges.
            ("/api/search?case_id=42&[case_id]=44", QueryRepeated),
            ("/api/search?case_id=42&+case_id=44", QueryRepeated),
            ("/api/search?case_id=42&case.id=44", QueryRepeated),
            ("/api/search?case_id=42&case%20id=44", QueryRepeated),
            ("/api/search?case_id=42&case_id[=44", QueryRepeated),
            ("/api/search?case.id=42", QueryRequirement),
            ("/api/search?case_id=42&z[]=1", QueryKey),
        ] {
            assert_eq!(
                eval(&set, "GET", target, "42", "3").unwrap_err().0,
                want,
                "{target}"
            );
        }
        assert!(eval(&set, "GET", "/api/search?case_id=42&q=[x]", "42", "3").is_ok());
        // JSON:API-style keys can be named: the exact spelling satisfies a requirement,
        // a member of it is another value.
        let d = dir_with(&[(
            "view.toml",
            "name = \"view\"\n[[rule]]\nname = \"f\"\nmethods = [\"GET\"]\npath = \"/docs\"\nquery.require = { \"filter[case]\" = \"{case}\", \"filter[version]\" = \"{version}\" }\n",
        )]);
        let json_api = PolicySet::load_dir(d.path()).unwrap();
        let t = "/docs?filter[case]=42&filter[version]=3";
        assert!(eval(&json_api, "GET", t, "42", "3").is_ok(), "{t}");
        let t = "/docs?filter[case]=42&filter[version]=3&filter[case][]=44";
        assert_eq!(
            eval(&json_api, "GET", t, "42", "3").unwrap_err().0,
            QueryRepeated
        );
        assert!(key_is("a[b][c]", "a", true) && !key_is("a[b]", "a", false));
        assert!(key_is("a[b]", "a[b]", true) && key_is("a[b][]", "a[b]", true));
        assert!(!key_is("ab", "a", true) && !key_is("a_b", "a.b", true));
        // More keys than the profile allows: refused before any rule.
        let padded = format!(
            "/api/search?case_id=42{}",
            (0..DEFAULT_MAX_QUERY_KEYS)
                .map(|i| format!("&p{i}=1"))
                .collect::<String>()
        );
        let (reason, why) = eval(&set, "GET", &padded, "42", "3").unwrap_err();
        assert_eq!(reason, QueryTooManyKeys);
        assert_eq!(
            why,
            format!(
                "the query has {} keys; the profile allows at most {DEFAULT_MAX_QUERY_KEYS}",
                DEFAULT_MAX_QUERY_KEYS + 1
            )
        );
    }

    #[test]
    fn rewrites_render_from_captures_and_scope() {
        let set = view();
        let a = eval(&set, "GET", "/legacy/42/abc", "42", "3").unwrap();
        assert_eq!(
            a.rewritten_path.as_deref(),
            Some("/api/cases/42/versions/3/documents/abc")
        );
    }

    #[test]
    fn owned_headers_are_collected() {
        let set = view();
        let names: Vec<_> = set.owned_headers().iter().map(|h| h.as_str()).collect();
        assert_eq!(names, ["x-guest-email", "x-guest-share"]);
    }

    #[test]
    fn load_errors_name_file_line_and_rule() {
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/x/{case\"\n",
                5,
                "rule[0].path",
                "placeholder",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\nregex = '/x/(?P<case>[0-9]+)'\n",
                5,
                "rule[0].regex",
                "anchored",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\nregex = '^/x/(?P<case>[0-9+$'\n",
                5,
                "rule[0].regex",
                "does not compile",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/x\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/y\"\n",
                7,
                "rule[1].name",
                "duplicate rule name",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/x/{id}\"\nrewrite = \"/y/{doc}\"\n",
                6,
                "rule[0].rewrite",
                "unknown placeholder `{doc}`",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/x\"\nquery.require = { c = \"{cas}\" }\n",
                6,
                "rule[0].query.require.c",
                "unknown placeholder `{cas}`",
            ),
            (
                "name = \"p\"\n[upstream]\nset_headers = { \"X-Guest\" = \"{guest.mail}\" }\n",
                3,
                "upstream.set_headers.X-Guest",
                "unknown placeholder",
            ),
            (
                "name = \"p\"\n[upstream]\nset_headers = { \"Host\" = \"x\" }\n",
                3,
                "upstream.set_headers.Host",
                "managed by guestgate",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"get\"]\npath = \"/x\"\n",
                4,
                "rule[0].methods",
                "unknown method",
            ),
            (
                "name = \"p\"\n[[rule]]\nname = \"a\"\nmethods = [\"GET\"]\npaht = \"/x\"\n",
                5,
                "rule[0].paht",
                "unknown field",
            ),
        ];
        for (text, line, key, msg) in cases {
            let errs = errors_of(text);
            let e = &errs[0];
            assert_eq!(e.line, Some(*line), "{e} for\n{text}");
            assert!(e.origin.ends_with("p.toml"), "{e}");
            assert_eq!(e.key.as_deref(), Some(*key), "{e}");
            assert!(e.message.contains(msg), "{e}");
        }
    }

    #[test]
    fn duplicate_profiles_and_empty_dirs_are_refused() {
        let d = dir_with(&[("a.toml", "name = \"p\"\n"), ("b.toml", "name = \"p\"\n")]);
        let e = PolicySet::load_dir(d.path()).unwrap_err();
        assert!(e.to_string().contains("already defined"), "{e}");
        let d = dir_with(&[]);
        assert!(PolicySet::load_dir(d.path()).is_err());
    }

    #[test]
    fn shipped_policies_compile() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.get("view-only").is_some());
    }
}
